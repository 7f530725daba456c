"""The run directory can never destroy a user's files: it may not overlap the input, only a dataset gristmill
wrote is replaced, one command at a time holds it, and a crash leaves a state the next run recovers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from curate.errors import OutputError
from tests.conftest import REPO, write


def _recipe(docs, out):
    from curate.recipe import validate_recipe

    return validate_recipe({"name": "r", "input": {"paths": [str(docs)]}, "output": {"dir": str(out)}})


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_an_output_dir_overlapping_the_input_is_refused_before_any_work(in_tmp, where):
    from curate.pipeline import curate

    docs = in_tmp / "docs"
    write(docs / "a.md", "# A\n\nText.")
    mine = write(docs / "dataset" / "mine.txt", "the user's own file")
    out = {"same": docs, "inside": docs / "runs" / "r", "around": in_tmp}[where]
    with pytest.raises(OutputError, match=r"overlaps the input") as err:
        curate(_recipe(docs, out))
    assert str(docs.resolve()) in str(err.value)
    assert mine.read_text() == "the user's own file" and not (docs / "work").exists()


@pytest.mark.parametrize(
    ("inputs", "out", "refused"),
    [
        (["export.jsonl"], "run", False),  # a file beside the run directory
        (["run/export.jsonl"], "run", True),  # the run directory holds an input file
        (["*.jsonl"], "run", False),  # a glob that does not recurse cannot read the run's files
        (["**/*.jsonl"], "run", True),  # one that does would
        (["nowhere"], "run", False),  # left to discovery, which names it
    ],
)
def test_files_and_globs_overlap_only_when_the_run_could_read_or_replace_them(in_tmp, inputs, out, refused):
    from curate.layout import RunLayout, check_apart

    write(in_tmp / "export.jsonl", '{"text": "a"}\n')
    write(in_tmp / "run" / "export.jsonl", '{"text": "a"}\n')
    if refused:
        with pytest.raises(OutputError, match="overlaps the input"):
            check_apart(RunLayout.create(in_tmp / out), inputs)
    else:
        check_apart(RunLayout.create(in_tmp / out), inputs)


@pytest.mark.parametrize("command", ["curate", "run"])
def test_a_run_overlapping_the_input_is_refused_before_anything_is_written(in_tmp, command):
    """Before: curate took the lock and ran the recovery of killed runs inside the input folder first, so the
    folder gained .gristmill.lock and lost the user's hidden .notes.tmp-1 and .report.tmp-2/."""
    docs = in_tmp / "docs"
    write(docs / "a.md", "# A\n\nText to read here.")
    write(docs / ".notes.tmp-1", "the user's notes")
    write(docs / ".report.tmp-2" / "draft.md", "a draft")
    before = sorted(p.relative_to(docs) for p in docs.rglob("*"))
    write(in_tmp / "r.yaml", f"name: r\ninput: {{paths: [docs]}}\noutput: {{dir: {docs}}}\n")
    done = subprocess.run(
        [sys.executable, "-m", "curate.cli", command, "r.yaml"], cwd=in_tmp, capture_output=True, text=True,
        timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert done.returncode == 6 and "output.dir" in done.stderr and "overlaps the input" in done.stderr
    assert sorted(p.relative_to(docs) for p in docs.rglob("*")) == before


def test_a_model_folder_inside_the_input_is_refused_and_one_outside_the_run_is_locked(in_tmp):
    from curate.layout import RunLayout, RunLock

    docs = in_tmp / "docs"
    write(docs / "a.md", "# A\n\nText to read here.")
    inside = RunLayout.create(in_tmp / "run", docs / "model", [str(docs)])
    with pytest.raises(OutputError, match=r"train.output_dir .* overlaps the input"):
        RunLock(inside, "train").__enter__()
    assert not (docs / "model").exists() and not (in_tmp / "run").exists()
    apart = RunLayout.create(in_tmp / "run", in_tmp / "models" / "m", [str(docs)])
    with RunLock(apart, "train"):
        assert (in_tmp / "models" / "m" / ".gristmill.lock").is_file()
        with pytest.raises(OutputError, match=r"models/m is in use by process \d+ \(gristmill train\)"):
            RunLock(RunLayout.create(in_tmp / "other-run", in_tmp / "models" / "m"), "train").__enter__()
    with RunLock(RunLayout.create(in_tmp / "other-run", in_tmp / "models" / "m"), "train"):
        pass  # released with the first run


def test_a_dataset_folder_gristmill_did_not_write_is_never_replaced(in_tmp):
    from curate.layout import MARKER
    from curate.pipeline import curate

    write(in_tmp / "docs" / "a.md", "# A\n\nText to read here.")
    mine = write(in_tmp / "run" / "dataset" / "mine.txt", "keep me")
    with pytest.raises(OutputError, match=r"not written by gristmill"):
        curate(_recipe(in_tmp / "docs", in_tmp / "run"))
    assert mine.read_text() == "keep me"
    mine.unlink()
    (in_tmp / "run" / "dataset").rmdir()
    result = curate(_recipe(in_tmp / "docs", in_tmp / "run"))
    assert (result.dataset_dir / MARKER).is_file()
    curate(_recipe(in_tmp / "docs", in_tmp / "run"))  # its own dataset is replaced


def test_a_second_command_on_a_held_run_directory_stops_at_once_naming_the_holder(in_tmp):
    from curate.layout import RunLayout, RunLock

    write(in_tmp / "docs" / "a.md", "# A\n\nText to read here.")
    write(in_tmp / "r.yaml", f"name: r\ninput: {{paths: [docs]}}\noutput: {{dir: {in_tmp / 'run'}}}\n")
    with RunLock(RunLayout.create(in_tmp / "run"), "run"):
        done = subprocess.run(
            [sys.executable, "-m", "curate.cli", "curate", "r.yaml"], cwd=in_tmp, capture_output=True, text=True,
            timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
    assert done.returncode == 6 and f"process {os.getpid()} (gristmill run)" in done.stderr, done.stderr
    assert not (in_tmp / "run" / "dataset").exists()


def test_a_crash_between_renames_is_recovered_and_leftovers_removed(in_tmp):
    from curate.layout import MARKER, RunLayout, RunLock

    layout = RunLayout.create(in_tmp / "run")
    old = in_tmp / "run" / ".dataset.old-4242"
    write(old / "stats.json", "{}")
    write(old / MARKER, "")
    write(in_tmp / "run" / ".dataset.tmp-4243" / "half.jsonl", "")
    write(in_tmp / "run" / "model" / ".training_summary.json.tmp-4244", "{")
    with RunLock(layout, "curate"):
        pass
    assert (layout.dataset / "stats.json").is_file()
    assert sorted(p.name for p in layout.root.iterdir()) == [
        ".gristmill.lock",
        ".gristmill.lock.holder",
        "dataset",
        "model",
    ]
    assert list(layout.model.iterdir()) == []


def test_a_torn_training_summary_means_train_again_not_a_crash(in_tmp):
    from curate.cli.run import training_state
    from curate.layout import RunLayout

    layout = RunLayout.create(in_tmp / "run")
    write(layout.final / "config.json", "{}")
    write(layout.training_summary, '{"key": "abc", "steps":')
    assert training_state(layout, "abc") == "fresh"
    layout.training_summary.write_text(json.dumps({"key": "abc"}))
    assert training_state(layout, "abc") == "done"
