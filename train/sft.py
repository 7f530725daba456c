"""``gristmill train``: a straight line onto TRL's SFTTrainer.

train section (resolved recipe, then ``--set``) -> model and tokenizer through ``from_pretrained`` (``tiny`` is
built offline first) -> a chat template with generation markers -> preflight -> SFTConfig with device-aware
defaults under the recipe's ``sft`` -> SFTTrainer -> train (resuming from the last checkpoint on ``--resume``)
-> the model (and a merged model with LoRA), tokenizer, chat template and training_summary.json.

Defaults on CPU: ``use_cpu``, no bf16, no activation checkpointing, packing off (on CPU it means padding-free
batches whose cost grows with batch x length squared) and one torch thread (on a 2-core machine with other
load, 2 threads ran 4-13x slower). On CUDA: bf16 where supported, activation checkpointing. Telemetry is off:
HF_HUB_DISABLE_TELEMETRY is set unless the environment says otherwise, and ``report_to`` is empty unless
TensorBoard is installed.
"""

from __future__ import annotations

import difflib
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
from pydantic import ValidationError

from curate.errors import RecipeError, TrainError
from curate.output import check_dataset_dir
from curate.recipe import _format_errors, apply_overrides
from train.config import TrainSection
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
    try:
        return TrainSection.model_validate(raw["train"]), resolved
    except ValidationError as err:
        problems = _format_errors(err, "train", TrainSection)
        raise RecipeError("train section: " + "; ".join(problems)) from None


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in step order that were written to the end: the Trainer writes trainer_state.json last, so a
    process killed while saving leaves a folder without it, which resuming must skip."""
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def dataset_key(dataset_dir: Path) -> str:
    h = hashlib.sha256()
    for name in ("train.jsonl", "test.jsonl"):
        h.update(hashlib.sha256((dataset_dir / name).read_bytes()).digest())
    return h.hexdigest()[:20]


def training_key(dataset_dir: Path, section: TrainSection) -> str:
    """What a trained model depends on: the dataset's examples and the train section (with overrides)."""
    return hashlib.sha256((dataset_key(dataset_dir) + section.model_dump_json()).encode()).hexdigest()[:20]


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def sft_defaults(cuda: bool, tiny: bool, output_dir: Path, seed: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "output_dir": str(output_dir / "checkpoints"),
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

        defaults.update(bf16=torch.cuda.is_bf16_supported(), gradient_checkpointing=True)
    else:
        defaults.update(use_cpu=True, bf16=False, gradient_checkpointing=False)
    if tiny:
        defaults.update(TINY_SFT)
    return defaults


def check_sft_keys(sft: dict[str, Any]) -> None:
    from trl import SFTConfig

    known = set(SFTConfig.__dataclass_fields__)
    for key in sft:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"did you mean {close[0]!r}?" if close else "see trl.SFTConfig for the names"
            raise RecipeError(f"train.sft.{key}: not an SFTConfig argument (value {sft[key]!r}); {hint}")


def _progress_callback(on_progress: Callable[[int, int, dict], None] | None, loss_log: Path):
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Loss to a JSONL file and to the caller's progress display."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and state.is_world_process_zero:
                with open(loss_log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

        def on_step_end(self, args, state, control, **kwargs):
            if on_progress is not None and state.is_world_process_zero:
                last = state.log_history[-1] if state.log_history else {}
                on_progress(state.global_step, state.max_steps, last)

    return Progress()


def train_model(
    path: Path,
    overrides: list[str] | None = None,
    *,
    preflight_only: bool = False,
    resume: bool = False,
    on_progress: Callable[[int, int, dict], None] | None = None,
    on_preflight: Callable[[Any], None] | None = None,
) -> TrainResult:
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    dataset_dir = check_dataset_dir(path)
    section, resolved = load_train_section(dataset_dir, overrides or [])
    check_sft_keys(section.sft)
    output_dir = Path(section.output_dir) if section.output_dir else dataset_dir.parent / "model"
    output_dir.mkdir(parents=True, exist_ok=True)
    key = training_key(dataset_dir, section)
    seed = section.seed if section.seed is not None else int(resolved.get("seed", 13))

    import datasets
    import torch
    import transformers
    from datasets import load_from_disk
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    # Progress is the caller's (rich) job: no tqdm bars from datasets or transformers, no printed log dicts.
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()

    from train.chat_template import ensure_training_template
    from train.preflight import memory_estimate, run_preflight

    cuda = torch.cuda.is_available()
    if not cuda:
        torch.set_num_threads(section.threads or 1)
    tiny = section.model in TINY_NAMES
    # Under accelerate launch or torchrun every process builds the same seeded tiny model; the first to finish
    # renames its folder into place and the others use it.
    if not resume and not preflight_only:  # a fresh start: nothing of an earlier training is reused
        shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
        if tiny and _read(output_dir / "base-tiny" / "dataset_key") != dataset_key(dataset_dir):
            shutil.rmtree(output_dir / "base-tiny", ignore_errors=True)  # its tokenizer was trained on other text
    model_path = str(build_tiny(dataset_dir, output_dir / "base-tiny", seed=seed)) if tiny else section.model
    try:  # from_pretrained honours HF_HUB_OFFLINE: with it set, only local folders and the cache are used
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path)
    except (OSError, ValueError) as err:  # missing files; a name that is no valid hub id
        raise TrainError(
            f"cannot load model {section.model!r} ({err}); give a local model folder, a hub id that is in the local "
            "cache, or model: tiny"
        ) from None
    choice = ensure_training_template(tokenizer, model)
    data = load_from_disk(str(dataset_dir / "data"))
    train_set = data["train"].select_columns(["messages"])
    args_dict = {**sft_defaults(cuda, tiny, output_dir, seed), **section.sft}
    report = run_preflight(
        tokenizer,
        train_set,
        max_length=int(args_dict["max_length"]),
        kind_column=data["train"]["kind"],
        template=choice.message,
    )
    n_params = sum(p.numel() for p in model.parameters())
    report.memory_gib = memory_estimate(
        n_params,
        n_params if section.lora is None else n_params // 100,
        int(args_dict["per_device_train_batch_size"]),
        min(int(args_dict["max_length"]), max(report.lengths)),
        int(getattr(model.config, "hidden_size", 0) or 0),
        int(getattr(model.config, "num_hidden_layers", 0) or 0),
        2 if args_dict.get("bf16") else 4,
    )
    if on_preflight is not None:
        on_preflight(report)
    if preflight_only:
        return TrainResult(output_dir, None, {}, report)

    eval_set = None
    if section.eval_split and section.eval_split in data and len(data[section.eval_split]):
        eval_set = data[section.eval_split].select_columns(["messages"])
        args_dict.setdefault("eval_strategy", "epoch")
    peft_config = None
    if section.lora is not None:
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=section.lora.r,
            lora_alpha=section.lora.alpha,
            lora_dropout=section.lora.dropout,
            target_modules=section.lora.target_modules,
            task_type="CAUSAL_LM",
        )
    loss_log = output_dir / "loss.jsonl"
    if not resume:
        loss_log.unlink(missing_ok=True)
    (output_dir / "train_key").write_text(key)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**args_dict),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[_progress_callback(on_progress, loss_log)],
    )
    trainer.remove_callback(PrinterCallback)
    checkpoints = complete_checkpoints(output_dir / "checkpoints")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if resume and checkpoints else None)
    wall = time.perf_counter() - start

    final = output_dir / "final"
    trainer.save_model(str(final))  # every process takes part (sharded models), the main one writes
    if not trainer.is_world_process_zero():
        return TrainResult(output_dir, final, {}, report)
    tokenizer.save_pretrained(str(final))
    if peft_config is not None:
        merged = trainer.model.merge_and_unload()
        merged.save_pretrained(str(output_dir / "final-merged"))
        tokenizer.save_pretrained(str(output_dir / "final-merged"))
    history = trainer.state.log_history
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    summary = {
        "key": key,
        "model": section.model,
        "chat_template": choice.message,
        "device": "cuda" if cuda else "cpu",
        "steps": trainer.state.global_step,
        "epochs": trainer.state.epoch,
        "train_loss": result.training_loss,
        "loss_curve": [{"step": h["step"], "loss": h["loss"]} for h in history if "loss" in h],
        "eval_loss": [{"step": h["step"], "loss": h["eval_loss"]} for h in history if "eval_loss" in h],
        "tokens": tokens,
        "wall_seconds": round(wall, 2),
        "tokens_per_second": round(tokens / wall, 1) if wall else None,
        "trainable_tokens_per_epoch": report.trainable_tokens,
        "preflight": [list(row) for row in report.rows()],
        "resumed": bool(resume and checkpoints),
        "processes": trainer.args.world_size,
        "lora": section.lora.model_dump() if section.lora else None,
        "sft": {k: v for k, v in args_dict.items() if k != "output_dir"},
    }
    (output_dir / "training_summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return TrainResult(output_dir, final, summary, report)
