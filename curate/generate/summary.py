"""summary: extractive summaries, the lead sentences of a section's prose."""

from __future__ import annotations

from pydantic import Field

from curate.generate.base import (
    GenerateContext,
    GeneratorConfig,
    LLMBackend,
    examples_per_document,
    register_generator,
    section_topic,
)
from curate.text import count_words, markdown_blocks, split_sentences


class SummaryConfig(LLMBackend, GeneratorConfig):
    kind: str = Field("summary", pattern="^summary$")
    per_doc: int = Field(1, ge=1, description="Summary requests per document row, each from another template.")
    sentences: int = Field(2, ge=1, description="Lead sentences that make the summary.")
    min_words: int = Field(60, ge=1, description="Sections with fewer words are too short to summarize.")


def lead_summary(text: str, sentences: int) -> str:
    """The first ``sentences`` sentences of the section's prose paragraphs (tables and code skipped)."""
    prose = [
        b.text
        for b in markdown_blocks(text)
        if b.kind == "paragraph" and not b.text.lstrip().startswith(("-", "*", ">"))
    ]
    picked: list[str] = []
    for paragraph in prose:
        picked += split_sentences(paragraph)
        if len(picked) >= sentences:
            break
    return " ".join(picked[:sentences])


def summary_variables(row: dict, config: SummaryConfig) -> dict | None:
    if count_words(row["text"]) < config.min_words:
        return None
    summary = lead_summary(row["text"], config.sentences)
    # A summary must be shorter than what it summarizes, and have something to say.
    if not summary or count_words(summary) >= 0.8 * count_words(row["text"]):
        return None
    return {
        "title": row["title"],
        "section": row["section"],
        "topic": section_topic(row),
        "text": row["text"],
        "summary": summary,
        "source": row["source"],
    }


@register_generator(
    "summary",
    config=SummaryConfig,
    variables={"title", "section", "topic", "text", "summary", "source"},
    row_variables=summary_variables,
)
def generate_summary(ctx: GenerateContext, config: SummaryConfig, specs) -> list[dict]:
    """Summarize a section: the user gives the text, the answer is its lead sentences (or the LLM's summary)."""
    method = "llm" if config.uses_llm() else f"lead_{config.sentences}_sentences"
    examples = examples_per_document(ctx, "summary", config, specs, summary_variables, extra_meta={"method": method})
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
