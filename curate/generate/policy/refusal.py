"""refusal: per policy category, requests filled from its slot templates, answered with a brief, polite
refusal (an opener from ``refusal_style``, the category's reason, its allowed alternative)."""

from __future__ import annotations

from pydantic import Field

from curate.generate.base import GenerateContext, register_generator
from curate.generate.policy.base import PolicyConfig, filled_distinct, paraphrased, policy_example


class RefusalConfig(PolicyConfig):
    kind: str = Field("refusal", pattern="^refusal$")


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
            example = policy_example(ctx, "refusal", spec, variables, item, {"category": category.name})
            if example:
                out.append(example)
    return out
