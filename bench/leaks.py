"""Leaks between the training and test prompts of a curated dataset, counted the way the evaluation issue found
them (independent of curate/split.py's own check):

- ``exact``: a test user turn, or the question inside it, that stands word for word as a training user turn or
  as the question inside one;
- ``near``: the same at word 3-gram Jaccard >= 0.8;
- ``excerpt``: a test prompt whose excerpts a training prompt also shows, or whose user turn has word 3-gram
  Jaccard >= 0.6 with a training user turn of a grounded kind.

    python bench/leaks.py runs/acme-support/dataset [OTHER_DATASET ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from curate.near_dup import jaccard_of, similar_pairs
from curate.output import read_jsonl
from curate.split import prompt_views


def leaks(dataset: Path) -> dict[str, int]:
    train, test = list(read_jsonl(dataset / "train.jsonl")), list(read_jsonl(dataset / "test.jsonl"))
    train_views = {v.strip().lower() for ex in train for v in prompt_views(ex)}
    exact = sum(any(v.strip().lower() in train_views for v in prompt_views(ex)) for ex in test)
    texts = [v for ex in train for v in prompt_views(ex)]
    owners = [k for k, ex in enumerate(train) for _ in prompt_views(ex)]
    n_train = len(texts)
    for k, ex in enumerate(test):
        for v in prompt_views(ex):
            texts.append(v)
            owners.append(len(train) + k)
    near = {owners[j] for i, j, _ in similar_pairs(texts) if i < n_train <= j}
    shown = {e for ex in train for e in json.loads(ex["meta"]).get("excerpts", [])}
    grounded_train = [ex for ex in train if ex["kind"].startswith("grounded")]
    excerpt = 0
    for ex in test:
        if not ex["kind"].startswith("grounded"):
            continue
        ids = json.loads(ex["meta"]).get("excerpts", [])
        user = ex["messages"][-2]["content"]
        if set(ids) & shown or any(jaccard_of(user, t["messages"][-2]["content"]) >= 0.6 for t in grounded_train):
            excerpt += 1
    return {"test": len(test), "exact": exact, "near": len(near), "excerpt": excerpt}


def main() -> None:
    print(f"{'dataset':50} {'test':>5} {'exact':>6} {'near':>5} {'excerpt':>8}")
    for arg in sys.argv[1:]:
        r = leaks(Path(arg))
        print(f"{arg:50} {r['test']:>5} {r['exact']:>6} {r['near']:>5} {r['excerpt']:>8}")


if __name__ == "__main__":
    main()
