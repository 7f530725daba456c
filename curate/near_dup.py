"""Near-duplicate prompts, with the MinHash machinery of ``dedupe.minhash``: candidates from LSH over
signatures of word n-gram shingles of the lowercased prompt, each pair verified by exact Jaccard.

Generated prompts are short and templated, so the defaults are stricter than for documents: word 3-grams,
Jaccard >= 0.8. ``prompt_of`` is what is compared: the user turns of an example (the persona system prompt is
the same everywhere and would make every pair look alike).
"""

from __future__ import annotations

from typing import Any

import numpy as np

NGRAM = 3
THRESHOLD = 0.8
NUM_PERM = 128


def prompt_of(example: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in example["messages"] if m["role"] == "user")


def similar_pairs(texts: list[str], threshold: float = THRESHOLD, ngram: int = NGRAM) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) with i < j for every pair of ``texts`` at Jaccard >= ``threshold``."""
    from curate.stages.dedupe.minhash import bands_and_rows, batch_shingle_hashes, candidate_pairs, jaccard, signatures

    if len(texts) < 2:
        return []
    hashes = [np.unique(h) for h in batch_shingle_hashes(texts, ngram)]
    sigs = signatures(hashes, NUM_PERM, seed=1)
    # Band for a lower threshold than the verified one: LSH misses few true pairs, Jaccard removes the rest.
    bands, rows = bands_and_rows(max(threshold - 0.15, 0.05), NUM_PERM, 0.5)
    out = []
    for i, j in candidate_pairs(sigs, bands, rows).tolist():
        score = jaccard(hashes[i], hashes[j])
        if score >= threshold:
            out.append((i, j, score))
    return out


def greedy_distinct(
    texts: list[str], threshold: float = THRESHOLD, ngram: int = NGRAM
) -> dict[int, tuple[int, float]]:
    """{dropped index: (kept index it repeats, jaccard)}, keeping the first of every near-duplicate set in
    order, so that no two kept texts are near duplicates of each other."""
    neighbours: dict[int, list[tuple[int, float]]] = {}
    for i, j, score in similar_pairs(texts, threshold, ngram):
        neighbours.setdefault(j, []).append((i, score))
    dropped: dict[int, tuple[int, float]] = {}
    for j in sorted(neighbours):
        kept_before = [(i, s) for i, s in neighbours[j] if i not in dropped]
        if kept_before:
            dropped[j] = max(kept_before, key=lambda p: (p[1], -p[0]))
    return dropped
