"""refusal and benign_near_miss: guardrail examples from a policy file.

``refusal``: per policy category, requests filled from its slot templates, answered with a brief, polite
refusal (an opener from ``refusal_style``, the category's reason, its allowed alternative).

``benign_near_miss``: per category, requests that look like it but are allowed ("how do I delete MY account
data" beside "give me another customer's address"), answered from the documents: the section that best
matches the near-miss's ``topic`` (BM25) is the answer. A near-miss with no matching section is a reject, not
an invented answer. Without near-misses, a model learns to refuse everything that sounds like a category.

Both hold out whole request families and slot values for test (policy.fill_slots); the held-out flag is in
``meta.holdout`` and the split honours it.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from pydantic import Field, PrivateAttr, model_validator

from curate.errors import GristmillError
from curate.generate.base import GenerateContext, GeneratorConfig, LLMBackend, register_generator
from curate.generate.near_dup import THRESHOLD
from curate.generate.policy import Filled, Policy, fill_slots, load_policy, words
from curate.templating import TemplateSpec

_STOP = frozenset(
    "a an and are as at be by can do does for from how i in is it me my of on or our please the this to us we what "
    "when where which who why will with you your".split()
)


class PolicyConfig(LLMBackend, GeneratorConfig):
    policy: str = Field(description="The behaviour policy file (YAML); see sample_data/policies/guardrails.yaml.")
    per_category: int = Field(60, ge=2, description="Examples per policy category (before near-dedupe).")
    holdout: float = Field(
        0.3, gt=0.0, lt=1.0, description="Share of request families and slot values held out for test."
    )
    _policy: Policy | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _load(self):
        try:
            self._policy = load_policy(self.policy)
        except GristmillError as err:
            raise ValueError(str(err)) from None
        return self

    @property
    def loaded(self) -> Policy:
        assert self._policy is not None
        return self._policy

    def input_files(self) -> list[str]:
        return [self.policy]

    def behaviours(self) -> dict[str, list]:
        policy = self.loaded
        return {
            "refusal_phrasings": list(policy.refusal_style.openers) if policy.refusal_style else [],
            "abstention_phrasings": [policy.abstain.response] if policy.abstain else [],
            "policy_categories": [
                {"name": c.name, "description": c.description, "refusal": c.refusal, "alternative": c.alternative}
                for c in policy.categories
            ],
        }


class RefusalConfig(PolicyConfig):
    kind: str = Field("refusal", pattern="^refusal$")


class NearMissConfig(PolicyConfig):
    kind: str = Field("benign_near_miss", pattern="^benign_near_miss$")
    min_match: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of the topic's words the answering section must contain."
    )


def filled_distinct(
    templates: list[str], slots: dict[str, list[str]], *, scope: str, config: PolicyConfig, seed: int
) -> list[Filled]:
    """fill_slots, over-asked and thinned so no two kept requests are near duplicates (Jaccard >= 0.8)."""
    from curate.generate.near_dup import greedy_distinct

    filled = fill_slots(
        templates, slots, scope=scope, count=config.per_category * 3, holdout=config.holdout, seed=seed
    )
    dropped = greedy_distinct([f.text for f in filled], THRESHOLD)
    kept = [f for i, f in enumerate(filled) if i not in dropped]
    n_test = math.ceil(config.per_category * config.holdout)
    train = [f for f in kept if not f.holdout][: config.per_category - n_test]
    return train + [f for f in kept if f.holdout][:n_test]


def paraphrased(ctx: GenerateContext, kind: str, filled: list[Filled]) -> list[Filled]:
    """With the LLM backend, each filled request reworded by the LLM (same family, slots and side of the split);
    a request whose call fails is a reject."""
    import dataclasses

    from curate.templating import Renderer, prompt_messages, prompt_template

    rt, renderer = ctx.llm, Renderer()
    spec = prompt_template(ctx.templates, "prompt.paraphrase", {"request"})
    schema = {
        "type": "object",
        "properties": {"paraphrase": {"type": "string", "minLength": 3}},
        "required": ["paraphrase"],
    }
    requests = [prompt_messages(renderer, spec, {"request": f.text}) for f in filled]
    ctx.llm_rows += len(requests)
    out = []
    for item, answer in zip(
        filled, rt.map(lambda m: rt.client.chat_json(m, schema, "paraphrase"), requests), strict=True
    ):
        if isinstance(answer, Exception):
            ctx.reject(kind, "llm_failed", f"paraphrase of {item.text!r}: {answer}")
        else:
            out.append(dataclasses.replace(item, text=answer.value["paraphrase"].strip()))
    return out


def _source_less(ctx: GenerateContext, kind: str, spec: TemplateSpec, variables: dict, filled: Filled, meta: dict):
    return ctx.example(
        kind,
        spec,
        variables,
        source_ids=meta.pop("source_ids", []),
        group=f"family:{kind}:{filled.family}",
        meta={"family": filled.family, "slots": filled.values, "holdout": filled.holdout, **meta},
    )


@register_generator(
    "refusal",
    config=RefusalConfig,
    variables={"request", "openers", "refusal", "alternative", "category", "description", "name", "company"},
)
def generate_refusal(ctx: GenerateContext, config: RefusalConfig, specs) -> list[dict]:
    """Refusals of requests a policy forbids, per category, with the allowed alternative."""
    policy, out = config.loaded, []
    for category in policy.categories:
        filled = filled_distinct(category.requests, category.slots, scope=category.name, config=config, seed=ctx.seed)
        if config.uses_llm():
            filled = paraphrased(ctx, "refusal", filled)
        for i, item in enumerate(filled):
            rng = ctx.rng("refusal", category.name, item.text)
            spec = specs[i % len(specs)]
            variables = {
                "request": item.text,
                "openers": policy.refusal_style.openers,
                "refusal": category.refusal,
                "alternative": category.alternative,
                "category": category.name,
                "description": category.description,
                "name": ctx.persona.name if ctx.persona else "",
                "company": (ctx.persona.company or "") if ctx.persona else "",
                "variant": rng.randrange(1_000_000),
            }
            example = _source_less(ctx, "refusal", spec, variables, item, {"category": category.name})
            if example:
                out.append(example)
    return out


class SectionIndex:
    """BM25 over document rows (title, section heading and text), for finding the section that answers a topic."""

    def __init__(self, documents: list[dict[str, Any]], k1: float = 1.2, b: float = 0.75):
        self.documents = documents
        self.terms = [
            Counter(w for w in words(f"{d['title']} {d['section']} {d['text']}") if w not in _STOP) for d in documents
        ]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.avg = sum(self.lengths) / max(len(self.lengths), 1)
        df = Counter(w for t in self.terms for w in t)
        n = len(documents)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self.k1, self.b = k1, b

    def best(self, query: str, min_match: float) -> dict[str, Any] | None:
        """The best-scoring row holding at least ``min_match`` of the query's words, or None."""
        q = [w for w in dict.fromkeys(words(query)) if w not in _STOP]
        best, best_score = None, 0.0
        for doc, tf, length in zip(self.documents, self.terms, self.lengths, strict=True):
            present = [w for w in q if tf.get(w)]
            if not q or len(present) / len(q) < min_match:
                continue
            norm = self.k1 * (1 - self.b + self.b * length / max(self.avg, 1e-9))
            score = sum(self.idf[w] * tf[w] * (self.k1 + 1) / (tf[w] + norm) for w in present)
            if score > best_score:
                best, best_score = doc, score
        return best


@register_generator(
    "benign_near_miss",
    config=NearMissConfig,
    variables={"request", "answer", "title", "topic", "category", "name", "company"},
)
def generate_near_miss(ctx: GenerateContext, config: NearMissConfig, specs) -> list[dict]:
    """Allowed requests that look like a refusal category, answered helpfully from the documents."""
    policy, out = config.loaded, []
    index = SectionIndex(ctx.documents_for(config))
    for category in policy.categories:
        for n, near in enumerate(category.near_misses):
            row = index.best(near.topic, config.min_match)
            if row is None:
                ctx.reject(
                    "benign_near_miss",
                    "near_miss_ungrounded",
                    f"{category.name}.near_misses.{n}: no document section matches topic {near.topic!r}; "
                    "add the documentation that answers it or change the topic",
                )
                continue
            scope = f"{category.name}/n{n}"
            share = max(2, config.per_category // max(len(category.near_misses), 1))
            per = config.model_copy(update={"per_category": share})
            for i, item in enumerate(
                filled_distinct(near.requests, near.slots, scope=scope, config=per, seed=ctx.seed)
            ):
                rng = ctx.rng("benign_near_miss", scope, item.text)
                variables = {
                    "request": item.text,
                    "answer": row["text"],
                    "title": row["title"],
                    "topic": near.topic,
                    "category": category.name,
                    "name": ctx.persona.name if ctx.persona else "",
                    "company": (ctx.persona.company or "") if ctx.persona else "",
                    "variant": rng.randrange(1_000_000),
                }
                meta = {"category": category.name, "section": row["section"], "source_ids": [row["id"]]}
                example = _source_less(ctx, "benign_near_miss", specs[i % len(specs)], variables, item, meta)
                if example:
                    out.append(example)
    return out
