"""BM25 retrieval over document rows (bm25s): one index for generation (the section that answers a policy
near-miss) and for ``chat --retrieve`` and ``eval --retrieve`` (the sections put in front of a question, in the
prompt format the grounded examples train on).

A row is indexed by its title, section heading and text, as lower-case words without stop words; the scores
are Lucene's BM25 (k1 1.2, b 0.75; as in Lucene 8 and later, without the constant k1 + 1 factor), as bm25s
computes them. ``best`` keeps generation's rule that the answering row must hold at least ``min_match`` of the
query's words, so a weak match is no answer rather than a wrong one.

``Retriever`` is what ``--retrieve`` uses: a curated dataset's ``documents/``, indexed, and a question turned into
the one user-turn format of the grounded examples (``prompt.grounded_user``: numbered excerpts, then the question),
so the model sees at chat and eval time what it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.text import count_words, split_sentences, words

GROUNDED_PROMPT = "prompt.grounded_user"
EXCERPT_WORDS = 120  # the grounded generators' default excerpt_words

# Words that say nothing about what a request or a section is about (BM25 lookups and corpus checks skip them).
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or our please the this to us we what "
    "when where which who why will with you your".split()
)


def terms(text: str) -> list[str]:
    """The words BM25 sees: lower case, stop words removed."""
    return [w for w in words(text) if w not in STOP_WORDS]


@dataclass
class Hit:
    row: dict[str, Any]
    score: float
    rank: int  # 1-based


class SectionIndex:
    """BM25 over document rows (``title``, ``section`` and ``text`` fields)."""

    def __init__(self, documents: list[dict[str, Any]], k1: float = 1.2, b: float = 0.75):
        import bm25s

        self.documents = documents
        self.terms = [terms(f"{d.get('title', '')} {d.get('section', '')} {d['text']}") for d in documents]
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        if documents:
            self._bm25.index(self.terms, show_progress=False)

    def scores(self, query: str) -> tuple[list[str], list[float]]:
        """(the query's distinct terms, each row's score)."""
        q = list(dict.fromkeys(terms(query)))
        if not q or not self.documents:
            return q, [0.0] * len(self.documents)
        return q, [float(s) for s in self._bm25.get_scores(q)]

    def search(self, query: str, k: int) -> list[Hit]:
        """The ``k`` best rows with a score above zero, best first (ties: document order)."""
        _, scores = self.scores(query)
        order = sorted((i for i, s in enumerate(scores) if s > 0), key=lambda i: (-scores[i], i))[:k]
        return [Hit(self.documents[i], scores[i], rank) for rank, i in enumerate(order, start=1)]

    def best(self, query: str, min_match: float) -> dict[str, Any] | None:
        """The best-scoring row holding at least ``min_match`` of the query's terms, or None."""
        q, scores = self.scores(query)
        best, best_score = None, 0.0
        for doc, row_terms, score in zip(self.documents, self.terms, scores, strict=True):
            if not q or score <= best_score:
                continue
            present = set(row_terms)
            if sum(w in present for w in q) / len(q) >= min_match:
                best, best_score = doc, score
        return best


def excerpt(row: dict[str, Any], max_words: int) -> str:
    """The row's text cut to ``max_words`` words at a sentence end (a first sentence longer than that, by words)."""
    if count_words(row["text"]) <= max_words:
        return row["text"]
    kept: list[str] = []
    for sentence in split_sentences(row["text"]):
        if count_words(" ".join([*kept, sentence])) > max_words:
            break
        kept.append(sentence)
    return " ".join(kept) if kept else " ".join(row["text"].split()[:max_words])


def excerpt_source(row: dict[str, Any]) -> str:
    """How an excerpt is named in the prompt: the title, then the section path below it."""
    path = row["section"].split(" > ") if row.get("section") else []
    if path and path[0] == row["title"]:
        path = path[1:]
    return " > ".join([row["title"], *path]) if row["title"] else " > ".join(path)


def grounded_user_turn(templates, renderer, rows: list[dict[str, Any]], question: str, excerpt_words: int) -> str:
    """The user turn of a grounded example: ``rows`` as numbered excerpts, then the question."""
    from curate.templating import prompt_template

    spec = prompt_template(templates, GROUNDED_PROMPT, {"excerpts", "question"})
    excerpts = [
        {"n": i, "source": excerpt_source(r), "text": excerpt(r, excerpt_words)} for i, r in enumerate(rows, 1)
    ]
    return renderer.render(spec, {"excerpts": excerpts, "question": question})["user"]


@dataclass
class Retrieved:
    user: str  # the user turn: the top k excerpts and the question
    shown: list[str]  # ids of the rows in the excerpts, in order ([1], [2], ...)
    ranked: list[str]  # ids of the best rows, best first (at least 5, for hit rates at 1, 3 and 5)


class Retriever:
    """``--retrieve``: the top ``k`` sections of a dataset's documents, in the grounded prompt format."""

    def __init__(self, dataset_dir: Path, k: int = 3):
        import yaml

        from curate.output import read_jsonl
        from curate.templating import Renderer, load_templates

        documents = Path(dataset_dir) / "documents" / "documents.jsonl"
        if not documents.is_file():
            from curate.errors import InputError

            raise InputError(
                f"{dataset_dir}: no documents/documents.jsonl to retrieve from; curate it again with this version"
            )
        self.k = k
        self.index = SectionIndex(list(read_jsonl(documents)))
        resolved = Path(dataset_dir) / "recipe.resolved.yaml"
        recipe = (yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}) if resolved.is_file() else {}
        grounded = [g for g in recipe.get("generate") or [] if str(g.get("kind", "")).startswith("grounded")]
        self.excerpt_words = int(grounded[0].get("excerpt_words", EXCERPT_WORDS)) if grounded else EXCERPT_WORDS
        dirs = [d for d in (recipe.get("templates") or {}).get("dirs") or [] if Path(d).is_dir()]
        self.templates, self.renderer = load_templates(dirs), Renderer()

    def __call__(self, question: str) -> Retrieved:
        hits = self.index.search(question, max(self.k, 5))
        rows = [h.row for h in hits[: self.k]]
        user = grounded_user_turn(self.templates, self.renderer, rows, question, self.excerpt_words)
        return Retrieved(user, [r["id"] for r in rows], [h.row["id"] for h in hits])
