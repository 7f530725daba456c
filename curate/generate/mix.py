"""Mix (dedupe examples, review exclusions, per-kind ratios and caps) and the grouped, seeded train/test split.

Which examples a cap keeps is decided by a hash of (seed, example id), never by position, so adding documents
does not reshuffle every choice. The split assigns whole groups (a source document, or a template family for
source-less kinds) to one side, so no document contributes to both train and test.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from curate.errors import RecipeError
from curate.rows import doc_of, reject_envelope, short_hash

MIX_STAGE = "mix"


def _reject(example: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
    return reject_envelope(
        stage=MIX_STAGE,
        reason=reason,
        detail=detail,
        row=example,
        id=example["id"],
        doc_id=example["group"],
        source=",".join(example["source_ids"]),
    )


def load_exclude_ids(exclude: list[str] | str) -> set[str]:
    """A list of ids, or a file of ids (one per line, '#' comments) or a JSONL file of objects with ``id``."""
    if isinstance(exclude, list):
        return set(exclude)
    path = Path(exclude)
    if not path.is_file():
        raise RecipeError(f"mix.exclude_ids: file {exclude!r} does not exist; give a list of ids or an existing file")
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("{"):
            import json

            line = str(json.loads(line).get("id", ""))
        if line:
            ids.add(line)
    return ids


def _ratio_targets(counts: Counter, ratios: dict[str, float]) -> dict[str, int]:
    """Largest per-kind counts whose proportions among the ratio'd kinds match ``ratios``."""
    present = {k: r for k, r in ratios.items() if counts.get(k)}
    if not present:
        return {}
    total_ratio = sum(present.values())
    # The scarcest kind relative to its share bounds the total.
    total = min(counts[k] / (r / total_ratio) for k, r in present.items())
    return {k: min(counts[k], math.floor(total * r / total_ratio + 1e-9)) for k, r in present.items()}


def response_of(example: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in example["messages"] if m["role"] == "assistant")


def distinct_prompts(examples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Within each kind, drop every example whose prompt is a near duplicate (Jaccard >= 0.8 on word 3-grams)
    of an earlier kept one: 500 refusals must not be 500 copies of 5 sentences."""
    from curate.generate.near_dup import greedy_distinct, prompt_of

    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_kind[ex["kind"]].append(i)
    dropped: dict[int, tuple[int, float]] = {}
    for indices in by_kind.values():
        for j, (i, score) in greedy_distinct([prompt_of(examples[k]) for k in indices]).items():
            dropped[indices[j]] = (indices[i], score)
    rejects = [
        _reject(
            ex,
            "near_duplicate_prompt",
            f"prompt repeats {examples[dropped[k][0]]['id']} (Jaccard {dropped[k][1]:.2f})",
        )
        for k, ex in enumerate(examples)
        if k in dropped
    ]
    return [ex for k, ex in enumerate(examples) if k not in dropped], rejects


def mix_examples(
    examples: list[dict[str, Any]], mix, seed: int, blocklist=None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept examples in their original order, reject envelopes): exact duplicates, review exclusions,
    responses naming a blocked term, near-duplicate prompts within a kind, then ratios and caps."""
    rejects: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    first: dict[str, str] = {}
    excluded = load_exclude_ids(mix.exclude_ids)
    for ex in examples:
        blocked = blocklist.find(response_of(ex)) if blocklist else []
        if ex["id"] in first:
            rejects.append(_reject(ex, "duplicate_example", f"same messages as an earlier {first[ex['id']]} example"))
        elif ex["id"] in excluded:
            rejects.append(_reject(ex, "excluded_by_review", "listed in mix.exclude_ids"))
            first[ex["id"]] = ex["kind"]
        elif blocked:
            rejects.append(_reject(ex, "blocked_term", f"the response mentions {', '.join(map(repr, blocked))}"))
            first[ex["id"]] = ex["kind"]
        else:
            first[ex["id"]] = ex["kind"]
            kept.append(ex)
    kept, near = distinct_prompts(kept)
    rejects += near

    counts = Counter(ex["kind"] for ex in kept)
    limits = _ratio_targets(counts, mix.ratios)
    for kind, cap in mix.caps.items():
        limits[kind] = min(cap, limits.get(kind, cap))
    chosen: set[str] = set()
    for kind, limit in limits.items():
        ids = sorted((ex["id"] for ex in kept if ex["kind"] == kind), key=lambda i: short_hash(str(seed), "mix", i))
        chosen.update(ids[:limit])
    out = []
    for ex in kept:
        if ex["kind"] in limits and ex["id"] not in chosen:
            why = "mix.caps" if ex["kind"] in mix.caps and limits[ex["kind"]] == mix.caps[ex["kind"]] else "mix.ratios"
            rejects.append(_reject(ex, "over_kind_limit", f"{ex['kind']} limited to {limits[ex['kind']]} by {why}"))
        else:
            out.append(ex)
    return out, rejects


def holdout_of(example: dict[str, Any]) -> bool | None:
    """The generator's held-out flag (True: test, False: train), or None when the split decides."""
    meta = example.get("meta")
    return json.loads(meta).get("holdout") if meta else None


def split_examples(
    examples: list[dict[str, Any]], split, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """(train, test, notes, rejects). Groups a generator held out (``meta.holdout``: families and slot values
    never trained on) go to test and its other groups to train. The remaining groups are drawn in a seeded
    order: first until every kind has its minimum test examples (at most half of its groups' examples), then
    until the test fraction is reached; a document that answers a training example never goes to test. Last,
    test examples whose prompt near-duplicates a train prompt are dropped, so evaluation measures learning,
    not recall."""
    forced: dict[str, bool] = {}
    for ex in examples:
        flag = holdout_of(ex)
        if flag is not None:
            forced[ex["group"]] = forced.get(ex["group"], False) or bool(flag)
    # A document whose text answers a training example (a near-miss quotes one of its sections) is no test
    # document: its questions would be graded on an answer the model trained on.
    answers_train = {doc_of(s) for ex in examples if forced.get(ex["group"]) is False for s in ex["source_ids"]}
    free = [ex for ex in examples if ex["group"] not in forced]
    test_groups = _draw_test_groups(free, split, seed, answers_train) | {g for g, held in forced.items() if held}
    train = [ex for ex in examples if ex["group"] not in test_groups]
    test, rejects = _drop_seen_in_train(train, [ex for ex in examples if ex["group"] in test_groups])
    in_test = Counter(ex["kind"] for ex in test)
    held_kinds = {ex["kind"] for ex in examples if ex["group"] in forced}
    notes = []
    for kind in sorted({ex["kind"] for ex in examples}):
        if in_test[kind] >= split.min_test_per_kind:
            continue
        why = (
            "the generator held out only that many requests: add request templates or slot values to the policy, "
            "or raise per_category"
            if kind in held_kinds
            else "too few source groups: a test group's examples never train, and at most half of a kind is test"
        )
        short = f"{in_test[kind]} test examples, fewer than split.min_test_per_kind={split.min_test_per_kind}"
        notes.append(f"{kind}: {short}; {why}")
    return train, test, notes, rejects


def _drop_seen_in_train(train: list[dict[str, Any]], test: list[dict[str, Any]]):
    from curate.generate.near_dup import prompt_of, similar_pairs

    prompts = [prompt_of(ex) for ex in train] + [prompt_of(ex) for ex in test]
    seen: dict[int, tuple[int, float]] = {}
    for i, j, score in similar_pairs(prompts):
        if i < len(train) <= j and (j not in seen or score > seen[j][1]):
            seen[j] = (i, score)
    rejects = [
        _reject(
            ex,
            "test_prompt_seen_in_train",
            f"prompt near-duplicates train {train[seen[k][0]]['id']} (Jaccard {seen[k][1]:.2f})",
        )
        for k, ex in enumerate(test, start=len(train))
        if k in seen
    ]
    return [ex for k, ex in enumerate(test, start=len(train)) if k not in seen], rejects


def _draw_test_groups(examples: list[dict[str, Any]], split, seed: int, pinned: set[str]) -> set[str]:
    """Test groups drawn from ``examples``' groups, never one in ``pinned`` (those train)."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ex in examples:
        by_group[ex["group"]].append(ex)
    order = sorted((g for g in by_group if g not in pinned), key=lambda g: short_hash(str(seed), "split", g))
    kind_total = Counter(ex["kind"] for ex in examples)
    kind_groups: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        kind_groups[ex["kind"]].add(ex["group"])
    # A kind from a single group cannot be in both splits; otherwise keep at least half of it for training.
    wanted = {
        k: 0 if len(kind_groups[k]) < 2 else min(split.min_test_per_kind, kind_total[k] // 2) for k in kind_total
    }
    test_groups: set[str] = set()
    in_test: Counter = Counter()

    def take(group: str) -> None:
        test_groups.add(group)
        in_test.update(ex["kind"] for ex in by_group[group])

    for kind in sorted(wanted):
        # Smallest groups first: they meet this kind's minimum while pulling fewer other examples into test.
        for group in sorted(order, key=lambda g: len(by_group[g])):
            if in_test[kind] >= wanted[kind]:
                break
            kinds_here = Counter(ex["kind"] for ex in by_group[group])
            if group in test_groups or kind not in kinds_here:
                continue
            # Do not push any kind in this group past half of its examples.
            if all(in_test[k] + n <= max(wanted[k], kind_total[k] // 2) for k, n in kinds_here.items()):
                take(group)
    target = math.ceil(split.test_fraction * len(examples))
    for group in order:
        if sum(in_test.values()) >= target:
            break
        kinds_here = Counter(ex["kind"] for ex in by_group[group])
        if group not in test_groups and all(in_test[k] + n <= kind_total[k] // 2 for k, n in kinds_here.items()):
            take(group)
    return test_groups
