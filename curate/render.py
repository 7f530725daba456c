"""``gristmill render``: one template on one document, to see what a generator will make of it."""

from __future__ import annotations

from pathlib import Path

from curate.errors import TemplateError


def _document_rows(doc: Path, recipe) -> list[dict]:
    """The document's rows after the recipe's normalize and chunk stages (defaults without a recipe)."""
    from curate.executors.memory import run_stage_in_memory
    from curate.readers import discover, read_documents
    from curate.recipe import FieldsSection
    from curate.stages import get_stage

    result = read_documents(
        discover([str(doc)]),
        recipe.input.fields if recipe else FieldsSection(),
        options=recipe.input.options if recipe else None,
    )
    if not result.rows:
        reasons = "; ".join(f"{r['reason']}: {r['detail']}" for r in result.rejects) or "no documents"
        raise TemplateError(f"{doc} gives no document to render: {reasons}")
    configured = {s.name: (s, c) for s, c in recipe.resolved_stages} if recipe else {}
    rows = result.rows
    for name in ("normalize.text", "chunk.sections"):
        stage, config = configured.get(name) or (get_stage(name), get_stage(name).config())
        rows, _ = run_stage_in_memory(stage, config, rows)
        if not rows:
            raise TemplateError(f"{doc}: nothing left after {stage.ref}")
    return rows


def render_preview(
    name: str, *, doc: Path | None, recipe_path: Path | None, chunk: int = 0, variant: int = 0
) -> list[dict[str, str]]:
    from curate.generate import GenerateContext, get_generator
    from curate.recipe import load_recipe
    from curate.templating import Renderer, load_templates

    recipe = load_recipe(recipe_path) if recipe_path else None
    templates = load_templates(recipe.templates.dirs if recipe else [])
    if name not in templates:
        raise TemplateError(f"no template named {name!r}; run `gristmill templates` to list them")
    spec = templates[name]
    generator = get_generator(spec.kind)
    ctx = GenerateContext([], templates, recipe.seed if recipe else 0, recipe.persona if recipe else None, Renderer())
    if generator.row_variables is None:  # made from the recipe (persona, policy, schemas): run the generator
        return _generated_preview(spec, generator, ctx, recipe, doc, variant)
    rows = _document_rows(doc, recipe) if doc else None
    if rows is None:
        raise TemplateError(f"{name} renders a document; pass --doc FILE")
    if not 0 <= chunk < len(rows):
        raise TemplateError(f"--chunk {chunk} is out of range: {doc} has {len(rows)} chunks (0..{len(rows) - 1})")
    lenient = {"kind": spec.kind, "min_words": 1} if "min_words" in generator.config.model_fields else {}
    variables = generator.row_variables(rows[chunk], generator.config.model_validate(lenient))
    if variables is None:
        raise TemplateError(f"chunk {chunk} of {doc} gives no {spec.kind} example (too short to summarize?)")
    variables["variant"] = variant
    example = ctx.example(spec.kind, spec, variables, source_ids=[], group="")
    if example is None:
        raise TemplateError(f"{spec.path} rendered an empty user or assistant turn")
    return example["messages"]


def _generated_preview(spec, generator, ctx, recipe, doc: Path | None, variant: int) -> list[dict[str, str]]:
    """The ``variant``-th example the recipe's generator of this kind makes with this template."""
    configs = [c for g, c in (recipe.resolved_generators if recipe else []) if g.kind == spec.kind]
    if not configs:
        raise TemplateError(
            f"{spec.name} is rendered from the recipe's {spec.kind} generator; pass --recipe with a "
            f"generate entry of kind {spec.kind}"
        )
    if spec.kind == "persona" and recipe.persona is None:
        raise TemplateError(f"{spec.name} renders the persona; pass --recipe with a persona section")
    ctx.documents = _document_rows(doc, recipe) if doc else []
    config = configs[0].model_copy(update={"templates": [spec.name], "sources": None})
    examples = generator.run(ctx, config)
    if not examples:
        raise TemplateError(f"the {spec.kind} generator made no example with {spec.name} (see --doc and the recipe)")
    return examples[variant % len(examples)]["messages"]
