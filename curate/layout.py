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
  report.html
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

DATASET = "dataset"
RESOLVED_RECIPE = "recipe.resolved.yaml"


@dataclass(frozen=True)
class RunLayout:
    root: Path
    model: Path  # the model folder: train.output_dir, or <run>/model

    @classmethod
    def create(cls, run_dir: Path | str, model_dir: Path | str | None = None) -> RunLayout:
        root = Path(run_dir)
        return cls(root, Path(model_dir) if model_dir else root / "model")

    @classmethod
    def of(cls, path: Path | str) -> RunLayout:
        """The layout of a run from its directory or its ``dataset/`` folder; ``train.output_dir`` comes from the
        dataset's resolved recipe, so a run that moved its model elsewhere is still found."""
        path = Path(path)
        root = path.parent if (path / RESOLVED_RECIPE).is_file() else path
        resolved = root / DATASET / RESOLVED_RECIPE
        train = {}
        if resolved.is_file():
            train = (yaml.safe_load(resolved.read_text(encoding="utf-8")) or {}).get("train") or {}
        return cls.create(root, train.get("output_dir"))

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
