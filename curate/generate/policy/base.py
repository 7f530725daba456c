"""What the policy generators (refusal, benign_near_miss, abstain) share: the policy file option, requests
filled without near duplicates, LLM paraphrases, and the example row of a filled request.

Policy kinds hold out whole request families and slot values for test (slots.fill_slots); the held-out flag is
in ``meta.holdout`` and the split honours it.
"""

from __future__ import annotations

import math

from pydantic import Field, PrivateAttr, model_validator

from curate.errors import GristmillError
from curate.generate.base import GenerateContext, GeneratorConfig, LLMBackend
from curate.generate.policy.model import Policy, load_policy
from curate.generate.policy.slots import Filled, fill_slots
from curate.llm.client import failure_reason
from curate.near_dup import THRESHOLD
from curate.templating import TemplateSpec


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


def filled_distinct(
    templates: list[str],
    slots: dict[str, list[str]],
    *,
    scope: str,
    config: PolicyConfig,
    seed: int,
    held: set[str] | None = None,
) -> list[Filled]:
    """fill_slots, over-asked and thinned so no two kept requests are near duplicates (Jaccard >= 0.8)."""
    from curate.near_dup import greedy_distinct

    count = config.per_category * 3
    filled = fill_slots(templates, slots, scope=scope, count=count, holdout=config.holdout, seed=seed, held=held)
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
            ctx.reject(kind, failure_reason(answer), f"paraphrase of {item.text!r}: {answer}")
        else:
            out.append(dataclasses.replace(item, text=answer.value["paraphrase"].strip()))
    return out


def policy_example(ctx: GenerateContext, kind: str, spec: TemplateSpec, variables: dict, filled: Filled, meta: dict):
    """An example of a filled request: grouped by its family, with its slot values and side of the split."""
    return ctx.example(
        kind,
        spec,
        variables,
        source_ids=meta.pop("source_ids", []),
        group=f"family:{kind}:{filled.family}",
        meta={"family": filled.family, "slots": filled.values, "holdout": filled.holdout, **meta},
    )
