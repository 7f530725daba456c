"""`gristmill run`: curate, train, eval end to end on a reduced sample recipe, killed (SIGKILL) once in each
phase and resumed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO, TINY_TRAIN, require

REDUCED = [
    *TINY_TRAIN,
    "train.sft.max_steps=16",
    "train.sft.save_steps=4",
    "train.sft.logging_steps=4",
    "train.eval_split=null",
    "eval.max_new_tokens=8",
    "eval.batch_size=2",
]


def _command(run_dir: Path) -> list[str]:
    sets = [arg for s in [*REDUCED, f"output.dir={run_dir}"] for arg in ("--set", s)]
    return [sys.executable, "-m", "curate.cli", "run", "sample_data/recipe.yaml", *sets]


def _kill_when(cmd: list[str], cwd: Path, ready, what: str) -> None:
    """Start ``cmd``, SIGKILL it as soon as ``ready()`` holds (polled every 10 ms)."""
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {what}: {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def test_run_end_to_end_resumes_after_a_kill_in_each_phase(tmp_path):
    require("trl")
    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    run = tmp_path / "run"
    cmd = _command(run)
    steps = run / "work" / "steps"

    def curate_midway():
        done = [p for p in steps.glob("*/*") if (p / "stat.json").is_file()] if steps.is_dir() else []
        return len(done) >= 4 and not (run / "dataset").exists()

    _kill_when(cmd, tmp_path, curate_midway, "curation to be half done")
    finished = sorted(p for p in steps.glob("*/*") if (p / "stat.json").is_file())
    stamps = {p: p.stat().st_mtime_ns for p in finished}
    assert not (run / "dataset").exists()

    def first_checkpoint():  # written to the end (trainer_state.json is the Trainer's last file)
        return (run / "model" / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file()

    _kill_when(cmd, tmp_path, first_checkpoint, "the first training checkpoint")
    assert {p: p.stat().st_mtime_ns for p in finished} == stamps  # the steps done before the kill were reused
    assert not (run / "model" / "final").exists()

    def eval_midway():
        caches = list((run / "eval" / "cache").glob("trained-*.jsonl")) if (run / "eval" / "cache").is_dir() else []
        return bool(caches) and len(_lines(caches[0])) >= 4

    _kill_when(cmd, tmp_path, eval_midway, "evaluation to be under way")
    summary = json.loads((run / "model" / "training_summary.json").read_text())
    assert summary["resumed"] is True and summary["steps"] == 16  # training resumed from checkpoint-4
    (cache,) = (run / "eval" / "cache").glob("trained-*.jsonl")
    partial = _lines(cache)
    assert not (run / "eval" / "eval.json").exists()

    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "3/4 eval" in done.stdout and "reused" in done.stdout and "behaviour targets met" in done.stdout
    # the sample recipe's export section: the model in every format, the report linking them
    assert "4/4 export" in done.stdout
    exported = json.loads((run / "export" / "export.json").read_text())
    assert set(exported["files"]) == {"hf", "gguf", "ollama"} and exported["quant"] == "q8_0"
    assert (run / "export" / "gguf" / "model-q8_0.gguf").is_file() and (run / "export" / "README.md").is_file()
    assert 'href="export/gguf/model-q8_0.gguf"' in (run / "report.html").read_text()
    for tag in ("trained", "base", "prompted"):  # stdout is a pipe: each model's evaluation is a plain line or more
        assert re.search(rf"^\d\d:\d\d:\d\d eval {tag}: \d+/\d+, done in \dm\d\ds$", done.stdout, re.M), tag
    # Where the time went: each phase, and the evaluation by model.
    flat = " ".join(done.stdout.replace("│", " ").split())
    assert re.search(r"curate \d+s, train \d+s, eval \d+s \(trained \d+s, base \d+s, prompted \d+s\)", flat), flat
    lines = _lines(cache)
    assert lines[: len(partial)] == partial  # eval resumed: finished generations were kept, not redone
    test = _lines(run / "dataset" / "test.jsonl")
    redteam = [x for x in _lines(tmp_path / "sample_data" / "redteam.jsonl") if x.strip()]  # eval.prompts
    assert len({json.loads(line)["id"] for line in lines}) == len(lines) == len(test) + len(redteam)
    report = json.loads((run / "eval" / "eval.json").read_text())
    assert report["models"]["base"]["model"].endswith("base-tiny") and report["models"]["prompted"]["prompted"]
    assert sum(row["n"] for row in report["kinds"].values()) == len(test) + len(redteam)
    assert {"refusal", "extract_json", "abstain", "benign_near_miss", "qa"} <= set(report["kinds"])
