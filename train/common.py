"""What SFT (sft.py) and preference tuning (preference.py) share: checking a TRL config section, loading a model
with its training chat template, checkpoints, LoRA settings, progress logging and swapping a saved model in."""

from __future__ import annotations

import difflib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.config import problems_error
from curate.errors import TrainError
from train.config import TrainSection


def check_config(config_class: type, values: dict[str, Any], where: str) -> None:
    """Each key of ``values`` names a field of the dataclass ``config_class`` (a TRL config) and has its type."""
    import dataclasses
    import typing

    from pydantic import TypeAdapter, ValidationError

    hints = typing.get_type_hints(config_class)
    known = sorted(f.name for f in dataclasses.fields(config_class))
    name = config_class.__name__
    problems = []
    for key, value in values.items():
        if key not in hints:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"see trl.{name} for the names"
            article = "an" if name[0] in "AEFHILMNORSX" else "a"  # as the letter is read: an SFTConfig
            problems.append(f"{where}.{key}: not {article} {name} argument (value {value!r}); {hint}")
            continue
        try:
            TypeAdapter(hints[key]).validate_python(value)
        except ValidationError as err:
            problems.append(f"{where}.{key}: {err.errors()[0]['msg']} (got {value!r}; {name} wants {hints[key]})")
    if problems:
        raise problems_error(where, problems)


def complete_checkpoints(folder: Path) -> list[Path]:
    """Checkpoints in step order that were written to the end: the Trainer writes trainer_state.json last, so a
    process killed while saving leaves a folder without it, which resuming must skip."""
    found = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def progress_callback(on_progress: Callable[[int, int, dict], None] | None, loss_log: Path):
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


def load_for_training(model_path: str, name: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.chat_template import ensure_training_template

    try:  # from_pretrained honours HF_HUB_OFFLINE: with it set, only local folders and the cache are used
        tokenizer = AutoTokenizer.from_pretrained(model_path)
        model = AutoModelForCausalLM.from_pretrained(model_path)
    except (OSError, ValueError) as err:  # missing files; a name that is no valid hub id
        raise TrainError(
            f"cannot load model {name!r} ({err}); give a local model folder, a hub id that is in the local "
            "cache, or model: tiny"
        ) from None
    return model, tokenizer, ensure_training_template(tokenizer, model)


def lora_config(section: TrainSection):
    """peft's LoraConfig for the section's ``lora``, or None for a full fine-tune."""
    if section.lora is None:
        return None
    from peft import LoraConfig

    lora = section.lora
    return LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )  # fmt: skip


def swap_in(staging: Path, target: Path) -> None:
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
