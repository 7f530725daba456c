"""Progress in both modes: rich bars in a terminal, plain timed lines anywhere else (a CI log, `| tee`, nohup)."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

from rich.console import Console

from curate.cli.progress import LineProgress, progress_display
from tests.conftest import FAST, require

STAMP = r"\d\d:\d\d:\d\d"


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=120), out


def test_a_log_gets_a_line_at_start_while_running_and_at_the_end():
    log, out = console(terminal=False)
    with LineProgress(log, "train", "{task.fields[loss]}", interval=0.05) as progress:
        task = progress.add_task("train", total=None, loss="")
        time.sleep(0.2)  # no step yet (a model conversion, a slow first batch): the timer still says it is alive
        progress.update(task, completed=1, total=8, loss="loss 2.400")  # speed counts from the first step
        time.sleep(0.1)
        progress.update(task, completed=2, loss="loss 2.310")
        time.sleep(0.15)
        progress.advance(task, 6)
    lines = out.getvalue().splitlines()
    assert re.fullmatch(rf"{STAMP} train: started", lines[0])
    assert [line for line in lines if re.fullmatch(rf"{STAMP} train: 0m00s elapsed", line)]  # alive, no step yet
    running = [line for line in lines if "2/8" in line]
    assert running
    pace = r"[\d.]+(?:/s| s each)"  # fast steps per second, slow ones in seconds each
    assert re.fullmatch(rf"{STAMP} train: 2/8, loss 2\.310, 0m00s elapsed, {pace}, ETA 0m0\ds", running[0])
    assert re.fullmatch(rf"{STAMP} train: 8/8, loss 2\.310, done in 0m00s", lines[-1])
    assert lines.count(lines[-1]) == 1  # the timer says nothing of a finished task


def test_a_terminal_gets_rich_bars_and_no_lines():
    term, out = console(terminal=True)
    progress = progress_display(term, "eval {task.fields[tag]}")
    assert not isinstance(progress, LineProgress)
    with progress:
        task = progress.add_task("eval", total=4, tag="trained")
        progress.advance(task, 4)
    assert "━" in out.getvalue() and "eval trained" in out.getvalue() and "started" not in out.getvalue()
    assert isinstance(progress_display(console(terminal=False)[0], "eval"), LineProgress)


def test_train_and_curate_in_a_log_print_lines_with_loss_speed_and_eta(sample_run):
    """The README's first command in a CI log: the curation's steps and training each say where they are."""
    require("trl")
    result, _ = sample_run
    env = {**os.environ, "GRISTMILL_PROGRESS_SECONDS": "0.5"}
    sets = [a for s in [*FAST, "sft.max_steps=8", f"output_dir={result.dataset_dir.parent / 'progress-model'}"]
            for a in ("--set", s)]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "curate.cli", "train", str(result.dataset_dir), *sets],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if re.match(rf"{STAMP} train: ", line)]
    assert lines[0].endswith("train: started") and re.search(r"train: 8/8, loss [\d.]+.*, done in", lines[-1])
    assert any(re.search(r"train: [1-7]/8, loss [\d.]+, \d+ tokens/s, .*ETA \d+m\d\ds", line) for line in lines)
