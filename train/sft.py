"""``gristmill train``: a straight line onto TRL's SFTTrainer, as TRL's own ``scripts/sft.py``.

prepare: the train section (resolved recipe, then ``--set``), checked against ``SFTConfig`` for names and types
before anything loads -> model and tokenizer through ``from_pretrained`` (``tiny`` is built offline first) -> a
chat template with generation markers -> preflight -> SFTConfig with device-aware defaults under the recipe's
``sft``. fit: SFTTrainer, train (resuming from the last complete checkpoint on ``--resume``), save the model
(and a merged model with LoRA), tokenizer and chat template. summarize: training_summary.json.

Defaults on CPU: ``use_cpu``, bf16 autocast where a probe finds it native (device.py), batches grouped by length,
no activation checkpointing, packing off (on CPU it means padding-free batches whose cost grows with batch x length
squared) and one torch thread unless ``train.threads`` says otherwise. On CUDA: bf16 where supported, activation
checkpointing. Telemetry is off: HF_HUB_DISABLE_TELEMETRY is set unless the environment says otherwise, and
``report_to`` is empty unless TensorBoard is installed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from curate.config import apply_overrides, validate_section
from curate.layout import RunLayout, write_atomic
from curate.output import check_dataset_dir, dataset_key
from train.base_models import resolve_model
from train.common import (
    check_config,
    complete_checkpoints,
    load_for_training,
    lora_config,
    progress_callback,
    swap_in,
)
from train.config import TrainSection
from train.device import cpu_bf16
from train.lm_head import compact_lm_head
from train.tiny import TINY_NAMES, TINY_SFT, build_tiny


@dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path | None
    summary: dict[str, Any]
    preflight: Any


def load_train_section(dataset_dir: Path, overrides: list[str]) -> tuple[TrainSection, dict[str, Any]]:
    resolved = yaml.safe_load((dataset_dir / "recipe.resolved.yaml").read_text(encoding="utf-8")) or {}
    raw = {"train": dict(resolved.get("train") or {})}
    apply_overrides(raw, [o if o.startswith("train.") else f"train.{o}" for o in overrides])
    return validate_section(TrainSection, raw["train"], "train section", "train"), resolved


def check_sft(sft: dict[str, Any]) -> None:
    """Every ``train.sft`` key names an SFTConfig argument and its value has that argument's type; otherwise a
    RecipeError with each key path, the bad value and a fix. Runs before any model loads."""
    from trl import SFTConfig

    check_config(SFTConfig, sft, "train.sft")


def training_key(dataset_dir: Path, section: TrainSection) -> str:
    """What a trained model depends on: the dataset's examples and the train section (with overrides)."""
    return hashlib.sha256((dataset_key(dataset_dir) + section.model_dump_json()).encode()).hexdigest()[:20]


def model_layout(dataset_dir: Path, section: TrainSection) -> RunLayout:
    return RunLayout.create(dataset_dir.parent, section.output_dir)


def sft_defaults(cuda: bool, tiny: bool, layout: RunLayout, seed: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "output_dir": str(layout.checkpoints),
        "assistant_only_loss": True,
        "max_length": 1024,
        "packing": False,
        "per_device_train_batch_size": 8,
        "logging_steps": 5,
        "save_steps": 50,
        "save_total_limit": 2,
        "seed": seed,
        "disable_tqdm": True,
        "report_to": ["tensorboard"] if importlib.util.find_spec("tensorboard") else [],
    }
    if cuda:
        import torch

        defaults.update(bf16=torch.cuda.is_bf16_supported(), activation_checkpointing=True)
    else:
        # bf16 autocast where the CPU runs it natively (a probe decides, device.py); batches of similar lengths,
        # which cut padding from 28% to 3% of the tokens on the sample (measured: 1.33x the real tokens/s)
        defaults.update(use_cpu=True, bf16=cpu_bf16(), activation_checkpointing=False)
        defaults.update(train_sampling_strategy="group_by_length")
    if tiny:
        defaults.update(TINY_SFT)
    return defaults


@dataclass
class Prepared:
    """Everything training needs, checked: the run's paths, the section, the model and data, SFTConfig's args."""

    layout: RunLayout
    section: TrainSection
    key: str
    base: str  # the folder (or hub id) the model was loaded from: the untrained baseline
    model: Any
    tokenizer: Any
    template: Any  # chat_template.TemplateChoice
    data: Any  # datasets.DatasetDict
    args: dict[str, Any]
    preflight: Any
    cuda: bool
    dataset_dir: Path
    seed: int
    eval_batch_size: int  # the recipe's eval.batch_size: how many prompts the base answers together
    preference: tuple[dict[str, Any], dict[str, Any]] | None  # (options, DPOConfig arguments) when asked for


def prepare(path: Path, overrides: list[str], *, fresh: bool, notify: Callable[[str], None] | None = None) -> Prepared:
    """The section checked, the model and tokenizer loaded with a training chat template, the data, the SFTConfig
    arguments and the preflight report. ``fresh``: nothing of an earlier training is kept. ``notify`` hears about
    slow first-use steps (fetching and converting a named base)."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    dataset_dir = check_dataset_dir(path)
    section, resolved = load_train_section(dataset_dir, overrides)
    check_sft(section.sft)
    preference = None
    if section.preference is not None:
        from train.preference import split_preference

        preference = split_preference(section.preference)
    layout = model_layout(dataset_dir, section)
    layout.model.mkdir(parents=True, exist_ok=True)
    seed = section.seed if section.seed is not None else int(resolved.get("seed", 13))

    import datasets
    import torch
    import transformers
    from datasets import load_from_disk

    # Progress is the caller's (rich) job: no tqdm bars from datasets or transformers, no printed log dicts.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(section.threads or 1)
    tiny = section.model in TINY_NAMES
    if fresh:
        for stale in (layout.checkpoints, layout.final, layout.final_merged, layout.model / "sft",
                      layout.model / "dpo-checkpoints"):  # fmt: skip
            shutil.rmtree(stale, ignore_errors=True)
        layout.training_summary.unlink(missing_ok=True)
        base_key = layout.base_tiny / "dataset_key"
        if tiny and (not base_key.is_file() or base_key.read_text() != dataset_key(dataset_dir)):
            shutil.rmtree(layout.base_tiny, ignore_errors=True)  # its tokenizer was trained on other text
    # Under accelerate launch or torchrun every process builds the same seeded tiny model; the first to finish
    # renames its folder into place and the others use it.
    if tiny:
        model_path = str(build_tiny(dataset_dir, layout.base_tiny, seed=seed))
    else:
        model_path = resolve_model(section.model, notify)
    model, tokenizer, choice = load_for_training(model_path, section.model)
    data = load_from_disk(str(dataset_dir / "data"))
    user = dict(section.sft)
    if "gradient_checkpointing" in user:  # transformers' older name of the same setting: the user's choice wins
        user.setdefault("activation_checkpointing", user.pop("gradient_checkpointing"))
    args = {**sft_defaults(cuda, tiny, layout, seed), **user}
    report = _preflight(model, tokenizer, choice, data, args, section)
    key = training_key(dataset_dir, section)
    eval_batch = int((resolved.get("eval") or {}).get("batch_size") or 48)
    return Prepared(
        layout,
        section,
        key,
        model_path,
        model,
        tokenizer,
        choice,
        data,
        args,
        report,
        cuda,
        dataset_dir,
        seed,
        eval_batch,
        preference,
    )


def _preflight(model, tokenizer, choice, data, args: dict[str, Any], section: TrainSection):
    from train.preflight import memory_estimate, run_preflight

    report = run_preflight(
        tokenizer,
        data["train"].select_columns(["messages"]),
        max_length=int(args["max_length"]),
        kind_column=data["train"]["kind"],
        template=choice.message,
    )
    n_params = sum(p.numel() for p in model.parameters())
    report.memory_gib = memory_estimate(
        n_params,
        n_params if section.lora is None else n_params // 100,
        int(args["per_device_train_batch_size"]),
        min(int(args["max_length"]), max(report.lengths)),
        int(getattr(model.config, "hidden_size", 0) or 0),
        int(getattr(model.config, "num_hidden_layers", 0) or 0),
        2 if args.get("bf16") else 4,
    )
    return report


def fit(p: Prepared, *, resume: bool, on_progress: Callable[[int, int, dict], None] | None = None):
    """(trainer, TrainOutput, wall seconds): SFTTrainer on the prepared model and data, then the model saved to
    ``final/`` (and ``final-merged/`` with LoRA)."""
    from transformers import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    eval_set = None
    if p.section.eval_split and p.section.eval_split in p.data and len(p.data[p.section.eval_split]):
        eval_set = p.data[p.section.eval_split].select_columns(["messages"])
        p.args.setdefault("eval_strategy", "epoch")
    peft_config = lora_config(p.section)
    if not resume:
        p.layout.loss_log.unlink(missing_ok=True)
    p.layout.train_key.write_text(p.key)
    trainer = SFTTrainer(
        model=p.model,
        args=SFTConfig(**p.args),
        train_dataset=p.data["train"].select_columns(["messages"]),
        eval_dataset=eval_set,
        processing_class=p.tokenizer,
        peft_config=peft_config,
        callbacks=[progress_callback(on_progress, p.layout.loss_log)],
    )
    trainer.remove_callback(PrinterCallback)
    model = trainer.model
    compact_lm_head(model.get_base_model() if hasattr(model, "get_base_model") else model)
    checkpoints = complete_checkpoints(p.layout.checkpoints)
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints else None)
    wall = time.perf_counter() - start
    # final/ (and final-merged/) are written beside and renamed into place: a kill while saving leaves the
    # previous state, never half a model that eval and chat would load.
    staging = p.layout.model / ".final.tmp-save"
    trainer.save_model(str(staging))  # every process takes part (sharded models), the main one writes
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        p.tokenizer.save_pretrained(str(staging))
        swap_in(staging, p.layout.final)
        if peft_config is not None:
            merged_staging = p.layout.model / ".final-merged.tmp-save"
            trainer.model.merge_and_unload().save_pretrained(str(merged_staging))
            p.tokenizer.save_pretrained(str(merged_staging))
            swap_in(merged_staging, p.layout.final_merged)
    return trainer, result, wall, bool(resume and checkpoints)


def summarize(p: Prepared, trainer, result, wall: float, resumed: bool, other: float) -> dict[str, Any]:
    """SFT's part of training_summary.json: steps, loss curve, tokens and speed, the preflight, and the settings."""
    history = trainer.state.log_history
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    summary = {
        "key": p.key,
        "model": p.section.model,
        "base": p.base,
        "chat_template": p.template.message,
        "device": "cuda" if p.cuda else "cpu",
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_loss": result.training_loss,
        "loss_curve": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
        "eval_loss": [{"step": h["step"], "loss": h["eval_loss"]} for h in history if "eval_loss" in h],
        "tokens": tokens,
        "wall_seconds": round(wall, 2),
        # the rest: fetching and converting a named base, loading, preflight, tokenizing, saving the model
        "other_seconds": round(other, 2),
        "tokens_per_second": round(tokens / wall, 1) if wall else None,
        "trainable_tokens_per_epoch": p.preflight.trainable_tokens,
        "preflight": [list(row) for row in p.preflight.rows()],
        "resumed": resumed,
        "processes": trainer.args.world_size,
        "lora": p.section.lora.model_dump() if p.section.lora else None,
        "sft": {k: v for k, v in p.args.items() if k != "output_dir"},
    }
    return summary


def train_model(
    path: Path,
    overrides: list[str] | None = None,
    *,
    preflight_only: bool = False,
    resume: bool = False,
    on_progress: Callable[[int, int, dict], None] | None = None,
    on_preflight: Callable[[Any], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> TrainResult:
    """prepare -> (preflight shown) -> fit -> summarize, then preference tuning when the section asks for it.
    training_summary.json is written last: its key marks the model as done."""
    from train import preference as pref

    began = time.perf_counter()
    prepared = prepare(path, overrides or [], fresh=not resume and not preflight_only, notify=notify)
    layout = prepared.layout
    if on_preflight is not None:
        on_preflight(prepared.preflight)
    if preflight_only:
        return TrainResult(layout.model, None, {}, prepared.preflight)
    sft_dir = layout.model / "sft"
    sft_summary = _read_summary(sft_dir / "training_summary.json") if prepared.preference and resume else None
    if sft_summary is None or sft_summary.get("key") != prepared.key:
        trainer, result, wall, resumed = fit(prepared, resume=resume, on_progress=on_progress)
        if not trainer.is_world_process_zero():
            return TrainResult(layout.model, layout.final, {}, prepared.preflight)
        sft_summary = summarize(prepared, trainer, result, wall, resumed, time.perf_counter() - began - wall)
        if prepared.preference is None:
            write_atomic(layout.training_summary, json.dumps(sft_summary, indent=2, default=str))
            return TrainResult(layout.model, layout.final, sft_summary, prepared.preflight)
        pref.move_sft_outputs(layout, sft_dir)
        pref.write_sft_summary(sft_dir, sft_summary)
        resume = False  # the DPO checkpoints of an earlier SFT model are stale
        shutil.rmtree(layout.model / "dpo-checkpoints", ignore_errors=True)
    options, user = prepared.preference
    summary = {**sft_summary, "preference": pref.fit_preference(
        prepared, options, user, pref.start_of(sft_dir), resume=resume, on_progress=on_progress, notify=notify,
    )}  # fmt: skip
    write_atomic(layout.training_summary, json.dumps(summary, indent=2, default=str))
    return TrainResult(layout.model, layout.final, summary, prepared.preflight)


def _read_summary(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
