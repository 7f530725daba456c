"""Every path under a run directory, in one place. Whoever reads or writes one of them goes through here.

<run>/                          output.dir
  work/steps/NN-<step>/<key>/   a checkpoint per curation step; never read by training
  work/llm_cache.sqlite         the LLM request cache
  dataset/                      the curated dataset directory (curate/output.py), replaced atomically
  model/                        train.output_dir when the recipe sets it
    base-tiny/                  the offline tiny model built for this dataset
    checkpoints/                Trainer checkpoints (resume)
    final/                      the trained model (with LoRA: the adapter)
    final-merged/               with LoRA: the adapter merged into the base model
    loss.jsonl, train_key, training_summary.json
  eval/                         eval.json, generations.jsonl, cache/ (generations per model)
  review/decisions.jsonl        what `gristmill review` records (read by curate through mix.review)
  report.html
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from filelock import FileLock, Timeout

from curate.errors import OutputError

DATASET = "dataset"
RESOLVED_RECIPE = "recipe.resolved.yaml"
MARKER = ".gristmill-dataset"  # in every dataset directory gristmill writes: only those are ever replaced
LOCK = ".gristmill.lock"


@dataclass(frozen=True)
class RunLayout:
    root: Path
    model: Path  # the model folder: train.output_dir, or <run>/model
    inputs: tuple[str, ...] = ()  # input.paths: neither folder may overlap them (check_apart)

    @classmethod
    def create(
        cls, run_dir: Path | str, model_dir: Path | str | None = None, inputs: list[str] | tuple[str, ...] = ()
    ) -> RunLayout:
        root = Path(run_dir)
        return cls(root, Path(model_dir) if model_dir else root / "model", tuple(inputs))

    @classmethod
    def of(cls, path: Path | str) -> RunLayout:
        """The layout of a run from its directory or its ``dataset/`` folder; ``train.output_dir`` comes from the
        dataset's resolved recipe, so a run that moved its model elsewhere is still found."""
        path = Path(path)
        root = path.parent if (path / RESOLVED_RECIPE).is_file() else path
        resolved = root / DATASET / RESOLVED_RECIPE
        recipe = {}
        if resolved.is_file():
            recipe = yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}
        train, inputs = recipe.get("train") or {}, (recipe.get("input") or {}).get("paths") or ()
        return cls.create(root, train.get("output_dir"), inputs)

    # curate
    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def steps(self) -> Path:
        return self.work / "steps"

    @property
    def llm_cache(self) -> Path:
        return self.work / "llm_cache.sqlite"

    @property
    def dataset(self) -> Path:
        return self.root / DATASET

    # train
    @property
    def base_tiny(self) -> Path:
        return self.model / "base-tiny"

    @property
    def checkpoints(self) -> Path:
        return self.model / "checkpoints"

    @property
    def final(self) -> Path:
        return self.model / "final"

    @property
    def final_merged(self) -> Path:
        return self.model / "final-merged"

    @property
    def loss_log(self) -> Path:
        return self.model / "loss.jsonl"

    @property
    def train_key(self) -> Path:
        return self.model / "train_key"

    @property
    def training_summary(self) -> Path:
        return self.model / "training_summary.json"

    def trained_model(self) -> Path | None:
        """The model to evaluate or chat with: the merged model after LoRA, else ``final``; None before training."""
        return next((p for p in (self.final_merged, self.final) if p.is_dir()), None)

    # eval and report
    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def decisions(self) -> Path:
        return self.root / "review" / "decisions.jsonl"

    def recover(self) -> None:
        """Under the run's lock, before work: a dataset a crash left renamed aside is put back when none is in
        place, then the temporary and old folders of killed runs are removed."""
        parent = self.dataset.parent
        if not self.dataset.exists():
            olds = sorted(parent.glob(f".{DATASET}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
            complete = next((p for p in olds if (p / MARKER).is_file() and (p / "stats.json").is_file()), None)
            if complete is not None:
                os.replace(complete, self.dataset)
        for folder in (parent, self.model):
            if folder.is_dir():
                for stale in [*folder.glob(".*.tmp-*"), *folder.glob(f".{DATASET}.old-*")]:
                    if stale.is_dir():
                        shutil.rmtree(stale, ignore_errors=True)
                    else:
                        stale.unlink(missing_ok=True)


class RunLock:
    """An exclusive lock on a run directory (``<run>/.gristmill.lock``, through filelock: flock where it exists,
    the Windows lock elsewhere), and on ``train.output_dir`` too when the model lives outside the run, held by one
    ``gristmill curate``, ``train``, ``run`` or ``eval`` at a time: a second one on the same directory stops at
    once and names the process that holds it, instead of erasing its temporary folders and checkpoints. Nothing is
    written before the folders are checked apart from the inputs (check_apart). Under torchrun or accelerate
    launch only rank 0 takes it. The lock goes with the process, so a killed run leaves none."""

    def __init__(self, layout: RunLayout, command: str):
        self.layout, self.command = layout, command
        self._locks: list[FileLock] = []

    def __enter__(self) -> RunLock:
        if int(os.environ.get("RANK", "0")) != 0:
            return self
        check_apart(self.layout)  # before anything is created, locked or recovered
        folders = [self.layout.root]
        model = Path(os.path.abspath(self.layout.model))
        if Path(os.path.abspath(self.layout.root)) not in [model, *model.parents]:
            folders.append(self.layout.model)
        try:
            for folder in folders:
                self._take(folder)
        except BaseException:
            self.__exit__()
            raise
        self.layout.recover()
        return self

    def _take(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        holder_file = folder / f"{LOCK}.holder"  # beside the lock: a contender opening the lock never touches it
        lock = FileLock(folder / LOCK, timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = holder_file.read_text(encoding="utf-8").strip() if holder_file.is_file() else ""
            raise OutputError(
                f"{folder} is in use by {holder or 'another process'}; wait for it to finish, or give this run "
                "another output.dir"
            ) from None
        self._locks.append(lock)
        holder_file.write_text(f"process {os.getpid()} (gristmill {self.command})", encoding="utf-8")

    def __exit__(self, *exc) -> None:
        while self._locks:
            self._locks.pop().release()


def check_apart(layout: RunLayout, inputs: list[str] | tuple[str, ...] | None = None) -> None:
    """Neither the run directory nor ``train.output_dir`` may be an input folder, lie inside one a run reads
    recursively, or hold an input: a run would read its own outputs (a model's loss.jsonl as a document), and
    replacing its dataset could delete the user's files. An input file beside them is fine; a path that does not
    exist is left to discovery to report. ``inputs``: the layout's own when not given."""
    inputs = layout.inputs if inputs is None else inputs
    for key, folder in (("output.dir", layout.root), ("train.output_dir", layout.model)):
        _check_folder_apart(key, folder, inputs)


def _check_folder_apart(key: str, run_dir: Path, inputs) -> None:
    run = Path(os.path.abspath(run_dir)).resolve()

    def overlap(entry: str, folder: Path) -> OutputError:
        return OutputError(
            f"{key} {run_dir} ({run}) overlaps the input {entry} ({folder}); put it outside the documents, for "
            "example runs/<name> beside them"
        )

    for entry in inputs:
        pattern = any(c in entry for c in "*?[")
        path = Path(entry.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0] or ".") if pattern else Path(entry)
        if not pattern and not path.exists():
            continue
        target = Path(os.path.abspath(path if path.is_dir() or not pattern else path.parent)).resolve()
        if target.is_file():
            if run in target.parents:  # the run directory holds an input file
                raise overlap(entry, target)
            continue
        recursive = not pattern or "**" in entry  # a folder is read recursively; a glob only with **
        if run == target or run in target.parents or (recursive and target in run.parents):
            raise overlap(entry, target)


def user_cache() -> Path:
    """The user's cache, shared by runs: ``$GRISTMILL_CACHE``, else ``$XDG_CACHE_HOME/gristmill``, else
    ``~/.cache/gristmill`` (base models, the base model's generations, hardware and endpoint probes)."""
    if os.environ.get("GRISTMILL_CACHE"):
        return Path(os.environ["GRISTMILL_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gristmill"


def write_atomic(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary sibling renamed into place: a reader (or a crash) sees the old file
    or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
