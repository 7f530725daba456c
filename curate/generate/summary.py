"""summary: extractive summaries, the most central sentences of a section's prose, in their order.

Centrality is LexRank's degree centrality: each sentence scored by its summed TF-IDF cosine similarity to the
other sentences of the section, so the sentences that share the most with the rest (what the section is about)
are picked, not whatever comes first; a mild bonus for coming early (``LEAD_PRIOR``) breaks near ties the way
writers do, who tend to open with the point. sumy implements the same, but its tokenizers need NLTK data downloaded at
run time, which gristmill never does; this is the same measure on the project's own sentence splitter. With
``backend: llm`` the LLM writes the summary instead.
"""

from __future__ import annotations

import math
from collections import Counter

from pydantic import Field

from curate.generate.base import (
    GenerateContext,
    GeneratorConfig,
    LLMBackend,
    examples_per_document,
    register_generator,
    section_topic,
)
from curate.generate.phrasing import Truecaser, title_ref, topic_phrase
from curate.text import FUNCTION_WORDS, count_words, markdown_blocks, split_sentences, words


class SummaryConfig(LLMBackend, GeneratorConfig):
    kind: str = Field("summary", pattern="^summary$")
    per_doc: int = Field(1, ge=1, description="Summary requests per document row, each from another template.")
    sentences: int = Field(2, ge=1, description="Most central sentences that make the summary.")
    min_words: int = Field(60, ge=1, description="Sections with fewer words are too short to summarize.")


LEAD_PRIOR = 0.3  # position-augmented centrality (as PacSum): centrality scaled to 1, plus 0.3 / (1 + position)


def central_summary(text: str, sentences: int) -> str:
    """The ``sentences`` most central sentences of the section's prose paragraphs (tables, code and lists
    skipped), in the order the section has them; ties go to the earlier sentence."""
    prose = [
        s
        for b in markdown_blocks(text)
        if b.kind == "paragraph" and not b.text.lstrip().startswith(("-", "*", ">", "|"))
        for s in split_sentences(b.text)
        if len(words(s)) >= 4
    ]
    if len(prose) <= sentences:
        return " ".join(prose)
    bags = [Counter(w for w in words(s) if w not in FUNCTION_WORDS) for s in prose]
    seen_in = Counter(w for bag in bags for w in bag)
    idf = {w: math.log(len(bags) / n) + 1.0 for w, n in seen_in.items()}
    vectors = [{w: c * idf[w] for w, c in bag.items()} for bag in bags]
    norms = [math.sqrt(sum(v * v for v in vec.values())) or 1.0 for vec in vectors]

    def cosine(i: int, j: int) -> float:
        small, large = sorted((vectors[i], vectors[j]), key=len)
        return sum(v * large.get(w, 0.0) for w, v in small.items()) / (norms[i] * norms[j])

    score = [sum(cosine(i, j) for j in range(len(prose)) if j != i) for i in range(len(prose))]
    top = max(score) or 1.0
    score = [s / top + LEAD_PRIOR / (1 + i) for i, s in enumerate(score)]  # a mild lead bias: writers open with it
    picked = sorted(sorted(range(len(prose)), key=lambda i: (-score[i], i))[:sentences])
    return " ".join(prose[i] for i in picked)


def summary_variables(row: dict, config: SummaryConfig, casing: Truecaser | None = None) -> dict | None:
    if count_words(row["text"]) < config.min_words:
        return None
    casing = casing or Truecaser([row["text"]])
    summary = central_summary(row["text"], config.sentences)
    # A summary must be shorter than what it summarizes, and have something to say.
    if not summary or count_words(summary) >= 0.8 * count_words(row["text"]):
        return None
    return {
        "title": row["title"],
        "title_ref": title_ref(row["title"], casing),
        "section": row["section"],
        "topic": topic_phrase(section_topic(row), casing),
        "text": row["text"],
        "summary": summary,
        "source": row["source"],
    }


@register_generator(
    "summary",
    config=SummaryConfig,
    variables={"title", "title_ref", "section", "topic", "text", "summary", "source"},
    row_variables=summary_variables,
)
def generate_summary(ctx: GenerateContext, config: SummaryConfig, specs) -> list[dict]:
    """Summarize a section: the user gives the text, the answer is its most central sentences (or the LLM's)."""
    method = "llm" if config.uses_llm() else f"central_{config.sentences}_sentences"
    examples = examples_per_document(
        ctx,
        "summary",
        config,
        specs,
        lambda row, c: summary_variables(row, c, ctx.casing),
        extra_meta={"method": method},
    )
    if not config.uses_llm():
        return examples
    from curate.generate.llm_gen import rewrite_answers

    rows = {d["id"]: d for d in ctx.documents}
    return rewrite_answers(
        ctx, "summary", config, examples,
        writer="prompt.summary_write", writer_variables={"title", "section", "text"},
        variables=lambda ex: {k: rows[ex["source_ids"][0]][k] for k in ("title", "section", "text")},
        source=lambda ex: rows[ex["source_ids"][0]]["text"], field="summary",
    )  # fmt: skip
