"""qa: a question built from a section's heading path and title; the answer is the grounded section text."""

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
from curate.text import count_words, split_sentences


class QAConfig(LLMBackend, GeneratorConfig):
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
    if config.uses_llm():
        return _llm_qa(ctx, config)
    return examples_per_document(ctx, "qa", config, specs, qa_variables)


def _llm_qa(ctx: GenerateContext, config: QAConfig) -> list[dict]:
    """Questions a user of these docs would ask, written by the LLM, each answer judged against the chunk."""
    from curate.generate.llm_gen import write_and_judge

    items = [
        {
            "label": row["id"],
            "variables": {"title": row["title"], "section": row["section"], "text": row["text"], "n": config.per_doc},
            "source": row["text"],
            "source_ids": [row["id"]],
            "group": row["doc_id"],
            "meta": {"section": row["section"]},
        }
        for row in ctx.documents_for(config)
        if qa_variables(row, config) is not None
    ]
    schema = {
        "type": "object",
        "properties": {
            "pairs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "question": {"type": "string", "minLength": 5},
                        "answer": {"type": "string", "minLength": 1},
                    },
                    "required": ["question", "answer"],
                },
            }
        },
        "required": ["pairs"],
    }
    return write_and_judge(
        ctx, "qa", config, items,
        writer="prompt.qa_write", writer_variables={"title", "section", "text", "n"}, schema=schema,
        to_pairs=lambda item, value: [(p["question"], p["answer"]) for p in value["pairs"][: config.per_doc]],
    )  # fmt: skip
