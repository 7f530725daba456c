"""qa: a question built from a section's heading path and title; the answer is the grounded section text."""

from __future__ import annotations

from pydantic import Field

from curate.generate.base import GenerateContext, GeneratorConfig, pick, register_generator, section_topic
from curate.text import count_words, split_sentences


class QAConfig(GeneratorConfig):
    kind: str = Field("qa", pattern="^qa$")
    per_doc: int = Field(
        3, ge=1, description="Questions per document row (section chunk), each from another template."
    )
    min_words: int = Field(
        15, ge=1, description="Sections with fewer words give no question: too little to answer from."
    )


QA_VARIABLES = {"title", "section", "topic", "text", "lead", "source", "doc_id"}


@register_generator("qa", config=QAConfig, variables=QA_VARIABLES)
def generate_qa(ctx: GenerateContext, config: QAConfig, specs) -> list[dict]:
    """Questions from heading path and title; the answer is the section text, grounded in the document."""
    out = []
    for row in ctx.documents_for(config):
        if count_words(row["text"]) < config.min_words:
            continue
        rng = ctx.rng("qa", row["id"])
        variables = {
            "title": row["title"],
            "section": row["section"],
            "topic": section_topic(row),
            "text": row["text"],
            "lead": " ".join(split_sentences(row["text"].split("\n\n")[0])[:2]),
            "source": row["source"],
            "doc_id": row["doc_id"],
        }
        for spec in pick(rng, specs, config.per_doc):
            example = ctx.example(
                "qa",
                spec,
                {**variables, "variant": rng.randrange(1_000_000)},
                source_ids=[row["id"]],
                group=row["doc_id"],
                meta={"section": row["section"]},
            )
            if example:
                out.append(example)
    return out
