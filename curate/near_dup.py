"""Near-duplicate prompts, with the MinHash machinery of ``dedupe.minhash``: candidates from LSH over
signatures of word n-gram shingles of the lowercased prompt, each pair verified by exact Jaccard.

Generated prompts are short and templated, so the defaults are stricter than for documents: word 3-grams,
Jaccard >= 0.8. ``prompt_of`` is what is compared: the user turns of an example (the persona system prompt is
the same everywhere and would make every pair look alike), or a grounded example's question and excerpt ids.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

NGRAM = 3
THRESHOLD = 0.8
NUM_PERM = 128


def prompt_of(example: dict[str, Any]) -> str:
    """What makes two prompts the same request. For excerpt-heavy prompts (grounded kinds) that is the question
    and which excerpts it comes with, not the whole user turn: excerpts about one section would make every
    prompt look alike."""
    meta = json.loads(example.get("meta") or "{}")
    if "question" in meta and "excerpts" in meta:
        return f"{meta['question']}\n" + " ".join(meta["excerpts"])
    return "\n".join(m["content"] for m in example["messages"] if m["role"] == "user")


def jaccard_of(a: str, b: str, ngram: int = NGRAM) -> float:
    """Jaccard similarity of two texts' word n-gram shingle sets (the same shingles as dedupe.minhash)."""
    from curate.stages.dedupe.minhash import batch_shingle_hashes, jaccard

    left, right = (np.unique(h) for h in batch_shingle_hashes([a, b], ngram))
    return jaccard(left, right)


def similar_pairs(texts: list[str], threshold: float = THRESHOLD, ngram: int = NGRAM) -> list[tuple[int, int, float]]:
    """(i, j, jaccard) with i < j for every pair of ``texts`` at Jaccard >= ``threshold``."""
    from curate.stages.dedupe.minhash import bands_and_rows, batch_shingle_hashes, candidate_pairs, jaccard, signatures

    if len(texts) < 2:
        return []
    hashes = [np.unique(h) for h in batch_shingle_hashes(texts, ngram)]
    sigs = signatures(hashes, NUM_PERM, seed=1)
    # Band for a much lower threshold than the verified one, and verify every candidate by exact Jaccard. Prompts
    # are short (about 10 shingles), so their signatures are noisy: banded for threshold - 0.15, LSH missed 17 of
    # 300 pairs at Jaccard 0.82 (tests/test_mix.py); banded for threshold - 0.3, none. Candidates stay few.
    bands, rows = bands_and_rows(max(threshold - 0.3, 0.05), NUM_PERM, 0.5)
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
