"""The model-side commands: train, run, eval, export, chat and accelerate-config. torch, transformers and trl
are imported only inside them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from curate.cli.app import SET_HELP, handle_errors, main, make_console


@main.command()
@click.argument("path", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--preflight-only", is_flag=True, help="Check the data against the template and stop.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in <run>/model/checkpoints.")
@handle_errors
def train(path: Path, overrides: tuple[str, ...], preflight_only: bool, resume: bool) -> None:
    """Fine-tune on a curated dataset with TRL's SFTTrainer (preflight first, always)."""
    from curate.cli.progress import train_with_progress
    from curate.layout import RunLayout, RunLock
    from curate.output import check_dataset_dir
    from curate.recipe import train_override

    overrides = [train_override(o) for o in overrides]  # the same keys as on every command
    layout = RunLayout.of(check_dataset_dir(path))
    with RunLock(layout, "train"):
        train_with_progress(make_console(), path, overrides, resume=resume, preflight_only=preflight_only)


@main.command()
@click.argument("recipe_path", metavar="RECIPE", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help=SET_HELP)
@click.option("--executor", type=click.Choice(["local", "ray"]), default=None, help="Override the recipe's executor.")
@click.option("--strict", is_flag=True, help="Exit 8 when a target is missed, a kind regressed or the eval is broken.")
@handle_errors
def run(recipe_path: Path, overrides: tuple[str, ...], executor, strict: bool) -> None:
    """Curate, train and evaluate RECIPE in one go; each phase resumes where an interrupted run stopped."""
    import time

    from curate.cli.run import run_all
    from curate.layout import RunLock
    from curate.recipe import load_recipe

    start = time.perf_counter()
    console = make_console()
    overrides = (*overrides, *([f"executor={executor}"] if executor else []))
    recipe = load_recipe(recipe_path, list(overrides))
    with RunLock(recipe.layout, "run"):
        result = run_all(recipe, list(overrides), console=console)
    from curate.report.html import write_report

    report_path = write_report(result.run_dir, result.layout.report)
    _print_run_summary(console, result, time.perf_counter() - start)
    console.print(f"report: [bold]{report_path}[/]")
    _gate(result.eval_report, strict)


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
    trained = f"{result.trained}: {t['steps']} steps in {t['wall_seconds']:.0f}s, final loss {loss}"
    if t.get("preference"):
        pref = t["preference"]
        margin = (pref["curve"] or [{}])[-1].get("margin") or 0
        trained += f"; DPO {pref['steps']} steps in {pref['wall_seconds']:.0f}s, reward margin {margin:.2f}"
    table.add_row("train", trained)
    report = result.eval_report
    passed = sum(c["passed"] for c in report["targets"])
    regressed = sorted({f"{r['label']} (vs {r['versus']})" for r in report["regressions"]})
    table.add_row(
        "eval",
        f"{passed}/{len(report['targets'])} behaviour targets met; "
        + (f"[red]regressed: {', '.join(regressed)}[/]; " if regressed else "no regression; ")
        + str(result.layout.eval / "eval.json"),
    )
    if result.export:
        table.add_row("export", export_line(result.export, result.run_dir / "export"))
    table.add_row("wall time", f"{wall:.0f}s: " + phase_times(result))
    console.print(table)


def phase_times(result) -> str:
    """Where the run's time went: each phase, training split into the trainer and the rest (fetching and
    converting a named base, loading, tokenizing, saving), evaluation by model."""
    p, t = result.phases, result.training
    train = f"train {p['train']:.0f}s"
    if result.trained != "reused":
        dpo = t.get("preference")
        trainer = f"trainer {t['wall_seconds']:.0f}s" + (f", DPO {dpo['wall_seconds']:.0f}s" if dpo else "")
        other = t.get("other_seconds", 0) + (dpo["other_seconds"] if dpo else 0)
        train += f" ({trainer}, model and data {other:.0f}s)"
    models = ", ".join(f"{tag} {s:.0f}s" for tag, s in result.eval_report.get("seconds", {}).items())
    out = f"curate {p['curate']:.0f}s, {train}, eval {p['eval']:.0f}s ({models})"
    return out + (f", export {p['export']:.0f}s" if "export" in p else "")


def export_line(summary: dict, folder: Path) -> str:
    files = ", ".join(f"{f} {summary['sizes_mb'][f]:.0f} MB" for f in summary["files"] if f in summary["sizes_mb"])
    return f"{files} in {folder}"


@main.command("eval")
@click.argument("path", metavar="[RUN]", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--model", "model", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Model folder.")
@click.option("--dataset", "dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), help="Dataset.")
@click.option("--baseline", default=None, help="Model folder to compare with; default the untrained start; 'none'.")
@click.option("--prompts", type=click.Path(path_type=Path), help="JSONL of your own {prompt, expected} prompts.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=None, help="Default: the recipe's eval section.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Default: the recipe's eval section.")
@click.option("--retrieve", is_flag=True, help="Also ask the held-out qa questions with retrieved excerpts (BM25).")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Excerpts --retrieve shows.")
@click.option("--endpoint", default=None, metavar="URL", help="Also score a served model (OpenAI-compatible /v1).")
@click.option("--endpoint-model", default=None, metavar="NAME", help="The model name at --endpoint.")
@click.option("--api-key-env", default="OPENAI_API_KEY", show_default=True, help="Variable holding --endpoint's key.")
@click.option(
    "--endpoint-body",
    default=None,
    metavar="JSON",
    help="Request fields beyond OpenAI's: '{\"repeat_penalty\": 1.0}' for llama-cpp-python's server.",
)
@click.option(
    "--endpoint-prompted/--no-endpoint-prompted",
    default=True,
    show_default=True,
    help="Also score --endpoint with the policy prompt (off: the served model as it is, e.g. an export).",
)
@click.option("--strict", is_flag=True, help="Exit 8 when a target is missed, a kind regressed or the eval is broken.")
@handle_errors
def eval_cmd(
    path, model, dataset, baseline, prompts, max_new_tokens, batch_size, retrieve, top_k, endpoint, endpoint_model,
    api_key_env, endpoint_body, endpoint_prompted, strict,
) -> None:  # fmt: skip
    """Score the trained model on the held-out split per behaviour kind, against the untouched base and the base
    prompted with the policy (eval.baselines), each rate with its 95% interval; regressions are named. With
    --endpoint, a served model is scored on the same items too, with and without the policy prompt. With
    --retrieve, the held-out qa questions are asked again with the top sections of the dataset's documents, and
    the table adds the retrieval hit rate at 1, 3 and 5."""
    from curate.errors import InputError
    from train.config import EndpointSection
    from train.eval.run import resolve_paths

    if bool(endpoint) != bool(endpoint_model):
        raise InputError("--endpoint and --endpoint-model go together: give the server's URL and its model name")
    try:
        body = json.loads(endpoint_body) if endpoint_body else {}
    except ValueError as err:
        raise InputError(f"--endpoint-body {endpoint_body!r} is not JSON ({err}); give an object") from None
    if not isinstance(body, dict):
        raise InputError(f'--endpoint-body {endpoint_body!r} is not a JSON object; give {{"field": value}}')
    endpoints = [
        EndpointSection(base_url=endpoint, model=endpoint_model, api_key_env=api_key_env, prompted=endpoint_prompted,
                        extra_body=body)
    ] if endpoint else []  # fmt: skip
    model_dir, dataset_dir, eval_dir = resolve_paths(path, model, dataset)
    from curate.cli.progress import eval_with_progress
    from curate.layout import RunLayout, RunLock

    with RunLock(RunLayout.of(dataset_dir), "eval"):
        result = eval_with_progress(
            make_console(),
            model_dir,
            dataset_dir,
            eval_dir,
            baseline,
            prompts,
            max_new_tokens,
            batch_size,
            retrieve_k=top_k if retrieve else None,
            endpoints=endpoints,
        )
    _gate(result.report, strict)


def _gate(report: dict, strict: bool) -> None:
    """--strict: EvalGateFailed (exit 8) naming every missed target, regression and integrity problem."""
    from curate.errors import EvalGateFailed
    from train.eval.run import gate_failures

    failures = gate_failures(report)
    if strict and failures:
        raise EvalGateFailed("--strict: " + "; ".join(failures))
    if failures:
        make_console().print("[yellow]some targets were missed or kinds regressed (see above); --strict exits 8[/]")


@main.command("export")
@click.argument("path", metavar="RUN", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--format",
    "formats",
    default="hf,gguf,ollama",
    show_default=True,
    help="Comma-separated: hf (a folder vLLM loads), gguf (llama.cpp), ollama (a Modelfile; implies gguf).",
)
@click.option(
    "--quant",
    type=click.Choice(["f16", "q8_0", "q4_k_m"]),
    default="q8_0",
    show_default=True,
    help="The GGUF's type; q4_k_m is quantized by llama.cpp (pip install 'gristmill[serve]').",
)
@handle_errors
def export(path: Path, formats: str, quant: str) -> None:
    """Export RUN's trained model to <run>/export/: hf/, gguf/model-QUANT.gguf, ollama/Modelfile and a model card
    (README.md), each checked against the trained model; an export gristmill wrote before is replaced whole."""
    from curate.cli.progress import export_with_progress
    from curate.layout import RunLayout, RunLock
    from train.export import parse_formats

    chosen = parse_formats(formats)
    layout = RunLayout.of(path)
    console = make_console()
    with RunLock(layout, "export"):
        export_with_progress(console, layout.root, chosen, quant)
        if layout.report.is_file():  # the report links the exports
            from curate.report.html import write_report

            write_report(layout.root, layout.report)
            console.print(f"report: {layout.report}")


@main.command()
@click.argument("path", metavar="[RUN]", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--base",
    is_flag=False,
    flag_value="",
    default=None,
    metavar="[NAME]",
    help="Talk to the untouched base: the run's starting model, or a named one (smollm2-135m, a folder, a .gguf).",
)
@click.option("--prompt", default=None, help="Answer this one prompt and exit (for scripts).")
@click.option("--system", default=None, help="System prompt; default the run's persona.")
@click.option("--max-new-tokens", type=click.IntRange(min=1), default=256, show_default=True)
@click.option("--temperature", type=click.FloatRange(min=0.0), default=0.0, show_default=True, help="0: greedy.")
@click.option("--retrieve", is_flag=True, help="Put the top sections of the run's documents before each question.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True, help="Excerpts --retrieve shows.")
@handle_errors
def chat(
    path: Path | None,
    base: str | None,
    prompt: str | None,
    system: str | None,
    max_new_tokens: int,
    temperature: float,
    retrieve: bool,
    top_k: int,
) -> None:
    """Chat with a trained model (a run directory or a model folder). /reset clears, /exit quits. With --base,
    the untouched base instead (given the run's persona, so before and after are asked alike). With --retrieve,
    each question goes to the model with the top sections of the run's dataset/documents/, in the prompt format
    the grounded examples trained on."""
    from curate.errors import InputError
    from train.chat import Chat, base_model, resolve_model

    if path is None and base is None:
        raise InputError("give a run directory (or a model folder), or --base NAME for an untouched base model")
    model_dir, persona, dataset = resolve_model(path) if path is not None else (None, None, None)
    if base is not None:
        model_dir = base_model(base, model_dir)
    system = system if system is not None else persona
    retriever = None
    if retrieve:
        from curate.retrieval import Retriever

        if dataset is None:
            raise InputError(f"--retrieve needs a run directory (with dataset/documents/), not {path}")
        retriever = Retriever(dataset, k=top_k)
    bot = Chat(model_dir, max_new_tokens=max_new_tokens, temperature=temperature)
    start = [{"role": "system", "content": system}] if system else []

    def ask(history: list[dict[str, str]], question: str):
        """(the answer to ``question`` after ``history``, what was retrieved); with --retrieve the question goes
        to the model with its excerpts."""
        found = retriever(question) if retriever is not None else None
        turn = found.user if found is not None else question
        return bot.reply([*history, {"role": "user", "content": turn}]), found

    if prompt is not None:
        click.echo(ask(start, prompt)[0])
        return
    console = make_console()
    console.print(
        f"chatting with [bold]{model_dir}[/]; /reset clears the conversation, /exit or Ctrl-D quits", soft_wrap=True
    )
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
        answer, found = ask(history, line)
        if found is not None:
            sources = ", ".join(f"[{n}] {i}" for n, i in enumerate(found.shown, 1)) or "no matching section"
            console.print(f"[dim]retrieved: {sources}[/]")
        history += [{"role": "user", "content": line}, {"role": "assistant", "content": answer}]
        console.print(f"[bold]model>[/] {answer}", markup=True, highlight=False)


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
        make_console().print(f"wrote {output}; run: accelerate launch --config_file {output} -m curate.cli train RUN")
    else:
        click.echo(text, nl=False)
