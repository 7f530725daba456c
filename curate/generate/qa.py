"""qa: closed-book questions about a section; the answer comes from the section's own text.

Offline, a question reads as a person would write it (phrasing.py): the heading cased as the text writes it, the
document named with the right article, and where the section states a fact clearly (a number, a definition, a
procedure, a table cell) the question asks for that fact and the answer is the sentences that state it. Each
section's other training question, and its test question, ask about its topic and are answered with the section.

Closed book, a question about a document training never showed can only be answered by inventing. So qa makes
nothing from held-out documents, and tests on *held-out question templates* (a seeded ``holdout`` share of the
kind's templates) about sections of the other documents, which training covers through its other templates:
``per_doc`` training questions per section, and one test question.
"""

from __future__ import annotations

from pydantic import Field

from curate.generate.base import (
    GenerateContext,
    GeneratorConfig,
    LLMBackend,
    pick,
    register_generator,
    section_topic,
)
from curate.generate.phrasing import Truecaser, names_title, section_facts, title_ref, topic_phrase
from curate.text import count_words, split_sentences


class QAConfig(LLMBackend, GeneratorConfig):
    kind: str = Field("qa", pattern="^qa$")
    per_doc: int = Field(
        3, ge=1, description="Questions per document row (section chunk), each from another template."
    )
    min_words: int = Field(
        15, ge=1, description="Sections with fewer words give no question: too little to answer from."
    )
    holdout: float = Field(
        0.3,
        gt=0.0,
        lt=1.0,
        description="Share of question templates held out: each section's test question. The held-out wordings "
        "are shared with grounded_qa and grounded_abstain, which ask the same templates' questions.",
    )


# What the qa writer prompt answers with: question/answer pairs written from one section.
PAIRS = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {"question": {"type": "string", "minLength": 5}, "answer": {"type": "string", "minLength": 1}},
        "required": ["question", "answer"],
    },
}


def qa_variables(row: dict, config: QAConfig, casing: Truecaser | None = None) -> dict | None:
    """The template variables of a section; ``casing`` is read from every document (the row alone without it)."""
    if count_words(row["text"]) < config.min_words:
        return None
    casing = casing or Truecaser([row["text"]])
    topic = section_topic(row)
    path = row["section"].split(" > ") if row["section"] else []
    heading = " > ".join(path[1:] if path and path[0] == row["title"] else path)
    return {
        "title": row["title"],
        "title_ref": title_ref(row["title"], casing),  # "the employee handbook", 'the "How We Work" page'
        "mention_title": bool(heading) and not names_title(topic, row["title"]),
        "section": row["section"],
        "heading": heading,
        "topic": topic_phrase(topic, casing),
        # FAQ-style headings are already the question a user would ask.
        "question": topic if topic.endswith("?") else "",
        "answer": row["text"],
        "is_intro": not heading,
        "text": row["text"],
        "lead": " ".join(split_sentences(row["text"].split("\n\n")[0])[:2]),
        "source": row["source"],
        "doc_id": row["doc_id"],
    }


@register_generator(
    "qa",
    config=QAConfig,
    variables={
        "title",
        "title_ref",
        "mention_title",
        "section",
        "heading",
        "topic",
        "question",
        "answer",
        "is_intro",
        "text",
        "lead",
        "source",
        "doc_id",
    },
    row_variables=qa_variables,
)
def generate_qa(ctx: GenerateContext, config: QAConfig, specs) -> list[dict]:
    """Per section: training questions about the facts its text states (each answered with the sentences that
    state it) and one about its topic (answered with the section), and a test question about its topic in a
    held-out template's words, which the topic question's training answer covers."""
    if config.uses_llm():
        return _llm_qa(ctx, config)
    held = ctx.held_question_templates()
    train_specs = [s for s in specs if s.name not in held]
    test_specs = [s for s in specs if s.name in held]
    out = []
    for row in ctx.training_documents(config):
        variables = qa_variables(row, config, ctx.casing)
        if variables is None:
            continue
        rng = ctx.rng("qa", row["id"])
        # the questions its text answers with a few of its sentences (a FAQ heading is its own question)
        facts = [] if variables["question"] else section_facts(section_topic(row), row["text"], ctx.casing)
        chosen = [(s, False) for s in pick(rng, train_specs, config.per_doc)] + [
            (s, True) for s in pick(rng, test_specs, 1)
        ]
        # facts go to training templates that ask a given question; one training question asks the topic
        askers = [n for n, (s, test) in enumerate(chosen) if not test and "question" in s.requires]
        topical = sum(not test for _, test in chosen) - len(askers)
        given = dict(zip(askers[: len(askers) - (topical == 0)], facts, strict=False))
        for n, (spec, test) in enumerate(chosen):
            fact = given.get(n)
            asked = {"question": fact.question, "answer": fact.answer} if fact else {}
            example = ctx.example(
                "qa",
                spec,
                {**variables, **asked, "variant": rng.randrange(1_000_000)},
                source_ids=[row["id"]],
                group=row["doc_id"],
                meta={"section": row["section"], "holdout": test, "closed_book": True}
                | ({"fact": fact.kind} if fact else {}),
            )
            if example:
                out.append(example)
    skipped = sum(1 for row in ctx.documents_for(config) if ctx.is_held_out(row))
    if skipped:
        ctx.notes.append(f"qa: no closed-book question from the {skipped} sections of held-out documents")
    return out


def _llm_qa(ctx: GenerateContext, config: QAConfig) -> list[dict]:
    """Questions a user of these docs would ask, written by the LLM, each answer judged against the chunk."""
    from curate.generate.llm_gen import write_and_judge

    n = config.per_doc + 1  # the last question of each section is its test question

    def to_pairs(item, value):
        pairs = value["pairs"][:n]
        return [(p["question"], p["answer"], {"holdout": len(pairs) > 1 and i == len(pairs) - 1, "closed_book": True})
                for i, p in enumerate(pairs)]  # fmt: skip

    items = [
        {
            "label": row["id"],
            "variables": {"title": row["title"], "section": row["section"], "text": row["text"], "n": n},
            "source": row["text"],
            "source_ids": [row["id"]],
            "group": row["doc_id"],
            "meta": {"section": row["section"]},
        }
        for row in ctx.training_documents(config)
        if qa_variables(row, config) is not None
    ]
    schema = {"type": "object", "properties": {"pairs": PAIRS}, "required": ["pairs"]}
    return write_and_judge(
        ctx, "qa", config, items,
        writer="prompt.qa_write", writer_variables={"title", "section", "text", "n"}, schema=schema,
        to_pairs=to_pairs,
    )  # fmt: skip
