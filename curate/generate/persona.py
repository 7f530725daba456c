"""persona: identity questions ("who are you?", "what can you help with?") answered in the recipe's persona."""

from __future__ import annotations

from collections import Counter

from pydantic import Field

from curate.generate.base import GenerateContext, GeneratorConfig, LLMBackend, register_generator


class PersonaConfig(LLMBackend, GeneratorConfig):
    kind: str = Field("persona", pattern="^persona$")
    count: int = Field(12, ge=1, description="Examples to generate, spread over the persona templates.")
    topics: int = Field(5, ge=1, description="Document titles named as things the assistant can help with.")


def persona_variables(persona, topics: list[str], variant: int) -> dict:
    return {
        "name": persona.name,
        "description": persona.description or "",
        "company": persona.company or "",
        "topics": topics,
        "variant": variant,
    }


@register_generator("persona", config=PersonaConfig, variables={"name", "description", "company", "topics"})
def generate_persona(ctx: GenerateContext, config: PersonaConfig, specs) -> list[dict]:
    """Identity questions answered as the persona, naming topics the documents cover."""
    if ctx.persona is None:
        return []
    # The most covered titles first (more rows = more of the corpus), ties by title for determinism.
    counts = Counter(d["title"] for d in ctx.documents_for(config) if d["title"])
    ranked = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    out, seen = [], set()
    for i in range(config.count):
        spec = specs[i % len(specs)]
        rng = ctx.rng("persona", spec.name, str(i))
        topics = sorted(rng.sample(ranked, min(config.topics, len(ranked))), key=ranked.index)
        variables = persona_variables(ctx.persona, topics, i // len(specs))
        # Source-less: the split groups by template, so a question family lives in one split only.
        example = ctx.example("persona", spec, variables, source_ids=[], group=f"template:{spec.name}")
        if example and example["id"] not in seen:
            seen.add(example["id"])
            out.append(example)
    if not config.uses_llm():
        return out
    from curate.generate.llm_gen import rewrite_answers

    def answer(ex):
        return next(m["content"] for m in ex["messages"] if m["role"] == "assistant")

    return rewrite_answers(
        ctx, "persona", config, out,
        writer="prompt.persona_rewrite", writer_variables={"answer", "name", "system"},
        variables=lambda ex: {"answer": answer(ex), "name": ctx.persona.name, "system": ctx.persona.system},
        source=answer, field="answer",
    )  # fmt: skip
