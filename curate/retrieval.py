"""BM25 retrieval over document rows (bm25s): one index for generation (the section that answers a policy
near-miss) and for ``chat --retrieve`` and ``eval --retrieve`` (the sections put in front of a question, in the
prompt format the grounded examples train on).

A row is indexed by its title, section heading and text as terms: Unicode words, lower case, without stop words,
stemmed (Snowball, through PyStemmer) in the language its labels give (``labels.language`` from
label.heuristic; English when unlabelled), so "refunds" finds "A refund is issued." and "Rückgabe" stays a word.
Chinese and Japanese, written without spaces, are indexed as overlapping character pairs (as Lucene's CJK
analyzer does). Stop words: bm25s's lists per language; English keeps the project's short list. The scores
are Lucene's BM25 (k1 1.2, b 0.75; as in Lucene 8 and later, without the constant k1 + 1 factor), as bm25s
computes them. ``best`` keeps generation's rule that the answering row must hold at least ``min_match`` of the
query's words, so a weak match is no answer rather than a wrong one.

``Retriever`` is what ``--retrieve`` uses: a curated dataset's ``documents/``, indexed, and a question turned into
the one user-turn format of the grounded examples (``prompt.grounded_user``: numbered excerpts, then the question),
so the model sees at chat and eval time what it was trained on.
"""

from __future__ import annotations

import functools
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

from curate.text import count_words, markdown_blocks, split_sentences

GROUNDED_PROMPT = "prompt.grounded_user"
EXCERPT_WORDS = 120  # the grounded generators' default excerpt_words

# Words that say nothing about what a request or a section is about (BM25 lookups and corpus checks skip them).
STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or our please the this to us we what "
    "when where which who why will with you your".split()
)


# ISO 639-1 codes (fastText's labels) and the Snowball stemmer of each language PyStemmer has.
STEMMERS = {"ar": "arabic", "ca": "catalan", "cs": "czech", "da": "danish", "de": "german", "el": "greek",
            "en": "english", "es": "spanish", "et": "estonian", "eu": "basque", "fa": "persian", "fi": "finnish",
            "fr": "french", "ga": "irish", "hi": "hindi", "hu": "hungarian", "hy": "armenian", "id": "indonesian",
            "it": "italian", "lt": "lithuanian", "ne": "nepali", "nl": "dutch", "no": "norwegian", "pl": "polish",
            "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil",
            "tr": "turkish"}  # fmt: skip
_STOPWORD_LISTS = {"da": "DANISH", "de": "GERMAN", "es": "SPANISH", "fr": "FRENCH", "it": "ITALIAN",
                   "nl": "DUTCH", "no": "NORWEGIAN", "pt": "PORTUGUESE", "ru": "RUSSIAN", "sv": "SWEDISH",
                   "tr": "TURKISH"}  # fmt: skip
# A run of Han, Hiragana or Katakana (no spaces between words), or a word of any other script.
_TOKEN = regex.compile(
    r"[\p{Han}\p{Hiragana}\p{Katakana}]+|(?:(?![\p{Han}\p{Hiragana}\p{Katakana}])[\p{L}\p{M}\p{N}_])+"
)
_CJK = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}]")


@functools.cache
def _stemmer(language: str):
    import Stemmer

    return Stemmer.Stemmer(STEMMERS[language]) if language in STEMMERS else None


@functools.cache
def _stop_words(language: str) -> frozenset[str]:
    if language in _STOPWORD_LISTS:
        from bm25s import stopwords

        return frozenset(getattr(stopwords, f"STOPWORDS_{_STOPWORD_LISTS[language]}"))
    return STOP_WORDS if language == "en" else frozenset()


def terms(text: str, language: str = "en") -> list[str]:
    """The terms BM25 sees: Unicode words in lower case, stop words removed, stemmed in ``language`` (an ISO
    639-1 code; one PyStemmer lacks is not stemmed); a Chinese or Japanese run as its overlapping character pairs
    (a lone character as itself)."""
    stop, out = _stop_words(language), []
    plain: list[str] = []
    for token in _TOKEN.findall(text.lower()):
        if _CJK.match(token):
            out += [token] if len(token) == 1 else [token[i : i + 2] for i in range(len(token) - 1)]
        elif token not in stop:
            plain.append(token)
    stemmer = _stemmer(language)
    return (stemmer.stemWords(plain) if stemmer is not None else plain) + out


def row_language(row: dict[str, Any]) -> str:
    """The row's language from its labels (label.heuristic), English when it has none."""
    labels = row.get("labels") or "{}"
    try:
        language = (json.loads(labels) if isinstance(labels, str) else labels).get("language")
    except (ValueError, AttributeError):
        language = None
    return language if isinstance(language, str) and language != "unknown" else "en"


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
        self.languages = [row_language(d) for d in documents]
        self.terms = [
            terms(f"{d.get('title', '')} {d.get('section', '')} {d['text']}", lang)
            for d, lang in zip(documents, self.languages, strict=True)
        ]
        counts = Counter(self.languages)
        self.language = counts.most_common(1)[0][0] if counts else "en"
        self._bm25 = bm25s.BM25(k1=k1, b=b, method="lucene")
        if documents:
            self._bm25.index(self.terms, show_progress=False)

    def query_language(self, query: str) -> str:
        """The index's language; with rows in several, the query's own when it is one of them."""
        if len(set(self.languages)) < 2:
            return self.language
        from curate.stages.label.heuristic import detect_language

        detected, _ = detect_language(query, 0.4)
        return detected if detected in self.languages else self.language

    def scores(self, query: str) -> tuple[list[str], list[float]]:
        """(the query's distinct terms, each row's score)."""
        q = list(dict.fromkeys(terms(query, self.query_language(query))))
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
    """The row's text cut to ``max_words`` words at a sentence end, or after a table row (a first sentence longer
    than that, by words). Blocks keep their lines: a table stays a table, a list a list."""
    if count_words(row["text"]) <= max_words:
        return row["text"]
    kept: list[str] = []
    left = max_words
    for block in markdown_blocks(row["text"]):
        if block.words <= left:
            kept.append(block.text)
            left -= block.words
            continue
        if block.kind == "table":  # the header, its rule and the rows that fit
            lines = block.text.split("\n")
            left -= count_words(lines[0])
            budget = left
            rows = [line for line in lines[2:] if (left := left - count_words(line)) >= 0]
            if not rows and not kept and len(lines) > 2:  # the first row alone is too long: its start
                rows = [" ".join(lines[2].split()[: max(budget, 10)]) + " …"]
            if rows:
                kept.append("\n".join([*lines[:2], *rows]))
        elif block.kind == "paragraph":
            sentences = []
            for sentence in split_sentences(block.text):
                if count_words(sentence) > left:
                    break
                sentences.append(sentence)
                left -= count_words(sentence)
            if sentences:
                kept.append(" ".join(sentences))
        break
    return "\n\n".join(kept) if kept else " ".join(row["text"].split()[:max_words])


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
        dirs = (recipe.get("templates") or {}).get("dirs") or []
        missing = [d for d in dirs if not Path(d).is_dir()]
        if missing:  # never another grounded prompt than training used
            from curate.errors import TemplateError

            raise TemplateError(
                f"{resolved}: templates.dirs {missing} do not exist from {Path.cwd()}; the grounded prompt must be "
                "the one training used: run from the folder curate ran in, or copy the templates there"
            )
        self.templates, self.renderer = load_templates(dirs), Renderer()

    def __call__(self, question: str) -> Retrieved:
        hits = self.index.search(question, max(self.k, 5))
        rows = [h.row for h in hits[: self.k]]
        user = grounded_user_turn(self.templates, self.renderer, rows, question, self.excerpt_words)
        return Retrieved(user, [r["id"] for r in rows], [h.row["id"] for h in hits])
