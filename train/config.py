"""The recipe's ``train`` and ``eval`` sections: pydantic only, so the CLI can validate them without torch."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from curate.config import Strict


class LoraSection(Strict):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA layers.")
    target_modules: list[str] | str = Field("all-linear", description="Modules to adapt, or 'all-linear'.")


class TrainSection(Strict):
    model: str = Field("tiny", description="A hub id, a local model directory, or 'tiny' for the offline tiny model.")
    lora: LoraSection | None = Field(None, description="LoRA adapter settings; null for a full fine-tune.")
    sft: dict[str, Any] = Field(
        default_factory=dict, description="Passed to trl.SFTConfig as keyword arguments (num_train_epochs, ...)."
    )
    output_dir: str | None = Field(None, description="Where the model goes; default <run>/model.")
    seed: int | None = Field(None, description="Training seed; default the recipe's seed.")
    eval_split: str | None = Field("test", description="Split evaluated during training; null: none.")
    threads: int | None = Field(
        None, ge=1, description="torch threads on CPU; default 1 (measured fastest on 2 cores)."
    )


class EvalSection(Strict):
    max_new_tokens: int = Field(128, ge=1, description="Upper bound on generated tokens per prompt.")
    batch_size: int = Field(16, ge=1, description="Prompts generated together.")
    targets: dict[str, float] = Field(
        default_factory=dict,
        description="Behaviour targets as kind.metric: value (refusal.refusal_rate: 0.9), over the built-in ones.",
    )
