"""Preference tuning after SFT: TRL's DPOTrainer on the curated preference pairs, starting from the SFT model.

``train.preference`` turns it on: ``{method: dpo, kinds: [...], max_pairs_per_kind: N}`` and any
``trl.DPOConfig`` argument (``beta``, ``learning_rate``, ``num_train_epochs``, ``max_length``, ...), checked for
names and types before a model loads, as ``train.sft`` is checked against SFTConfig.

- **Pairs.** Curate wrote them (curate/preference.py): chosen is the reference answer; rejected is a refusal or
  an abstention in the policy's phrasing, or, for refusal and abstain prompts, empty: those get the base model's
  own answer here, generated greedily and cached in the user cache with the baseline's generations (no compliant
  answer to a harmful request is written into the run). A base answer the decline detector reads as a refusal or
  an abstention is no "wrong behaviour" to push away from: that pair is dropped and counted.
- **Training.** The SFT model is the policy and the reference; the reference log-probs are computed once before
  the first step (``precompute_ref_log_probs``), so no second model is held. With LoRA, a new adapter trains on
  the merged SFT model, and the reference is that model with the adapter off.
- **Where things go.** With preference tuning, SFT's model and summary go to ``<model>/sft/``; DPO checkpoints to
  ``<model>/dpo-checkpoints/``; the DPO model becomes ``final/`` (and ``final-merged/``), so eval, chat and the
  report use it. ``training_summary.json`` is written only when both stages are done, with a ``preference``
  section: pairs per kind, what was dropped, and the loss, reward margin and reward accuracy curve.
- **Resume.** A run killed during DPO resumes it from its last complete checkpoint, without training SFT again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.errors import RecipeError, TrainError
from curate.layout import user_cache, write_atomic
from curate.output import BASE_REJECTED, PAIR_KINDS, read_jsonl

OPTIONS = ("method", "kinds", "max_pairs_per_kind")
REJECTED_BUDGET = 64  # tokens of the base's answer: enough to show it complies or invents


def split_preference(preference: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(gristmill's options, DPOConfig arguments) of ``train.preference``, both checked; RecipeError otherwise."""
    from trl import DPOConfig

    from train.common import check_config

    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise RecipeError(
            "train.preference runs in one process; run `gristmill train` without accelerate launch or torchrun "
            "for preference tuning, or set train.preference: null for a multi-process SFT"
        )

    options = {k: preference[k] for k in OPTIONS if k in preference}
    method = options.setdefault("method", "dpo")
    if method != "dpo":
        raise RecipeError(f"train.preference.method: {method!r} is not supported; use dpo (or preference: null)")
    kinds = options.setdefault("kinds", list(PAIR_KINDS))
    unknown = sorted(set(kinds) - set(PAIR_KINDS)) if isinstance(kinds, list) else [kinds]
    if unknown:
        raise RecipeError(f"train.preference.kinds: {unknown} are not paired kinds; choose from {list(PAIR_KINDS)}")
    cap = options.get("max_pairs_per_kind")
    if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
        raise RecipeError(f"train.preference.max_pairs_per_kind: {cap!r} is not a positive integer; give one or null")
    dpo = {k: v for k, v in preference.items() if k not in OPTIONS}
    check_config(DPOConfig, dpo, "train.preference")
    return options, dpo


def select_pairs(dataset_dir: Path, kinds: list[str], cap: int | None) -> list[dict[str, Any]]:
    """The curated pairs of ``kinds``, at most ``cap`` a kind, chosen by a hash of the id (stable across runs)."""
    path = dataset_dir / "preference.jsonl"
    if not path.is_file():
        raise TrainError(f"{dataset_dir} has no preference.jsonl; curate it again with this gristmill version")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for pair in read_jsonl(path):
        if pair["kind"] in kinds:
            by_kind.setdefault(pair["kind"], []).append(pair)
    out = []
    for kind in sorted(by_kind):
        ranked = sorted(by_kind[kind], key=lambda p: hashlib.sha256(p["id"].encode()).hexdigest())
        out += ranked[:cap] if cap else ranked
    if not out:
        raise TrainError(f"no preference pairs of kinds {kinds} in {path}; add those kinds to generate, or drop them")
    return out


def fill_from_base(
    pairs: list[dict[str, Any]], base: str, behaviours: dict[str, Any], *, threads: int, batch_size: int,
    notify: Callable[[str], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, int]]:  # fmt: skip
    """Pairs whose rejected turn is the base model's answer get it; those where the base declined too are dropped.
    Returns (complete pairs, {kind: dropped})."""
    from train.eval.detector import Detector
    from train.eval.generation import generate

    todo = {p["id"]: (p["prompt"], REJECTED_BUDGET) for p in pairs if p["rejected_from"] == "base"}
    if not todo:
        return pairs, {}
    if not Path(base).is_dir():
        raise TrainError(
            f"{len(todo)} preference pairs take their rejected answer from the base model, but the base {base!r} is "
            "not a local folder; use a local base, or train.preference.kinds without " + ", ".join(BASE_REJECTED)
        )
    if notify:
        notify(f"preference pairs: the base model answers {len(todo)} training prompts (cached in the user cache)")
    answers = generate(Path(base), todo, batch_size=batch_size, cache_dir=user_cache() / "generations",
                       threads=threads)  # fmt: skip
    detector = Detector.from_behaviours(behaviours)
    kept, dropped = [], Counter()
    for pair in pairs:
        if pair["rejected_from"] == "base":
            answer = answers[pair["id"]]
            verdict = detector(answer)
            if not answer.strip() or verdict.declined or verdict.partial:
                dropped[pair["kind"]] += 1
                continue
            pair = {**pair, "rejected": [{"role": "assistant", "content": answer}]}
        kept.append(pair)
    return kept, dict(sorted(dropped.items()))


def length_batches(pairs: list[dict[str, Any]], batch: int, seed: int) -> list[dict[str, Any]]:
    """``train.preference.train_sampling_strategy: group_by_length``: pairs sorted by length, cut into batches, the
    batches shuffled (seeded), as SFT's group_by_length does (the DPO dataset, tokenized inside the trainer, has
    no length column for the Trainer's own). Each batch pads to its longest sequence: on the sample it cuts the
    padding from 41% to 22% of the positions (bench/preference.py). Not the default: a batch then holds pairs
    of one length, mostly of one kind, and on the tiny model's test DPO moved the margin less than with TRL's
    random order; measure it on your data first."""
    import random

    def size(pair):
        turns = pair["prompt"] + pair["chosen"] + pair["rejected"]
        return sum(len(t["content"]) for t in turns)

    ordered = sorted(pairs, key=lambda p: (size(p), p["id"]))
    chunks = [ordered[i : i + batch] for i in range(0, len(ordered), batch)]
    random.Random(seed).shuffle(chunks)
    return [pair for chunk in chunks for pair in chunk]


def dpo_defaults(p, output_dir: Path, seed: int, tiny: bool) -> dict[str, Any]:
    """DPOConfig arguments under the recipe's: SFT's device settings, a short run and precomputed reference
    log-probs (no reference model in memory)."""
    defaults = {
        k: v for k, v in p.args.items()
        if k in ("use_cpu", "bf16", "activation_checkpointing", "report_to", "disable_tqdm", "max_length")
    }  # fmt: skip
    defaults.update({
        "output_dir": str(output_dir),
        "beta": 0.1,
        "learning_rate": 1.0e-4 if tiny else 5.0e-6,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.1,
        "num_train_epochs": 1,
        "per_device_train_batch_size": 4,  # a pair is two sequences: 8 a step, as SFT's default batch
        "precompute_ref_log_probs": True,
        "precompute_ref_batch_size": 8,
        "logging_steps": 5,
        "save_steps": 25,
        "save_total_limit": 2,
        "seed": seed,
    })  # fmt: skip
    return defaults


def fit_preference(
    p, options: dict[str, Any], user: dict[str, Any], start: Path, *, resume: bool,
    on_progress: Callable[[int, int, dict], None] | None = None, notify: Callable[[str], None] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """DPO from the SFT model in ``start``; the model saved to ``final/`` (and ``final-merged/`` with LoRA).
    Returns the summary's ``preference`` section."""
    from datasets import Dataset
    from transformers import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from train.common import complete_checkpoints, load_for_training, lora_config, progress_callback, swap_in
    from train.tiny import TINY_NAMES

    began = time.perf_counter()
    dataset_dir = p.dataset_dir
    behaviours = json.loads((dataset_dir / "behaviours.json").read_text(encoding="utf-8"))
    pairs = select_pairs(dataset_dir, options["kinds"], options.get("max_pairs_per_kind"))
    batch = int(p.eval_batch_size)
    pairs, dropped = fill_from_base(pairs, p.base, behaviours, threads=p.section.threads or 1, batch_size=batch,
                                    notify=notify)  # fmt: skip
    if not pairs:
        raise TrainError("every preference pair was dropped (the base declined each prompt); nothing to tune on")
    checkpoints = p.layout.model / "dpo-checkpoints"
    args = {**dpo_defaults(p, checkpoints, p.seed, p.section.model in TINY_NAMES), **user}
    model, tokenizer, _ = load_for_training(str(start), p.section.model)
    if args.get("train_sampling_strategy") == "group_by_length":  # the DPO dataset has no length column for it
        pairs = length_batches(pairs, int(args["per_device_train_batch_size"]), p.seed)
        args["train_sampling_strategy"] = "sequential"
    data = Dataset.from_list([{k: pair[k] for k in ("prompt", "chosen", "rejected")} for pair in pairs])
    loss_log = p.layout.model / "dpo-loss.jsonl"
    if not resume:
        loss_log.unlink(missing_ok=True)
    if notify:
        notify(f"preference tuning (DPO, beta {args['beta']}) on {len(pairs)} pairs from the SFT model")

    class Trainer(DPOTrainer):
        def compute_ref_log_probs(self, model, inputs):
            # The reference pass runs in __init__, after TRL patched the model's head and before this function
            # could wrap it: wrap it here, once, so the precompute uses the labelled-positions head too (on the
            # sample, TRL's full-sequence head made the precompute alone take longer than the training).
            _compact(self.model)
            return super().compute_ref_log_probs(model, inputs)

    with quiet_precompute():  # the caller shows progress; TRL's tqdm bar and its own deprecation warning are noise
        trainer = Trainer(
            model=model,
            args=DPOConfig(**args),
            train_dataset=data,
            processing_class=tokenizer,
            peft_config=lora_config(p.section),
            callbacks=[progress_callback(on_progress, loss_log)],
        )
    trainer.remove_callback(PrinterCallback)
    _compact(trainer.model)
    done = complete_checkpoints(checkpoints)
    resumed = bool(resume and done)
    fitted = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(done[-1]) if resumed else None)
    wall = time.perf_counter() - fitted
    staging = p.layout.model / ".final.tmp-save"
    trainer.save_model(str(staging))
    tokenizer.save_pretrained(str(staging))
    swap_in(staging, p.layout.final)
    if p.section.lora is not None:
        merged = p.layout.model / ".final-merged.tmp-save"
        trainer.model.merge_and_unload().save_pretrained(str(merged))
        tokenizer.save_pretrained(str(merged))
        swap_in(merged, p.layout.final_merged)
    history = trainer.state.log_history
    tokens = max((h.get("num_tokens", 0) for h in history), default=0)
    curve = [
        {"step": h["step"], "loss": h["loss"], "margin": h.get("rewards/margins"),
         "accuracy": h.get("rewards/accuracies")}
        for h in history if "loss" in h
    ]  # fmt: skip
    return {
        "method": "dpo",
        "pairs": dict(sorted(Counter(pair["kind"] for pair in pairs).items())),
        "rejected_from": dict(sorted(Counter(pair["rejected_from"] for pair in pairs).items())),
        "dropped_base_declined": dropped,
        "steps": trainer.state.global_step,
        "train_loss": result.training_loss,
        "curve": curve,
        "tokens": tokens,
        "wall_seconds": round(wall, 2),
        "other_seconds": round(time.perf_counter() - began - wall, 2),
        "tokens_per_second": round(tokens / wall, 1) if wall else None,
        "resumed": resumed,
        "dpo": {k: v for k, v in args.items() if k != "output_dir"},
    }


def _compact(model) -> None:
    """compact_lm_head on the (inner) model, once."""
    from train.lm_head import compact_lm_head

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not getattr(inner, "_gristmill_compact_head", False):
        compact_lm_head(inner)
        inner._gristmill_compact_head = True


@contextlib.contextmanager
def quiet_precompute():
    saved = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        if saved is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = saved


def move_sft_outputs(layout, sft_dir: Path) -> None:
    """SFT's final model (and merged model) into ``sft_dir``."""
    shutil.rmtree(sft_dir, ignore_errors=True)
    sft_dir.mkdir(parents=True)
    for folder in (layout.final, layout.final_merged):
        if folder.is_dir():
            folder.rename(sft_dir / folder.name)


def start_of(sft_dir: Path) -> Path:
    merged = sft_dir / "final-merged"
    return merged if merged.is_dir() else sft_dir / "final"


def write_sft_summary(sft_dir: Path, summary: dict[str, Any]) -> None:
    write_atomic(sft_dir / "training_summary.json", json.dumps(summary, indent=2, default=str))
