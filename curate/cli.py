"""The ``gristmill`` command. The only place where errors become messages and exit codes.

Heavy imports (datasets, torch, transformers, trl) happen inside the commands that need them, so
``gristmill --help`` stays fast; tests/test_cli.py checks that it imports none of torch, transformers, trl.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click

from curate import __version__
from curate.errors import GristmillError


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def handle_errors(fn):
    """Turn a GristmillError into one readable message on stderr and the error's exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GristmillError as err:
            _console(stderr=True).print(f"[bold red]error:[/] {err}", markup=True, soft_wrap=True)
            sys.exit(err.exit_code)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gristmill")
def main() -> None:
    """gristmill: company documents in, a curated instruction-tuning dataset out.

    Start with `gristmill init DOCS_DIR`, then `gristmill curate recipe.yaml`.
    """


@main.command()
@click.argument("docs_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "output", default="recipe.yaml", show_default=True, type=click.Path(path_type=Path))
@click.option("--name", default=None, help="Dataset name; default the folder's name.")
@click.option("--force", is_flag=True, help="Overwrite an existing recipe file.")
@handle_errors
def init(docs_dir: Path, output: Path, name: str | None, force: bool) -> None:
    """Write a starter recipe, with comments, for a folder of documents."""
    from curate.starter import starter_recipe

    if output.exists() and not force:
        raise click.UsageError(f"{output} exists; pass --force to overwrite it or -o to write elsewhere")
    text = starter_recipe(docs_dir, name)
    output.write_text(text, encoding="utf-8")
    _console().print(f"wrote [bold]{output}[/]; run: gristmill curate {output}")


@main.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (repeatable).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Read at most N documents.")
@click.option("--dry-run", is_flag=True, help="Validate and show the plan (inputs, steps, what would resume).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Override the recipe's executor.")
@handle_errors
def curate(recipe_path: Path, overrides: tuple[str, ...], limit: int | None, dry_run: bool, executor) -> None:
    """Curate RECIPE's documents into <output.dir>/dataset/ (resuming from checkpoints)."""
    from curate.recipe import load_recipe

    recipe = load_recipe(recipe_path, [*overrides, *([f"executor={executor}"] if executor else [])])
    if dry_run:
        _print_plan(recipe, limit)
        return
    from curate.pipeline import curate as run_curation
    from curate.report.console import RichReporter, print_curate_summary

    with RichReporter(_console()) as reporter:
        result = run_curation(recipe, limit=limit, reporter=reporter)
    print_curate_summary(_console(), result)


def _print_plan(recipe, limit: int | None) -> None:
    from rich.table import Table

    from curate.pipeline import plan

    files, steps, templates = plan(recipe, limit)
    console = _console()
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
        from curate.llm.dry_run import estimate_llm

        est = estimate_llm(recipe, limit)
        table = Table("LLM estimate", "", title=f"{recipe.llm.model} at {recipe.llm.base_url} (nothing was sent)")
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
@click.argument("path", metavar="RUN_OR_DATASET_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override train.* (sft.max_steps=20).")
@click.option("--preflight-only", is_flag=True, help="Check the data against the template and stop.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in <run>/model/checkpoints.")
@handle_errors
def train(path: Path, overrides: tuple[str, ...], preflight_only: bool, resume: bool) -> None:
    """Fine-tune on a curated dataset with TRL's SFTTrainer (preflight first, always)."""
    from train.progress import train_with_progress

    train_with_progress(_console(), path, list(overrides), resume=resume, preflight_only=preflight_only)


@main.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (repeatable).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Override the recipe's executor.")
@handle_errors
def run(recipe_path: Path, overrides: tuple[str, ...], executor) -> None:
    """Curate, train and evaluate RECIPE in one go; each phase resumes where an interrupted run stopped."""
    import time

    from curate.recipe import load_recipe
    from train.run import run_all

    start = time.perf_counter()
    console = _console()
    overrides = (*overrides, *([f"executor={executor}"] if executor else []))
    recipe = load_recipe(recipe_path, list(overrides))
    result = run_all(recipe, list(overrides), console=console)
    from curate.report.html import write_report

    report_path = write_report(result.run_dir, result.run_dir / "report.html")
    _print_run_summary(console, result, time.perf_counter() - start)
    console.print(f"report: [bold]{report_path}[/]")


def _print_run_summary(console, result, wall: float) -> None:
    from rich.table import Table

    console.rule("summary")
    examples = result.curate.stats["examples"]
    table = Table("phase", "result", title=f"gristmill run: {result.run_dir}")
    kinds = ", ".join(f"{k} {n}+{examples['test'].get(k, 0)}" for k, n in examples["train"].items())
    table.add_row(
        "curate", f"{examples['total']['train']} train + {examples['total']['test']} test examples ({kinds})"
    )
    t = result.training
    loss = f"{t['loss_curve'][-1]['loss']:.3f}" if t.get("loss_curve") else "n/a"
    table.add_row("train", f"{result.trained}: {t['steps']} steps in {t['wall_seconds']:.0f}s, final loss {loss}")
    checks = result.eval_report["targets"]
    passed = sum(c["passed"] for c in checks)
    table.add_row("eval", f"{passed}/{len(checks)} behaviour targets met; {result.run_dir / 'eval' / 'eval.json'}")
    table.add_row("wall time", f"{wall:.0f}s")
    console.print(table)


@main.command()
@click.argument("path", metavar="RUN_OR_DATASET_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), help="Default: <run>/report.html.")
@handle_errors
def report(path: Path, output: Path | None) -> None:
    """Write one self-contained HTML report: funnel, charts, example and rejects browsers, training, eval."""
    from curate.output import check_dataset_dir
    from curate.report.html import write_report

    output = output or check_dataset_dir(path).parent / "report.html"
    _console().print(f"report: [bold]{write_report(path, output)}[/]")


@main.command("eval")
@click.argument(
    "path", metavar="RUN_DIR", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path)
)
@click.option("--model", "model", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Model folder.")
@click.option("--dataset", "dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dataset.")
@click.option("--baseline", default=None, help="Model folder to compare with; default the untrained start; 'none'.")
@click.option("--prompts", type=click.Path(path_type=Path), help="JSONL of your own {prompt, expected} prompts.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, help="Default: the recipe's eval section.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default: the recipe's eval section.")
@handle_errors
def eval_cmd(path, model, dataset, baseline, prompts, max_new_tokens, batch_size) -> None:
    """Score the trained model on the held-out split per behaviour kind, against a baseline."""
    from train.evaluate import resolve_paths

    model_dir, dataset_dir, eval_dir = resolve_paths(path, model, dataset)
    from train.progress import eval_with_progress

    result = eval_with_progress(
        _console(), model_dir, dataset_dir, eval_dir, baseline, prompts, max_new_tokens, batch_size
    )
    if not result.report["passed"]:
        _console().print("[yellow]some behaviour targets were missed (see the table)[/]")


@main.command()
@click.argument("path", metavar="MODEL_DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--prompt", default=None, help="Answer this one prompt and exit (for scripts).")
@click.option("--system", default=None, help="System prompt; default the run's persona.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="0: greedy.")
@handle_errors
def chat(path: Path, prompt: str | None, system: str | None, max_new_tokens: int, temperature: float) -> None:
    """Chat with a trained model (a model folder or a run directory). /reset clears, /exit quits."""
    from train.chat import Chat, resolve_model

    model_dir, persona = resolve_model(path)
    system = system if system is not None else persona
    bot = Chat(model_dir, max_new_tokens=max_new_tokens, temperature=temperature)
    start = [{"role": "system", "content": system}] if system else []
    if prompt is not None:
        click.echo(bot.reply([*start, {"role": "user", "content": prompt}]))
        return
    console = _console()
    console.print(f"chatting with [bold]{model_dir}[/]; /reset clears the conversation, /exit or Ctrl-D quits")
    history = list(start)
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if line.strip() in ("/exit", "/quit"):
            return
        if line.strip() == "/reset":
            history = list(start)
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        answer = bot.reply(history)
        history.append({"role": "assistant", "content": answer})
        console.print(f"[bold]model>[/] {answer}", markup=True, highlight=False)


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

    from curate.llm.probe import probe
    from curate.recipe import LLMSection, load_recipe

    settings = load_recipe(recipe_path).llm if recipe_path else LLMSection()
    updates = {k: v for k, v in {"base_url": base_url, "model": model, "api_key_env": api_key_env}.items() if v}
    settings = settings.model_copy(update=updates)
    report = asyncio.run(probe(settings, max_concurrency))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    table = Table("check", "result", title=f"llm check: {settings.model} at {settings.base_url}")
    chat = report["chat"]
    table.add_row("chat completions", f"{'ok' if chat['ok'] else 'FAILED ' + chat['detail']}, {chat['latency_s']}s")
    if chat["ok"]:
        for name in ("json_object", "json_schema"):
            table.add_row(f"response_format {name}", "ok" if report[name]["ok"] else f"no ({report[name]['detail']})")
        conc = report["concurrency"]
        rates = ", ".join(f"{b['concurrency']}: {b['requests_per_s']}/s" for b in conc["bursts"])
        table.add_row("highest concurrency that worked", f"{conc['highest_ok']} (requests/s by concurrency: {rates})")
        table.add_row("recommended llm.json_mode", report["recommended_json_mode"])
    _console().print(table)


@main.command("accelerate-config")
@click.argument("strategy", type=click.Choice(["ddp", "fsdp"]))
@click.option("--processes", default=2, show_default=True, type=click.IntRange(min=1), help="GPUs (processes).")
@click.option("-o", "--output", "output", type=click.Path(path_type=Path), help="Write here instead of stdout.")
def accelerate_config(strategy: str, processes: int, output: Path | None) -> None:
    """Write an accelerate config for multi-GPU training with DDP or FSDP."""
    from train.launch import accelerate_yaml

    text = accelerate_yaml(strategy, processes)
    if output:
        output.write_text(text)
        _console().print(f"wrote {output}; run: accelerate launch --config_file {output} -m curate.cli train RUN")
    else:
        click.echo(text, nl=False)


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
    console = _console()
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
    _console().print(table)


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
    console = _console()
    for message in messages:
        console.rule(message["role"])
        console.print(message["content"], markup=False)


@main.command()
@click.argument("path", metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--kind", default=None, help="Only examples of this kind.")
@click.option("--reason", default=None, help="Only rejects with this reason (slug).")
@click.option("--sample", default=3, show_default=True, help="Examples and rejects shown per kind or reason.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def inspect(path: Path, kind: str | None, reason: str | None, sample: int, as_json: bool) -> None:
    """Counts per kind and split, drops by stage and reason, and a few examples of a dataset directory."""
    from curate.report.inspect import inspect_dataset, print_inspection

    data = inspect_dataset(path, kind=kind, reason=reason, sample=sample)
    if as_json:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print_inspection(_console(), data)


if __name__ == "__main__":
    main()
