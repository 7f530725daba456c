"""Evaluation generation: gristmill's greedy decoding against the ``model.generate`` batches it replaced.

    python bench/eval_generation.py [--model smollm2-135m] [--per-kind 12] [--runs 2]

The sample recipe curated into a temporary folder; from its held-out split, ``--per-kind`` items of every kind,
each with its kind's budget (``eval.budgets``, capped by the sample's ``max_new_tokens``), as the base model and
as the prompted baseline (the policy and 4 shots before every item) see them. Both methods get the same items,
batches (batch size 64, grouped by budget and length as generation.py groups them), threads (2), bf16 autocast
where the CPU probe allows it, in this one process, alternating over ``--runs``:

- ``model.generate``: the batch left-padded and decoded by transformers until every row has stopped or the
  budget is spent (gristmill's generation before this change);
- ``gristmill greedy``: generation.greedy, the batch's shared prefix run once, finished rows leaving the batch.

The table shows generated tokens per second (the tokens kept, up to each row's stop) and the ratio to
``model.generate``, and how many outputs differ between the two (bf16 rounding can flip a near-tie).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from training import curate_sample  # noqa: E402


def hf_generate(model, tokenizer, ids: list[list[int]], budget: int, stop: set[int]) -> list[list[int]]:
    """The replaced path: one left-padded batch through ``model.generate``."""
    import torch

    width = max(len(r) for r in ids)
    pad = tokenizer.pad_token_id
    inputs = torch.tensor([[pad] * (width - len(r)) + r for r in ids])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in ids])
    out = model.generate(input_ids=inputs, attention_mask=mask, max_new_tokens=budget, do_sample=False,
                         pad_token_id=pad, eos_token_id=sorted(stop))  # fmt: skip
    rows = []
    for row in out[:, width:].tolist():
        rows.append(row[: next((i for i, t in enumerate(row) if t in stop), len(row))])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--per-kind", type=int, default=12)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    import json
    import os

    import torch
    from rich.console import Console
    from rich.table import Table

    from train.base_models import resolve_model
    from train.config import DEFAULT_BUDGETS
    from train.device import autocast_dtype
    from train.eval.generation import greedy, load_model, stop_tokens
    from train.eval.items import prompted_shots, prompted_system, test_items, with_policy_prompt

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = curate_sample(Path(tmp) / "run", env)
        chosen: dict[str, list] = defaultdict(list)
        for it in test_items(dataset):
            if len(chosen[it.kind]) < args.per_kind:
                chosen[it.kind].append(it)
        items = [it for group in chosen.values() for it in group]
        behaviours = json.loads((dataset / "behaviours.json").read_text())
        schemas = {p.stem: json.loads(p.read_text()) for p in (dataset / "schemas").glob("*.json")}
        system, shots = prompted_system(behaviours, schemas), prompted_shots(dataset, 4)
    model, tokenizer = load_model(Path(resolve_model(args.model, print)), threads=2)
    stop = stop_tokens(model, tokenizer)
    dtype = autocast_dtype()
    budgets = {kind: min(160, n) for kind, n in DEFAULT_BUDGETS.items()}

    def batches(prompted: bool):
        rows = []
        for it in items:
            messages = with_policy_prompt(it, system, shots) if prompted else it.messages
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            rows.append((budgets.get(it.kind, 160), len(text), tokenizer(text, add_special_tokens=False)["input_ids"]))
        rows.sort(key=lambda r: (r[0], r[1]))
        out, current = [], []
        for row in rows:
            if current and (len(current) == args.batch_size or row[0] != current[0][0]):
                out.append(current)
                current = []
            current.append(row)
        return [*out, current]

    methods = {
        "model.generate": lambda ids, budget: hf_generate(model, tokenizer, ids, budget, stop),
        "gristmill greedy": lambda ids, budget: greedy(model, ids, budget, stop, tokenizer.pad_token_id),
    }
    rates: dict[tuple[str, str], list[float]] = defaultdict(list)
    outputs: dict[tuple[str, str], list] = {}
    prompt_tokens = {}
    for _ in range(args.runs):  # alternate, so drift in machine load hits both alike
        for view in ("base", "prompted"):
            work = batches(view == "prompted")
            prompt_tokens[view] = sum(len(r[2]) for b in work for r in b) / len(items)
            for name, fn in methods.items():
                start, made, got = time.perf_counter(), 0, []
                with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                    for batch in work:
                        rows = fn([r[2] for r in batch], batch[0][0])
                        made += sum(len(r) for r in rows)
                        got += rows
                rates[(view, name)].append(made / (time.perf_counter() - start))
                outputs[(view, name)] = got
    table = Table(
        "prompts as", "method", "generated tokens/s (median)", "runs", "vs model.generate", "outputs differing",
        title=f"Evaluation generation, {args.model}, {len(items)} held-out items ({args.per_kind} per kind), "
        f"batch {args.batch_size}, 2 threads, autocast {dtype}",
    )  # fmt: skip
    for (view, name), values in rates.items():
        base = statistics.median(rates[(view, "model.generate")])
        differ = sum(a != b for a, b in zip(outputs[(view, name)], outputs[(view, "model.generate")], strict=True))
        table.add_row(f"{view} (~{prompt_tokens[view]:.0f} prompt tokens)", name, f"{statistics.median(values):.1f}",
                      " ".join(f"{v:.1f}" for v in values), f"{statistics.median(values) / base:.2f}x",
                      f"{differ}/{len(items)}")  # fmt: skip
    Console(width=170).print(table)


if __name__ == "__main__":
    main()
