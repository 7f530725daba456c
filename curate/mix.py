"""Mix: duplicate examples, review exclusions, blocked terms in responses, near-duplicate prompts within a
kind, then per-kind ratios and caps. Every dropped example is a reject envelope with its reason.

Which examples a cap keeps is decided by a hash of (seed, example id), never by position, so adding documents
does not reshuffle every choice.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from curate.errors import RecipeError
from curate.rows import reject_envelope, short_hash

MIX_STAGE = "mix"


def example_reject(example: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
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
    from curate.near_dup import greedy_distinct, prompt_of

    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_kind[ex["kind"]].append(i)
    dropped: dict[int, tuple[int, float]] = {}
    for indices in by_kind.values():
        for j, (i, score) in greedy_distinct([prompt_of(examples[k]) for k in indices]).items():
            dropped[indices[j]] = (indices[i], score)
    rejects = [
        example_reject(
            ex,
            "near_duplicate_prompt",
            f"prompt repeats {examples[dropped[k][0]]['id']} (Jaccard {dropped[k][1]:.2f})",
        )
        for k, ex in enumerate(examples)
        if k in dropped
    ]
    return [ex for k, ex in enumerate(examples) if k not in dropped], rejects


def _held_for_test(example: dict[str, Any]) -> bool:
    return bool(json.loads(example.get("meta") or "{}").get("holdout"))


def mix_examples(
    examples: list[dict[str, Any]], mix, seed: int, blocklist=None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept examples in their original order, reject envelopes): exact duplicates, review exclusions,
    responses naming a blocked term, near-duplicate prompts within a kind, then ratios and caps on the examples
    that may train (a generator's held-out test examples are never capped)."""
    rejects: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    first: dict[str, str] = {}
    excluded = load_exclude_ids(mix.exclude_ids)
    for ex in examples:
        blocked = blocklist.find(response_of(ex)) if blocklist else []
        if ex["id"] in first:
            rejects.append(
                example_reject(ex, "duplicate_example", f"same messages as an earlier {first[ex['id']]} example")
            )
        elif ex["id"] in excluded:
            rejects.append(example_reject(ex, "excluded_by_review", "listed in mix.exclude_ids"))
            first[ex["id"]] = ex["kind"]
        elif blocked:
            rejects.append(
                example_reject(ex, "blocked_term", f"the response mentions {', '.join(map(repr, blocked))}")
            )
            first[ex["id"]] = ex["kind"]
        else:
            first[ex["id"]] = ex["kind"]
            kept.append(ex)
    kept, near = distinct_prompts(kept)
    rejects += near

    # Ratios and caps shape what trains: examples their generator held out for test are never limited.
    limited = [ex for ex in kept if not _held_for_test(ex)]
    counts = Counter(ex["kind"] for ex in limited)
    limits = _ratio_targets(counts, mix.ratios)
    for kind, cap in mix.caps.items():
        limits[kind] = min(cap, limits.get(kind, cap))
    chosen: set[str] = set()
    for kind, limit in limits.items():
        ids = sorted((ex["id"] for ex in limited if ex["kind"] == kind), key=lambda i: short_hash(str(seed), "mix", i))
        chosen.update(ids[:limit])
    out = []
    for ex in kept:
        if ex["kind"] in limits and ex["id"] not in chosen and not _held_for_test(ex):
            why = "mix.caps" if ex["kind"] in mix.caps and limits[ex["kind"]] == mix.caps[ex["kind"]] else "mix.ratios"
            rejects.append(
                example_reject(ex, "over_kind_limit", f"{ex['kind']} limited to {limits[ex['kind']]} by {why}")
            )
        else:
            out.append(ex)
    return out, rejects
