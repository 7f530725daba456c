"""qa: a question built from a section's heading path and title; the answer is the grounded section text."""

from __future__ import annotations

from pydantic import Field

from curate.generate.base import (
    GenerateContext,
    GeneratorConfig,
    examples_per_document,
    register_generator,
    section_topic,
)
from curate.text import count_words, split_sentences


class QAConfig(GeneratorConfig):
    kind: str = Field("qa", pattern="^qa$")
    per_doc: int = Field(
        3, ge=1, description="Questions per document row (section chunk), each from another template."
    )
    min_words: int = Field(
        15, ge=1, description="Sections with fewer words give no question: too little to answer from."
    )


def qa_variables(row: dict, config: QAConfig) -> dict | None:
    if count_words(row["text"]) < config.min_words:
        return None
    topic = section_topic(row)
    path = row["section"].split(" > ") if row["section"] else []
    heading = " > ".join(path[1:] if path and path[0] == row["title"] else path)
    return {
        "title": row["title"],
        "section": row["section"],
        "heading": heading,
        "topic": topic,
        # FAQ-style headings are already the question a user would ask.
        "question": topic if topic.endswith("?") else "",
        "is_intro": not heading,
        "text": row["text"],
        "lead": " ".join(split_sentences(row["text"].split("\n\n")[0])[:2]),
        "source": row["source"],
        "doc_id": row["doc_id"],
    }


@register_generator(
    "qa",
    config=QAConfig,
    variables={"title", "section", "heading", "topic", "question", "is_intro", "text", "lead", "source", "doc_id"},
    row_variables=qa_variables,
)
def generate_qa(ctx: GenerateContext, config: QAConfig, specs) -> list[dict]:
    """Questions from heading path and title; the answer is the section text, grounded in the document."""
    return examples_per_document(ctx, "qa", config, specs, qa_variables)
