"""``gristmill run RECIPE``: curate, then train, then evaluate, each phase resumable, one summary at the end.

- curate resumes from its step checkpoints (a finished dataset is re-checked in about a second);
- train is skipped when ``model/final`` was trained on this very dataset and train section (the key in
  ``training_summary.json``), resumes from the last checkpoint when an interrupted run of the same key left
  one, and starts fresh otherwise;
- eval resumes from its generation cache.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.layout import RunLayout


@dataclass
class RunResult:
    run_dir: Path
    layout: RunLayout
    curate: Any  # CurateResult
    training: dict[str, Any]  # training_summary.json
    trained: str  # "trained", "resumed" or "reused"
    eval_report: dict[str, Any]
    phases: dict[str, float]  # wall seconds of curate, train, eval (and export) in this invocation
    export: dict[str, Any] | None = None  # export.json when the recipe has an export section


def training_state(layout: RunLayout, key: str) -> str:
    """'done' (final model of this key), 'resume' (checkpoints of this key) or 'fresh'."""
    try:  # a summary torn by a kill (written before the atomic write) means: not done
        done_key = json.loads(layout.training_summary.read_text()).get("key")
    except (OSError, ValueError):
        done_key = None
    if layout.final.is_dir() and done_key == key:
        return "done"
    from train.sft import complete_checkpoints

    started = layout.train_key
    if started.is_file() and started.read_text() == key and complete_checkpoints(layout.checkpoints):
        return "resume"
    return "fresh"


def run_all(recipe, overrides: list[str], *, console) -> RunResult:
    """The three phases with rich progress; ``overrides`` are the recipe's --set values (train.* included)."""
    from curate.cli.progress import RichReporter, eval_with_progress, print_curate_summary, train_with_progress
    from curate.errors import GristmillError
    from curate.pipeline import curate
    from curate.recipe import full_override
    from train.sft import check_sft, load_train_section, model_layout, training_key

    check_sft(recipe.train.sft)  # a wrong SFTConfig argument fails now, not after the curation
    if recipe.train.preference is not None:
        from train.preference import split_preference

        split_preference(recipe.train.preference)  # so does a wrong DPOConfig argument

    total = 4 if recipe.export else 3
    console.rule(f"1/{total} curate")
    began = time.perf_counter()
    with RichReporter(console) as reporter:
        curated = curate(recipe, reporter=reporter)
    print_curate_summary(console, curated)
    if not curated.stats["examples"]["total"]["train"]:
        raise GristmillError(f"curation made no training examples; see {curated.dataset_dir / 'stats.json'} notes")

    phases = {"curate": time.perf_counter() - began}
    console.rule(f"2/{total} train")
    began = time.perf_counter()
    dataset_dir = curated.dataset_dir
    full = [full_override(o) for o in overrides]
    train_overrides = [o[len("train.") :] for o in full if o.startswith("train.")]
    section, _ = load_train_section(dataset_dir, train_overrides)
    layout = model_layout(dataset_dir, section)
    state = training_state(layout, training_key(dataset_dir, section))
    if state == "done":
        console.print(f"model/final was trained on this dataset and train section: reused ({layout.final})")
        trained = "reused"
    else:
        if state == "resume":
            console.print("resuming the interrupted training from its last checkpoint")
        train_with_progress(console, dataset_dir, train_overrides, resume=state == "resume", preflight_only=False)
        trained = "resumed" if state == "resume" else "trained"
    training = json.loads(layout.training_summary.read_text())

    phases["train"] = time.perf_counter() - began

    console.rule(f"3/{total} eval")
    began = time.perf_counter()
    result = eval_with_progress(console, layout.trained_model(), dataset_dir, layout.eval, None, None, None, None)
    phases["eval"] = time.perf_counter() - began
    exported = None
    if recipe.export:
        from curate.cli.progress import export_with_progress

        console.rule(f"4/{total} export")
        began = time.perf_counter()
        exported = export_with_progress(console, layout.root, recipe.export.formats, recipe.export.quant)
        phases["export"] = time.perf_counter() - began
    return RunResult(layout.root, layout, curated, training, trained, result.report, phases, exported)
