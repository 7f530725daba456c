"""DPO after SFT: length-grouped batches (train.preference.train_sampling_strategy: group_by_length) against TRL's
default random order, same pairs and steps.

    python bench/preference.py [--model smollm2-135m|tiny] [--steps 8] [--runs 2] [--pairs 40] [--padding-only]

Curates the sample once (bench/data/preference-run), trains SFT once (a few steps: the start point does not
change the cost of a DPO step), then runs DPO in fresh processes, alternating the two orders, each resuming from
the same SFT model. Prints tokens/s (real tokens, from TRL's num_tokens) and the ratio. The baseline is DPOTrainer
as TRL ships it (``train_sampling_strategy: random``). First it prints, without running a model, the share of
padding in the batches of each order with the base's tokenizer (a pair's rejected base answer stands in as a
fixed 60-word answer): the cost a step pays for nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RUN = HERE / "data" / "preference-run"


def one(model: str, steps: int, pairs: int, order: str) -> float:
    """One DPO run in this process: tokens per second of the DPO trainer."""
    from train.sft import train_model

    sets = [f"model={model}", "sft.max_steps=2", "eval_split=null", f"preference.max_pairs_per_kind={pairs}",
            f"preference.max_steps={steps}", "preference.logging_steps=1", "preference.save_steps=1000"]  # fmt: skip
    if order == "grouped":
        sets.append("preference.train_sampling_strategy=group_by_length")
    summary = train_model(RUN / "dataset", sets).summary["preference"]
    return summary["tokens_per_second"]


def padding(model: str, pairs: int, batch: int = 4) -> None:
    import random

    from transformers import AutoTokenizer

    from curate.output import PAIR_KINDS
    from train.base_models import resolve_model
    from train.preference import length_batches, select_pairs

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(model, None))
    chosen = select_pairs(RUN / "dataset", list(PAIR_KINDS), pairs)
    stand_in = [{"role": "assistant", "content": "Sure, here is how to do that. " * 10}]

    def n(prompt, answer):
        return len(tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True)["input_ids"])

    lengths = {p["id"]: (n(p["prompt"], p["chosen"]), n(p["prompt"], p["rejected"] or stand_in)) for p in chosen}

    def share(order):
        real = padded = 0
        for i in range(0, len(order), batch):
            sizes = [x for p in order[i : i + batch] for x in lengths[p["id"]]]
            real, padded = real + sum(sizes), padded + len(sizes) * max(sizes)
        return 1 - real / padded, padded

    shuffled = chosen[:]
    random.Random(0).shuffle(shuffled)
    (base_share, base_pos), (mine_share, mine_pos) = share(shuffled), share(length_batches(chosen, batch, 13))
    print(f"padding in DPO batches of {batch} pairs, {len(chosen)} pairs, {model}'s tokenizer")
    print("| order | padding | positions computed | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| TRL default (random) | {base_share:.0%} | {base_pos} | 1.00x |")
    print(f"| group_by_length | {mine_share:.0%} | {mine_pos} | {base_pos / mine_pos:.2f}x fewer |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--padding-only", action="store_true", help="only the padding table (no training)")
    parser.add_argument("--one", choices=["random", "grouped"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    if args.one:
        print(json.dumps({"tokens_per_second": one(args.model, args.steps, args.pairs, args.one)}))
        return
    from curate.pipeline import curate
    from curate.recipe import load_recipe

    shutil.rmtree(RUN, ignore_errors=True)
    curate(load_recipe(REPO / "sample_data" / "recipe.yaml", [f"output.dir={RUN}"]))
    padding(args.model, args.pairs)
    if args.padding_only:
        return
    speeds: dict[str, list[float]] = {"random": [], "grouped": []}
    for _ in range(args.runs):
        for order in speeds:
            out = subprocess.run(
                [sys.executable, __file__, "--one", order, "--model", args.model, "--steps", str(args.steps),
                 "--pairs", str(args.pairs)],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            speeds[order].append(json.loads(out.stdout.strip().splitlines()[-1])["tokens_per_second"])
    base, mine = statistics.median(speeds["random"]), statistics.median(speeds["grouped"])
    print(f"DPO on {args.model}, {args.steps} steps, {args.pairs} pairs a kind, medians of {args.runs} runs")
    print("| order | tokens/s | ratio |")
    print("| --- | --- | --- |")
    print(f"| TRL default (random) | {base:.0f} | 1.00x |")
    print(f"| group_by_length | {mine:.0f} | {mine / base:.2f}x |")


if __name__ == "__main__":
    main()
