"""Progress and result tables: the curation's steps and summary, training (preflight, a bar with the loss) and
evaluation (a bar per model, the table against the baseline).

In a terminal, rich bars. Anywhere else (a CI log, ``| tee run.log``, ``nohup``) a bar would print nothing until
it ends, so ``progress_display`` gives ``LineProgress`` instead: a plain line when a phase starts, every
``$GRISTMILL_PROGRESS_SECONDS`` (30) while it runs, whether or not it moved, and when it ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from curate.steps import Reporter, StepStat


def progress_display(console, title: str, note: str = ""):
    """A rich ``Progress`` whose lines read ``title`` and ``note`` (format strings of ``task``) in a terminal,
    else a ``LineProgress`` that writes the same as plain lines; both take the calls gristmill makes."""
    if not console.is_terminal:
        return LineProgress(console, title, note)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn(title), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    return Progress(*columns, *([TextColumn(note)] if note else []), console=console)


@dataclass
class _Task:
    description: str
    total: float | None
    fields: dict
    completed: float = 0
    began: float = field(default_factory=time.monotonic)
    done: bool = False
    moving: tuple[float, float] | None = None  # (when, completed) of the first progress: rates count from there


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s // 60 % 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class LineProgress:
    """The part of rich's ``Progress`` gristmill uses, as plain lines for a console that is not a terminal: a line
    when a task starts, then every ``interval`` seconds from a timer (a long step or a model conversion still
    says it is alive), and one when it completes, each with the step and total, the rate and the ETA."""

    def __init__(self, console, title: str, note: str = "", interval: float | None = None) -> None:
        self.console, self.title, self.note = console, title, note
        self.interval = interval or float(os.environ.get("GRISTMILL_PROGRESS_SECONDS") or 30)
        self.tasks: list[_Task] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None

    def __enter__(self) -> LineProgress:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._timer = threading.Thread(target=self._tick, name="gristmill-progress", daemon=True)
        self._timer.start()

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join()

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                for task in self.tasks:
                    if not task.done:
                        self._line(task)

    def add_task(self, description: str, total: float | None = None, **fields) -> int:
        with self._lock:
            self.tasks.append(_Task(description, total, fields))
            self._line(self.tasks[-1], "started")
            return len(self.tasks) - 1

    def reset(self, task_id: int, total: float | None = None, **fields) -> None:
        with self._lock:
            old = self.tasks[task_id]
            self.tasks[task_id] = _Task(old.description, total, {**old.fields, **fields})
            self._line(self.tasks[task_id], "started")

    def update(self, task_id: int, *, completed: float | None = None, total: float | None = None, **fields) -> None:
        with self._lock:
            task = self.tasks[task_id]
            task.total = total if total is not None else task.total
            task.completed = completed if completed is not None else task.completed
            if task.completed and task.moving is None:
                task.moving = (time.monotonic(), task.completed)
            task.fields.update(fields)
            self._finish_if_complete(task)

    def advance(self, task_id: int, n: float = 1) -> None:
        with self._lock:
            task = self.tasks[task_id]
            if task.moving is None:
                task.moving = (task.began, 0.0)  # counted from the start: advance is called per item done
            task.completed += n
            self._finish_if_complete(task)

    def _finish_if_complete(self, task: _Task) -> None:
        if task.total and task.completed >= task.total and not task.done:
            task.done = True
            self._line(task, f"done in {_duration(time.monotonic() - task.began)}")

    def _line(self, task: _Task, state: str | None = None) -> None:
        title = " ".join(self.title.format(task=task).split())
        note = " ".join(self.note.format(task=task).split()) if self.note else ""
        elapsed = time.monotonic() - task.began
        if state is None:  # still running
            state = f"{_duration(elapsed)} elapsed"
            since, before = task.moving or (0.0, 0.0)
            if task.total and task.completed > before and time.monotonic() > since:  # not the loading before
                rate = (task.completed - before) / (time.monotonic() - since)
                pace = f"{rate:.3g}/s" if rate >= 1 else f"{1 / rate:.3g} s each"
                state += f", {pace}, ETA {_duration((task.total - task.completed) / rate)}"
        count = f"{task.completed:g}" if task.completed or task.total else ""
        count += f"/{task.total:g}" if task.total else ""
        parts = [p for p in (count, note, state) if p]
        self.console.print(f"{time.strftime('%H:%M:%S')} {title}: {', '.join(parts)}", markup=False, soft_wrap=True)


class RichReporter(Reporter):
    """One progress line per step: a bar while it runs, then rows in and out (plain lines outside a terminal)."""

    def __init__(self, console) -> None:
        self.progress = progress_display(console, "{task.description:<28}", "{task.fields[note]}")
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

    from curate.review.apply import COUNTED
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
    if result.stats.get("review"):
        heads = [c if c != "stale" else "changed since review" for c in COUNTED]
        review = Table("kind", *heads, title=f"review ({result.stats['review']['file']})")
        for kind, n in result.stats["review"]["by_kind"].items():
            review.add_row(kind, *(str(n[c]) for c in COUNTED))
        console.print(review)
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
    from rich.table import Table
    from rich.text import Text

    from train.sft import train_model

    with progress_display(console, "train", "{task.fields[loss]}") as progress:
        task = progress.add_task("train", total=None, loss="")
        first: list[tuple[float, float]] = []  # (when, tokens) of the first log with a token count

        def on_progress(step: int, total: int, last: dict) -> None:
            loss = f"loss {last['loss']:.3f}" if "loss" in last else ""
            if "rewards/margins" in last:  # preference tuning (DPO) after SFT
                loss += f", reward margin {last['rewards/margins']:.2f}"
            if last.get("num_tokens"):
                first[:] = first or [(time.monotonic(), last["num_tokens"])]
                seconds = time.monotonic() - first[0][0]
                if seconds > 0 and last["num_tokens"] > first[0][1]:
                    loss += f", {(last['num_tokens'] - first[0][1]) / seconds:.0f} tokens/s"
            progress.update(task, completed=step, total=total or None, loss=loss)

        def notify(message: str) -> None:
            progress.console.print(f"[dim]{message}[/]")
            progress.update(task, loss=message)  # a conversion or the base's answers: what the wait is for

        def on_preflight(report) -> None:
            progress.update(task, loss="preflight passed; the trainer starts")  # the conversion note is over
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
            notify=notify,
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
    served = [  # (name, the project's LLM client settings, also prompted?) for each served model
        (e.name or e.model,
         LLMSection(**e.model_dump(exclude={"name", "prompted"}), max_tokens=section.max_new_tokens),
         e.prompted)
        for e in [*section.endpoints, *endpoints]
    ]  # fmt: skip
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
        progress = stack.enter_context(progress_display(console, "eval {task.fields[tag]}"))
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


def export_with_progress(console, run_dir: Path, formats: list[str], quant: str) -> dict:
    """export_run with a line per step, then a table of what was written (sizes, seconds) and the checks."""
    from rich.table import Table

    from train.export import export_run

    with progress_display(console, "export {task.description}") as progress:
        steps: list[int] = []

        def notify(message: str) -> None:  # a step starts: the one before it is done
            if steps:
                progress.update(steps[-1], completed=1, total=1)
            steps.append(progress.add_task(message, total=1))

        result = export_run(run_dir, formats, quant, notify=notify)
        if steps:
            progress.update(steps[-1], completed=1, total=1)
    s = result.summary
    table = Table("format", "file", "size", "seconds", title=f"exported: {result.folder}")
    for fmt, rel in s["files"].items():
        table.add_row(fmt, rel, f"{s['sizes_mb'][fmt]:.1f} MB", str(s["seconds"].get(fmt, "")))
    console.print(table)
    back = s["checks"].get("gguf_read_back")
    if back:
        console.print(f"GGUF read back: eos {back['eos_token_id']}, bos {back['bos_token_id']}, add_bos "
                      f"{back['add_bos_token']}, pre-tokenizer {back['pre']}: as the HF folder")  # fmt: skip
    console.print(f"end tokens: {', '.join(s['end_tokens'])}; model card: {result.folder / 'README.md'}")
    return s
