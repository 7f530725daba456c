"""The data-side commands: init, curate, stages, templates, render, inspect, report and llm check. Heavy imports
(datasets, the readers' libraries) happen inside the commands that need them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from curate.cli.app import SET_HELP, handle_errors, main, make_console


@main.command()
@click.argument("docs_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "output", default="recipe.yaml", show_default=True, type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Dataset name; default the folder's name.")
@click.option("--force", is_flag=True, help="Overwrite an existing recipe file.")
@handle_errors
def init(docs_dir: Path, output: Path, name: str | None, force: bool) -> None:
    """Write a starter recipe, with comments, for a folder of documents (SmolLM2-135M, trained and evaluated
    offline), and a starter guardrails.yaml beside it to fill in before the policy kinds are uncommented."""
    from curate.rows import slug
    from curate.starter import starter_policy, starter_recipe

    if output.exists() and not force:
        raise click.UsageError(f"{output} exists; pass --force to overwrite it or -o to write elsewhere")
    policy = output.parent / "guardrails.yaml"
    name = name or slug(docs_dir.resolve().name)
    output.write_text(starter_recipe(docs_dir, name, policy), encoding="utf-8")
    console = make_console()
    if policy.exists():
        console.print(f"kept the existing [bold]{policy}[/]")
    else:
        policy.write_text(starter_policy(name), encoding="utf-8")
    console.print(
        f"wrote [bold]{output}[/] and [bold]{policy}[/]; next: gristmill run {output} (then gristmill inspect, "
        f"report and chat on the run). For guardrails, fill in {policy} and uncomment the policy kinds.",
        soft_wrap=True,
    )


@main.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Read at most N documents.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Show the plan: inputs, steps that would resume, the LLM's requests, tokens and cost at most (none sent).",
)
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Override the recipe's executor.")
@handle_errors
def curate(recipe_path: Path, overrides: tuple[str, ...], limit: int | None, dry_run: bool, executor) -> None:
    """Curate RECIPE's documents into <output.dir>/dataset/ (resuming from checkpoints)."""
    from curate.recipe import load_recipe

    recipe = load_recipe(recipe_path, [*overrides, *([f"executor={executor}"] if executor else [])])
    if dry_run:
        _print_plan(recipe, limit)
        return
    from curate.cli.progress import RichReporter, print_curate_summary
    from curate.layout import RunLock
    from curate.pipeline import curate as run_curation

    with RunLock(recipe.layout, "curate"), RichReporter(make_console()) as reporter:
        result = run_curation(recipe, limit=limit, reporter=reporter)
    print_curate_summary(make_console(), result)


def _print_plan(recipe, limit: int | None) -> None:
    from rich.table import Table

    from curate.pipeline import plan

    files, steps, templates = plan(recipe, limit)
    console = make_console()
    console.print(f"recipe [bold]{recipe.name}[/]: {len(files)} input files, run directory {recipe.run_dir}")
    table = Table("step", "checkpoint", title="plan")
    for step in steps:
        table.add_row(step.label, "done (resumes)" if step.done else "to run")
    table.add_row("mix+split+write", "to run")
    console.print(table)
    for generator, config in recipe.resolved_generators:
        names = config.templates or sorted(n for n, t in templates.items() if t.kind == generator.kind)
        console.print(f"generate {generator.kind}: templates {', '.join(names)}")
    from curate.pipeline import uses_llm

    if uses_llm(recipe):
        from curate.llm.client import redact_url
        from curate.llm.dry_run import estimate_llm

        est = estimate_llm(recipe, limit)
        where = f"{recipe.llm.model} at {redact_url(recipe.llm.base_url)}"
        table = Table("LLM estimate", "", title=f"{where} (nothing was sent)")
        table.add_row("requests to send", str(est.requests))
        table.add_row("answered from the cache", str(est.cache_hits))
        table.add_row("prompt tokens (4 characters each)", str(est.prompt_tokens))
        table.add_row("completion tokens (at most, max_tokens each)", str(est.completion_tokens))
        priced = recipe.llm.model in recipe.llm.prices
        table.add_row(
            "cost, at most", f"{est.cost_usd:.4f} USD" if priced else "no price for this model in llm.prices"
        )
        console.print(table)


@main.command()
@click.argument("path", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), help="Default: <run>/report.html.")
@handle_errors
def report(path: Path, output: Path | None) -> None:
    """Write one self-contained HTML report: funnel, charts, example and rejects browsers, training, eval."""
    from curate.layout import RunLayout
    from curate.output import check_dataset_dir
    from curate.report.html import write_report

    output = output or RunLayout.of(check_dataset_dir(path)).report
    make_console().print(f"report: [bold]{write_report(path, output)}[/]")


@main.command()
@click.argument("path", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--port", default=0, show_default=True, help="Port on 127.0.0.1; 0: a free one.")
@click.option("--kind", default=None, help="Open on examples of this kind.")
@click.option("--reason", default=None, help="Open on the rows curate dropped for this reason (slug).")
@click.option("--reviewer", default=None, help="Who decides. Default: $GRISTMILL_REVIEWER, else the login name.")
@handle_errors
def review(path: Path, port: int, kind: str | None, reason: str | None, reviewer: str | None) -> None:
    """Review examples in the browser: accept, reject, edit, rescue. Decisions go to <run>/review/decisions.jsonl;
    the next curate applies them with mix.review set to that file."""
    import getpass
    import os
    from urllib.parse import urlencode

    from curate.errors import RecipeError
    from curate.review.server import ReviewState, make_server

    who = reviewer or os.environ.get("GRISTMILL_REVIEWER") or getpass.getuser()
    state = ReviewState(path, who)
    for option, value, known in (
        ("--kind", kind, {i["kind"] for i in state.items.values()}),
        ("--reason", reason, {i.get("reason") for i in state.items.values()} - {None}),
    ):
        if value is not None and value not in known:
            raise RecipeError(f"{option} {value!r}: this run has {', '.join(sorted(known)) or 'none'}")
    try:
        server, token = make_server(state, port)
    except OSError as err:
        raise RecipeError(f"--port {port}: cannot listen on 127.0.0.1:{port} ({err}); pick another port") from None
    query = {"token": token, **({"kind": kind} if kind else {})}
    if reason:
        query.update(view="dropped", reason=reason)
    url = f"http://127.0.0.1:{server.server_address[1]}/?{urlencode(query)}"
    items = list(state.items.values())
    dropped = sum(i["split"] == "dropped" for i in items)
    console = make_console()
    console.print(
        f"{len(items) - dropped} examples and {dropped} dropped rows of {state.dataset}, "
        f"{sum(1 for r in state.reviews.values() if r and r.reviewed)} reviewed so far; reviewer {who}"
    )
    console.print(f"decisions: {state.path}")
    console.print(f"apply them: gristmill curate RECIPE --set mix.review={state.path} (or mix: {{review: ...}})")
    console.print(f"review at [bold]{url}[/]  (Ctrl+C stops)", soft_wrap=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.group()
def llm() -> None:
    """The LLM endpoint: probe it before a run spends anything."""


@llm.command("check")
@click.argument("recipe_path", metavar="[RECIPE]", required=False, type=click.Path(path_type=Path))
@click.option("--base-url", default=None, help="Endpoint (default: the recipe's llm.base_url).")
@click.option("--model", default=None, help="Model (default: the recipe's llm.model).")
@click.option("--api-key-env", default=None, help="Variable holding the key (default: the recipe's).")
@click.option("--max-concurrency", default=32, show_default=True, type=click.IntRange(min=1), help="Probe ceiling.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@handle_errors
def llm_check(recipe_path, base_url, model, api_key_env, max_concurrency, as_json) -> None:
    """Probe an OpenAI-compatible endpoint: chat, JSON mode, JSON schema, concurrency and latency."""
    import asyncio

    from rich.table import Table

    from curate.llm.client import redact_url
    from curate.llm.probe import probe
    from curate.recipe import LLMSection, load_recipe

    settings = load_recipe(recipe_path).llm if recipe_path else LLMSection()
    updates = {k: v for k, v in {"base_url": base_url, "model": model, "api_key_env": api_key_env}.items() if v}
    settings = settings.model_copy(update=updates)
    report = asyncio.run(probe(settings, max_concurrency))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table("check", "result", title=f"llm check: {settings.model} at {redact_url(settings.base_url)}")
    chat = report["chat"]
    table.add_row("chat completions", f"{'ok' if chat['ok'] else 'FAILED ' + chat['detail']}, {chat['latency_s']}s")
    if chat["ok"]:
        forms = {
            "json_object": "json_object",
            "json_schema": "json_schema",
            "json_object_schema": "json_object + schema",
        }
        for name, label in forms.items():
            found = report[name]
            verdict = "ok" if found["ok"] else "accepted, schema not followed" if found.get("accepted") else "refused"
            table.add_row(f"response_format {label}", verdict if found["ok"] else f"{verdict} ({found['detail']})")
        conc = report["concurrency"]
        rates = ", ".join(f"{b['concurrency']}: {b['requests_per_s']}/s" for b in conc["bursts"])
        table.add_row("highest concurrency that worked", f"{conc['highest_ok']} (requests/s by concurrency: {rates})")
        table.add_row("recommended llm.json_mode", f"{report['recommended_json_mode']} (recorded for json_mode: auto)")
    make_console().print(table)


@main.command()
@handle_errors
def stages() -> None:
    """List the registered stages and generators with their config fields."""
    from rich.table import Table

    from curate.generate import GENERATORS
    from curate.stages import all_stages

    table = Table("stage", "what it does", "config (default): meaning", title="stages", show_lines=True)
    for stage in all_stages():
        table.add_row(stage.ref, stage.summary, _fields_text(stage.config))
    gens = Table("generate kind", "what it makes", "config (default): meaning", title="generators", show_lines=True)
    for kind in sorted(GENERATORS):
        gen = GENERATORS[kind]
        gens.add_row(kind, gen.summary, _fields_text(gen.config, skip={"kind"}))
    console = make_console()
    console.print(table)
    console.print(gens)


def _fields_text(model, skip: set[str] = frozenset()) -> str:
    lines = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        default = "required" if field.is_required() else json.dumps(field.get_default(call_default_factory=True))
        lines.append(f"{name} ({default}): {field.description or ''}")
    return "\n".join(lines)


@main.command()
@click.option("--dir", "dirs", multiple=True, type=click.Path(path_type=Path), help="Extra template folder.")
@handle_errors
def templates(dirs: tuple[Path, ...]) -> None:
    """List the templates (built-in, and any --dir folders, searched first)."""
    from rich.table import Table

    from curate.templating import load_templates

    table = Table("template", "kind", "requires", "description", "file", title="templates")
    for spec in sorted(load_templates([str(d) for d in dirs]).values(), key=lambda s: (s.kind, s.name)):
        table.add_row(spec.ref, spec.kind, ", ".join(spec.requires), spec.description, spec.path)
    make_console().print(table)


@main.command()
@click.argument("template_name", metavar="TEMPLATE")
@click.option("--doc", "doc", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="A document file.")
@click.option("--recipe", "recipe_path", type=click.Path(path_type=Path), help="Recipe for persona and templates.")
@click.option("--chunk", default=0, show_default=True, help="Which chunk of the document (after chunk.sections).")
@click.option("--variant", default=0, show_default=True, help="Phrasing variant.")
@handle_errors
def render(template_name: str, doc: Path | None, recipe_path: Path | None, chunk: int, variant: int) -> None:
    """Render TEMPLATE on a document (or the recipe's persona) and print the messages."""
    from curate.render import render_preview

    messages = render_preview(template_name, doc=doc, recipe_path=recipe_path, chunk=chunk, variant=variant)
    console = make_console()
    for message in messages:
        console.rule(message["role"])
        console.print(message["content"], markup=False)


@main.command()
@click.argument("path", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--kind", default=None, help="Only examples of this kind.")
@click.option("--reason", default=None, help="Only rejects with this reason (slug).")
@click.option("--sample", default=3, show_default=True, help="Examples and rejects shown per kind or reason.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--shortcuts",
    is_flag=True,
    help="Only the shortcut audit: n-grams that give a kind away, content n-grams, and policy frames by kind.",
)
@handle_errors
def inspect(path: Path, kind: str | None, reason: str | None, sample: int, as_json: bool, shortcuts: bool) -> None:
    """Counts per kind and split, drops by stage and reason, and a few examples of a dataset directory."""
    from curate.report.inspect import inspect_dataset, print_inspection, print_shortcuts, shortcut_audit

    data = shortcut_audit(path, kind) if shortcuts else inspect_dataset(path, kind=kind, reason=reason, sample=sample)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif shortcuts:
        print_shortcuts(make_console(), data)
    else:
        print_inspection(make_console(), data)
