"""grounded_qa and grounded_abstain: "answer from these excerpts, or say they don't cover it", the shape most
company assistants ship in (retrieval puts documentation into the prompt).

The user turn is one format, the ``prompt.grounded_user`` template: numbered documentation excerpts, then a
question (drawn from the qa question templates, so grounded and closed-book questions read alike; the held-out
wordings are the qa generator's, shared, so no test wording trains in any kind). Retrieval at chat and eval time
renders the same template.

- ``grounded_qa``: the excerpts are the answering section and ``distractors`` sections of other documents, in a
  seeded order. The answer quotes the answering excerpt's sentences nearest the question and cites its number.
- ``grounded_abstain``: distractors only; the answer says the provided documentation does not cover the question,
  and names what the excerpts are about.

A distractor must not answer the question: a near copy of the answering section (a copied policy page) or one
that holds most of the question's topic words (an FAQ overlapping a guide) is skipped, counted as a
``distractor_answers`` reject; an example left without clean distractors is a ``no_clean_distractor`` reject.
Excerpts are cut to ``excerpt_words`` so every example fits the training length. Held-out documents are the test
set: their sections are test questions, asked in held-out wordings, with distractors from other held-out
documents only; they never serve as a training example's distractor.
"""

from __future__ import annotations

import json
import random
from typing import Any

from pydantic import Field, model_validator

from curate.generate.base import (
    GenerateContext,
    GeneratorConfig,
    LLMBackend,
    get_generator,
    register_generator,
    section_topic,
)
from curate.generate.policy.near_miss import relevant_sentences
from curate.generate.qa import PAIRS, QAConfig, qa_variables
from curate.near_dup import jaccard_of
from curate.retrieval import STOP_WORDS, excerpt, excerpt_source, grounded_user_turn
from curate.templating import templates_for
from curate.text import count_words, words

ABSTENTION = "The provided documentation does not cover"  # how grounded_abstain's built-in answers begin


class GroundedConfig(LLMBackend, GeneratorConfig):
    per_doc: int = Field(1, ge=1, description="Examples per section of a training document (another question each).")
    test_per_doc: int = Field(
        4, ge=1, description="Examples per section of a held-out document: the test set is a few documents' sections."
    )
    distractors_min: int = Field(1, ge=0, description="Fewest excerpts from other documents.")
    distractors_max: int = Field(2, ge=1, description="Most excerpts from other documents.")
    excerpt_words: int = Field(120, ge=10, description="Each excerpt is cut to this many words, at a sentence end.")
    min_words: int = Field(15, ge=1, description="Sections with fewer words give no example.")
    question_templates: list[str] | None = Field(
        None, description="qa templates the questions come from; default every qa template."
    )
    max_topic_overlap: float = Field(
        0.6, gt=0.0, le=1.0, description="A distractor holding this share of the question's topic words answers it."
    )
    max_copy_jaccard: float = Field(
        0.5, gt=0.0, le=1.0, description="A distractor this similar to the answering section (word 3-grams) is a copy."
    )

    @model_validator(mode="after")
    def _range(self):
        if self.distractors_min > self.distractors_max:
            raise ValueError(
                f"distractors_min ({self.distractors_min}) exceeds distractors_max ({self.distractors_max})"
            )
        return self


class GroundedQAConfig(GroundedConfig):
    kind: str = Field("grounded_qa", pattern="^grounded_qa$")
    answer_sentences: int = Field(2, ge=1, description="Sentences of the answering excerpt the answer quotes.")


class GroundedAbstainConfig(GroundedConfig):
    kind: str = Field("grounded_abstain", pattern="^grounded_abstain$")

    def behaviours(self) -> dict[str, list[str]]:
        return {"abstention_phrasings": [f"{ABSTENTION} {{entity}}"]}


def topic_words(row: dict[str, Any], question: str) -> set[str]:
    return {w for w in words(f"{section_topic(row)} {question}") if w not in STOP_WORDS and len(w) > 2}


def answers(distractor: dict[str, Any], target: dict[str, Any], question: str, config: GroundedConfig) -> str | None:
    """Why ``distractor`` would answer the question about ``target`` (a copy, or its topic words), or None."""
    similarity = jaccard_of(distractor["text"], target["text"])
    if similarity >= config.max_copy_jaccard:
        return f"a near copy of the answering section (Jaccard {similarity:.2f})"
    wanted = topic_words(target, question)
    found = wanted & set(words(f"{distractor['title']} {distractor['section']} {distractor['text']}"))
    if wanted and len(found) / len(wanted) >= config.max_topic_overlap:
        return f"it holds {len(found)} of the question's {len(wanted)} topic words ({', '.join(sorted(found))})"
    return None


def _template_questions(ctx: GenerateContext, config: GroundedConfig):
    """questions(target, rng) -> [(question, None, {})]: ``per_doc`` qa templates' user turns about the target."""
    specs = templates_for("qa", ctx.templates, config.question_templates, set(get_generator("qa").variables))

    held = ctx.held_question_templates()
    by_side = {test: [s for s in specs if (s.name in held) == test] for test in (True, False)}

    def questions(row: dict[str, Any], rng: random.Random) -> list[tuple[str, str | None, dict[str, Any]]]:
        variables = qa_variables(row, QAConfig(min_words=1), ctx.casing)
        out = []
        test = ctx.is_held_out(row)
        wanted, side = (config.test_per_doc if test else config.per_doc), by_side[test]
        for spec in rng.sample(side, min(wanted, len(side))):
            turns = ctx.renderer.render(spec, {**variables, "variant": rng.randrange(1_000_000)})
            if turns.get("user"):
                out.append((turns["user"], None, {"question_template": spec.ref}))
        return out

    return questions


def _llm_questions(ctx: GenerateContext, config: GroundedConfig, kind: str, targets: list[dict[str, Any]]):
    """questions(target, rng) -> [(question, answer, meta)]: questions (and answers) the LLM wrote from the target
    section, each passed by the grounding judge (failures are judge_rejected or llm_failed rejects)."""
    from curate.generate.llm_gen import write_and_judge

    def wanted(row):
        return config.test_per_doc if ctx.is_held_out(row) else config.per_doc

    items = [
        {
            "label": row["id"],
            "variables": {"title": row["title"], "section": row["section"], "text": row["text"], "n": wanted(row)},
            "source": row["text"],
            "source_ids": [row["id"]],
            "group": row["doc_id"],
            "n": wanted(row),
        }
        for row in targets
    ]
    schema = {"type": "object", "properties": {"pairs": PAIRS}, "required": ["pairs"]}
    judged = write_and_judge(
        ctx, kind, config, items,
        writer="prompt.qa_write", writer_variables={"title", "section", "text", "n"}, schema=schema,
        to_pairs=lambda item, value: [(p["question"], p["answer"], {}) for p in value["pairs"][: item["n"]]],
    )  # fmt: skip
    written: dict[str, list] = {}
    for example in judged:
        meta = json.loads(example["meta"])
        user, answer = (
            next(m["content"] for m in example["messages"] if m["role"] == r) for r in ("user", "assistant")
        )
        keep = {k: meta[k] for k in ("model", "writer", "judge") if k in meta}
        written.setdefault(example["source_ids"][0], []).append((user, answer, keep))
    return lambda row, rng: written.get(row["id"], [])


def _distractors(ctx, config, rng, target, question, pool, kind) -> list[dict[str, Any]] | None:
    """Distractors from other documents that do not answer the question; None when too few are clean."""
    wanted = rng.randint(config.distractors_min, config.distractors_max)
    candidates = [d for d in pool if d["doc_id"] != target["doc_id"]]
    rng.shuffle(candidates)
    chosen: list[dict[str, Any]] = []
    for candidate in candidates:
        if len(chosen) == wanted:
            break
        why = answers(candidate, target, question, config)
        if why:
            ctx.reject(
                kind,
                "distractor_answers",
                f"{candidate['id']} cannot stand beside a question on {target['id']}: {why}",
                id=target["id"],
            )
            continue
        chosen.append(candidate)
    if len(chosen) < max(wanted, 1 if kind == "grounded_abstain" else 0):
        ctx.reject(
            kind, "no_clean_distractor", f"{target['id']}: {len(chosen)} of {wanted} distractors", id=target["id"]
        )
        return None
    return chosen


def _context(ctx: GenerateContext, rows: list[dict[str, Any]], question: str, config: GroundedConfig) -> str:
    return grounded_user_turn(ctx.templates, ctx.renderer, rows, question, config.excerpt_words)


def _examples(ctx: GenerateContext, config: GroundedConfig, specs, kind: str) -> list[dict[str, Any]]:
    everything = ctx.documents_for(config)
    # Distractors come from the target's side: a test prompt's excerpts all from held-out documents (none of them
    # ever trains), a training prompt's never from one.
    training = ctx.training_documents(config)
    pools = {True: [d for d in everything if ctx.is_held_out(d)], False: training}
    targets = [row for row in everything if count_words(row["text"]) >= config.min_words]
    if config.uses_llm():
        questions = _llm_questions(ctx, config, kind, targets)
    else:
        questions = _template_questions(ctx, config)
    out = []
    for target in targets:
        test = ctx.is_held_out(target)
        rng = ctx.rng(kind, target["id"])
        for question, written_answer, extra in questions(target, rng):
            distractors = _distractors(ctx, config, rng, target, question, pools[test], kind)
            if distractors is None:
                continue
            rows = [*distractors, target] if kind == "grounded_qa" else list(distractors)
            rng.shuffle(rows)
            variables: dict[str, Any] = {"context": _context(ctx, rows, question, config)}
            meta = {
                "section": target["section"],
                "target": target["id"],
                "question": question,
                "excerpts": [r["id"] for r in rows],
                "holdout": test,
                **extra,
            }
            if kind == "grounded_qa":
                n = rows.index(target) + 1
                quoted = relevant_sentences(excerpt(target, config.excerpt_words), question, config.answer_sentences)
                variables.update(answer=written_answer or quoted, n=n)
                meta["answer_excerpt"] = n
            else:
                topic = section_topic(target).rstrip("?").strip()
                variables.update(
                    topic=(topic[:1].lower() + topic[1:]) if topic else "that",
                    covered=" and ".join(excerpt_source(r) for r in rows),
                )
            spec = specs[rng.randrange(len(specs))]
            example = ctx.example(
                kind,
                spec,
                {**variables, "variant": rng.randrange(1_000_000)},
                source_ids=[r["id"] for r in rows] if kind == "grounded_abstain" else [target["id"]],
                group=target["doc_id"],
                meta=meta,
            )
            if example:
                if "judge" in extra:
                    example["generator"] = "llm"
                out.append(example)
    return out


@register_generator("grounded_qa", config=GroundedQAConfig, variables={"context", "answer", "n"})
def generate_grounded_qa(ctx: GenerateContext, config: GroundedQAConfig, specs) -> list[dict]:
    """Numbered excerpts (the answering section and distractors) and a question; the answer quotes and cites."""
    return _examples(ctx, config, specs, "grounded_qa")


@register_generator("grounded_abstain", config=GroundedAbstainConfig, variables={"context", "topic", "covered"})
def generate_grounded_abstain(ctx: GenerateContext, config: GroundedAbstainConfig, specs) -> list[dict]:
    """Excerpts that do not answer the question; the answer says so and names what they cover."""
    return _examples(ctx, config, specs, "grounded_abstain")
