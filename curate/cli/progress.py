"""Rich progress and result tables: the curation's steps and summary, training (preflight, a bar with the loss)
and evaluation (a bar per model, the table against the baseline)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from curate.steps import Reporter, StepStat


class RichReporter(Reporter):
    """One progress line per step: a bar while it runs, then rows in and out."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}"),
            console=console,
        )
        self.task = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def step_started(self, step: str, total: int | None) -> None:
        self.task = self.progress.add_task(step, total=total or None, note="")

    def advance(self, n: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, n)

    def step_finished(self, stat: StepStat) -> None:
        if self.task is None:
            return
        dropped = sum(stat.rejected.values())
        note = f"{stat.rows_in} → {stat.rows_out}" + (f", {dropped} dropped" if dropped else "")
        note += " (checkpoint)" if stat.cached else ""
        task = self.progress.tasks[self.task]
        total = task.total if task.total else 1
        self.progress.update(self.task, total=total, completed=total, note=note)
        self.task = None


def print_curate_summary(console, result) -> None:
    from rich.table import Table
    from rich.text import Text

    from curate.shortcuts import warning

    steps = Table("step", "rows in", "rows out", "dropped", "reasons", "seconds", title="curation")
    for s in result.steps:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.rejected.items()))
        seconds = f"{s.seconds:.2f}" + (" (checkpoint)" if s.cached else "")
        rows_in = f"{s.rows_in} files" if s.step == "read" else str(s.rows_in)
        steps.add_row(s.step, rows_in, str(s.rows_out), str(sum(s.rejected.values())), reasons, seconds)
    console.print(steps)
    ex = result.stats["examples"]
    kinds = Table("kind", "train", "test", title="examples")
    for kind in sorted(set(ex["train"]) | set(ex["test"])):
        kinds.add_row(kind, str(ex["train"].get(kind, 0)), str(ex["test"].get(kind, 0)))
    kinds.add_row("[bold]total[/]", str(ex["total"]["train"]), str(ex["total"]["test"]))
    console.print(kinds)
    for note in result.stats["notes"]:
        console.print(Text.assemble(("note: ", "yellow"), note))
    shortcut = warning(result.stats.get("shortcuts"))
    if shortcut:
        console.print(Text.assemble(("warning: ", "bold yellow"), shortcut))
    console.print(
        f"dataset: [bold]{result.dataset_dir}[/]  rejects: {result.stats['rejects']['total']} "
        f"in {result.dataset_dir / 'rejects' / 'rejects.jsonl'}  ({result.stats['wall_seconds']:.1f}s)"
    )


def _cell(estimate: dict | None) -> str:
    """0.500 [0.33, 0.67]: a value with its 95% interval."""
    if not estimate:
        return "–"
    return f"{estimate['value']:.2f} [{estimate['low']:.2f}, {estimate['high']:.2f}]"


def print_eval_table(console, report: dict) -> None:
    """Each kind's metrics per model with 95% intervals, the verdict against each baseline, every regression in
    red, and the targets."""
    from rich.table import Table

    targets = {t["metric"]: t for t in report["targets"]}
    tags = list(report["models"])
    table = Table(title="behaviour evaluation (held-out prompts; 95% intervals)")
    for name in ["kind", "n", "metric", *tags, "target"]:  # names wrap instead of being cut on a narrow terminal
        table.add_column(name, overflow="fold")
    regressed = {(r["label"], r["metric"]) for r in report.get("regressions", [])}
    for label, row in report["kinds"].items():
        for metric in row["trained"]:
            goal = targets.get(f"{label}.{metric}")
            mark = ""
            if goal:
                sign = ">=" if goal["higher_is_better"] else "<="
                mark = f"{sign} {goal['target']:.2f} " + ("[green]met[/]" if goal["passed"] else "[red]missed[/]")
            cells = [_cell(row[tag].get(metric)) for tag in tags]
            if (label, metric) in regressed:
                cells[0] = f"[red]{cells[0]} regressed[/]"
            table.add_row(label, str(row["n"]), metric, *cells, mark)
    console.print(table)
    for tag, rows in report.get("comparisons", {}).items():
        verdicts: dict[str, list[str]] = {}
        for r in rows:
            verdicts.setdefault(r["verdict"], []).append(r["label"])
        parts = [f"[{_COLOUR[v]}]{v}[/] on {', '.join(labels)}" for v, labels in sorted(verdicts.items())]
        console.print(f"trained versus {tag}: " + ("; ".join(parts) or "no kind with enough items to judge"))
    for r in report.get("regressions", []):
        console.print(
            f"[red]regression[/] versus {r['versus']}: {r['label']} {r['metric']} {r['baseline']:.2f} -> "
            f"{r['trained']:.2f} (difference {r['difference']:+.2f}, 95% [{r['low']:+.2f}, {r['high']:+.2f}])"
        )
    missing = [t["metric"] for t in report["targets"] if not t["passed"]]
    console.print(f"targets: {len(report['targets']) - len(missing)}/{len(report['targets'])} met" +
                  (f"; missed: {', '.join(missing)}" if missing else ""))  # fmt: skip
    for problem in report.get("integrity", {}).get("problems", []):
        console.print(f"[red]eval integrity:[/] {problem}")
    for note in report.get("notes", []):
        console.print(f"[yellow]note:[/] {note}")


_COLOUR = {"improved": "green", "held": "green", "unclear": "yellow", "regressed": "red"}


def train_with_progress(console, path: Path, overrides: list[str], *, resume: bool, preflight_only: bool):
    """Train with the preflight table, a progress bar with the loss, and a closing line."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from train.sft import train_model

    with Progress(
        TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[loss]}"),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("train", total=None, loss="")

        def on_progress(step: int, total: int, last: dict) -> None:
            loss = f"loss {last['loss']:.3f}" if "loss" in last else ""
            if "rewards/margins" in last:  # preference tuning (DPO) after SFT
                loss += f", reward margin {last['rewards/margins']:.2f}"
            progress.update(task, completed=step, total=total or None, loss=loss)

        def on_preflight(report) -> None:
            if int(os.environ.get("RANK", "0")) != 0:  # under accelerate launch or torchrun, one process reports
                return
            table = Table("preflight", "", title="preflight")
            for name, value in report.rows():
                table.add_row(name, value)
            console.print(table)
            for kind, rendered in report.samples.items():
                console.rule(f"{kind}: trained tokens in [[...]]")
                console.print(Text(rendered[-700:]))

        result = train_model(
            path,
            overrides,
            preflight_only=preflight_only,
            resume=resume,
            on_progress=on_progress,
            on_preflight=on_preflight,
            notify=lambda message: progress.console.print(f"[dim]{message}[/]"),
        )
    if int(os.environ.get("RANK", "0")) != 0:
        return result
    if result.final_dir is not None:
        s = result.summary
        loss = f"{s['loss_curve'][-1]['loss']:.3f}" if s["loss_curve"] else "not logged yet"
        console.print(
            f"trained {s['steps']} steps in {s['wall_seconds']:.1f}s ({s['tokens_per_second']} tokens/s), "
            f"final loss {loss}; model: [bold]{result.final_dir}[/]"
        )
        if s.get("preference"):
            pref, last = s["preference"], (s["preference"]["curve"] or [{}])[-1]
            console.print(
                f"then DPO: {pref['steps']} steps on {sum(pref['pairs'].values())} pairs in "
                f"{pref['wall_seconds']:.1f}s ({pref['tokens_per_second']} tokens/s), final loss "
                f"{last.get('loss', float('nan')):.3f}, reward margin {last.get('margin') or 0:.2f}, "
                f"reward accuracy {last.get('accuracy') or 0:.2f}"
            )
    return result


def _llm_judge(stack, resolved: dict, dataset_dir: Path):
    """judge(pairs) through the recipe's llm section and templates (eval.judge: llm)."""
    from curate.errors import RecipeError
    from curate.layout import RunLayout
    from curate.llm.judge import judge_answers
    from curate.llm.runtime import open_runtime
    from curate.recipe import LLMSection
    from curate.templating import load_templates

    settings = LLMSection.model_validate(resolved.get("llm") or {})
    if not settings.base_url or not settings.model:
        raise RecipeError("eval.judge: llm needs the recipe's llm.base_url and llm.model; set both, or judge: rules")
    templates = load_templates((resolved.get("templates") or {}).get("dirs") or [])
    runtime = stack.enter_context(open_runtime(settings, RunLayout.of(dataset_dir).llm_cache, 0, templates))
    return lambda pairs: judge_answers(runtime, templates, pairs)


def eval_with_progress(
    console, model_dir, dataset_dir, eval_dir, baseline, prompts, max_new_tokens, batch_size, retrieve_k=None,
    endpoints=(), baselines=None,
):  # fmt: skip
    """Evaluate with a progress bar and print the table; settings default to the dataset's recipe. ``endpoints``
    are served models to score too (EndpointSection), besides the recipe's ``eval.endpoints``."""
    import yaml
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from curate.recipe import LLMSection
    from curate.retrieval import Retriever
    from train.config import EvalSection
    from train.eval.run import EvalSettings, default_baseline, evaluate

    resolved = yaml.safe_load((dataset_dir / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
    section = EvalSection.model_validate(resolved.get("eval") or {})
    threads = (resolved.get("train") or {}).get("threads") or 1
    if baseline is None:
        baseline = default_baseline(model_dir)
    elif baseline == "none":
        baseline = None
    served = [  # (name, the project's LLM client settings) for each served model
        (e.name or e.model, LLMSection(**e.model_dump(exclude={"name"}), max_tokens=section.max_new_tokens))
        for e in [*section.endpoints, *endpoints]
    ]
    settings = EvalSettings(
        max_new_tokens=max_new_tokens or section.max_new_tokens,
        budgets=section.budgets,
        batch_size=batch_size or section.batch_size,
        targets=section.targets,
        tolerance=section.tolerance,
        shots=section.prompted.shots,
        threads=threads,
    )
    with contextlib.ExitStack() as stack:
        judge = None
        if section.judge == "llm":  # the recipe's llm endpoint labels every answer, through the run's request cache
            judge = _llm_judge(stack, resolved, dataset_dir)
        progress = stack.enter_context(Progress(
            TextColumn("eval {task.fields[tag]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=console,
        ))  # fmt: skip
        task = progress.add_task("eval", total=None, tag="")

        def on_phase(tag: str, total: int) -> None:
            progress.reset(task, total=total, tag=tag)

        result = evaluate(
            model_dir,
            dataset_dir,
            eval_dir,
            baseline=baseline,
            settings=settings,
            baselines=section.baselines if baselines is None else baselines,
            endpoints=served,
            prompts=[*map(Path, section.prompts), *([Path(prompts)] if prompts else [])],
            on_phase=on_phase,
            on_batch=lambda n: progress.advance(task, n),
            retrieve=Retriever(dataset_dir, k=retrieve_k) if retrieve_k else None,
            answer_judge=judge,
        )
    print_eval_table(console, result.report)
    console.print(
        f"eval: [bold]{result.eval_dir / 'eval.json'}[/], generations in {result.eval_dir / 'generations.jsonl'}"
    )
    return result
