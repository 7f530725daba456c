"""The recipe's ``train`` and ``eval`` sections: pydantic only, so the CLI can validate them without torch."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from curate.config import Budgeted, Strict


class LoraSection(Strict):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: int = Field(32, ge=1, description="LoRA scaling alpha.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the LoRA layers.")
    target_modules: list[str] | str = Field("all-linear", description="Modules to adapt, or 'all-linear'.")


class TrainSection(Strict):
    model: str = Field(
        "tiny",
        description="A named offline base (smollm2-135m), a local .gguf file, a local model folder, a hub id in "
        "the local cache, or 'tiny' (the offline tiny model, for tests).",
    )
    lora: LoraSection | None = Field(None, description="LoRA adapter settings; null for a full fine-tune.")
    sft: dict[str, Any] = Field(
        default_factory=dict, description="Passed to trl.SFTConfig as keyword arguments (num_train_epochs, ...)."
    )
    preference: dict[str, Any] | None = Field(
        None,
        description="Preference tuning after SFT: {method: dpo, max_pairs_per_kind, kinds, ...}; the other keys are "
        "trl.DPOConfig arguments (beta, learning_rate, num_train_epochs, max_length, ...). null: SFT only.",
    )
    output_dir: str | None = Field(None, description="Where the model goes; default <run>/model.")
    seed: int | None = Field(None, description="Training seed; default the recipe's seed.")
    eval_split: str | None = Field("test", description="Split evaluated during training; null: none.")
    threads: int | None = Field(
        None, ge=1, description="torch threads on CPU; default 1 (measured fastest on 2 cores)."
    )


# Tokens each kind needs to show its behaviour: a refusal or abstention is decided in its first sentence, the
# over-refusal classifier reads the first 300 characters, a JSON object needs room for its schema, and answers
# scored against a reference (token F1, ROUGE-L) need the most.
DEFAULT_BUDGETS = {
    "refusal": 40,
    "abstain": 40,
    "benign_near_miss": 64,
    "answer": 64,
    "extract_json": 160,
    "persona": 64,
    "summary": 96,
    "qa": 128,
    "grounded_abstain": 40,
    "grounded_qa": 128,
}


class PromptedSection(Strict):
    shots: int = Field(4, ge=0, description="Training examples shown before each item, one kind after another.")


class EndpointSection(Budgeted):
    name: str | None = Field(None, description="Label in the tables; default the model name.")
    base_url: str = Field(description="The OpenAI-compatible endpoint (llama.cpp, vLLM, Ollama, a hosted API).")
    model: str = Field(description="Model name at that endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable with the key (any value locally).")
    max_concurrency: int = Field(1, ge=1, description="Requests in flight (llama.cpp's server: 1 is fastest).")
    prompted: bool = Field(True, description="Also score it with the policy system prompt and shots.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Request fields beyond OpenAI's ({repeat_penalty: 1.0} for llama-cpp-python's server).",
    )


class EvalSection(Strict):
    max_new_tokens: int = Field(128, ge=1, description="Upper bound on generated tokens per prompt.")
    budgets: dict[str, int] = Field(
        default_factory=lambda: dict(DEFAULT_BUDGETS),
        description="Generated tokens per kind (capped by max_new_tokens); kinds not listed get max_new_tokens.",
    )
    batch_size: int = Field(48, ge=1, description="Prompts generated together (on a 2-core CPU, 64 ran 2.5x 16).")
    prompts: list[str] = Field(
        default_factory=list,
        description="Red-team or regression prompt files (JSONL of {prompt, expected}) scored by every eval and run.",
    )
    targets: dict[str, float] = Field(
        default_factory=dict,
        description="Behaviour targets as kind.metric: value (refusal.refusal_rate: 0.9), over the built-in ones.",
    )
    baselines: list[Literal["base", "prompted"]] = Field(
        default_factory=lambda: ["base", "prompted"],
        description="Compared with the trained model: the untouched base, and the base prompted with the policy.",
    )
    prompted: PromptedSection = Field(default_factory=PromptedSection)
    tolerance: float = Field(
        0.05, ge=0, le=1, description="A failure-mode rate may rise this much before it counts as a regression."
    )
    judge: Literal["rules", "llm"] = Field(
        "rules",
        description="Who labels answers refused/abstained/answered: the offline rules, or the recipe's llm endpoint "
        "with the prompt.judge_decline rubric (cached).",
    )
    endpoints: list[EndpointSection] = Field(
        default_factory=list, description="Served models scored on the same items, with and without the policy."
    )

    @field_validator("targets")
    @classmethod
    def _known_targets(cls, targets: dict[str, float]) -> dict[str, float]:
        from train.eval.compare import validate_target_keys

        validate_target_keys(targets)
        return targets


class ExportSection(Strict):
    """``export:`` in a recipe: ``gristmill run`` exports the trained model after evaluating it."""

    formats: list[Literal["hf", "gguf", "ollama"]] = Field(
        default_factory=lambda: ["hf", "gguf", "ollama"],
        description="hf (the folder vLLM loads), gguf (llama.cpp), ollama (a Modelfile; implies gguf).",
        min_length=1,
    )
    quant: Literal["f16", "q8_0", "q4_k_m"] = Field(
        "q8_0", description="The GGUF's type: f16 and q8_0 are written in Python, q4_k_m needs the serve extra."
    )
