"""Rich progress around training and evaluation, shared by `gristmill train`, `gristmill eval` and `gristmill run`."""

from __future__ import annotations

import os
from pathlib import Path


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
    return result


def eval_with_progress(console, model_dir, dataset_dir, eval_dir, baseline, prompts, max_new_tokens, batch_size):
    """Evaluate with a progress bar and print the table; settings default to the dataset's recipe."""
    import yaml
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from train.config import EvalSection
    from train.evaluate import default_baseline, evaluate

    resolved = yaml.safe_load((dataset_dir / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
    section = EvalSection.model_validate(resolved.get("eval") or {})
    threads = (resolved.get("train") or {}).get("threads") or 1
    if baseline is None:
        baseline = default_baseline(model_dir)
    elif baseline == "none":
        baseline = None
    with Progress(
        TextColumn("eval {task.fields[tag]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("eval", total=None, tag="")

        def on_phase(tag: str, total: int) -> None:
            progress.reset(task, total=total, tag=tag)

        result = evaluate(
            model_dir,
            dataset_dir,
            eval_dir,
            baseline=baseline,
            prompts=prompts,
            max_new_tokens=max_new_tokens or section.max_new_tokens,
            batch_size=batch_size or section.batch_size,
            targets=section.targets,
            on_phase=on_phase,
            on_batch=lambda n: progress.advance(task, n),
            threads=threads,
        )
    from curate.report.console import print_eval_table

    print_eval_table(console, result.report)
    console.print(
        f"eval: [bold]{result.eval_dir / 'eval.json'}[/], generations in {result.eval_dir / 'generations.jsonl'}"
    )
    return result
