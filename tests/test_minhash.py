"""dedupe.minhash: bit-equality with datasketch, the threshold, clusters, the keep rule, idempotence."""

from __future__ import annotations

import random

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from curate.executors.memory import run_stage_in_memory
from curate.rows import REJECT_DETAIL, REJECT_REASON, new_document
from curate.stages import get_stage
from curate.stages.dedupe.minhash import (
    batch_shingle_hashes,
    jaccard,
    shingle_hash,
    shingle_hashes,
    shingles,
    signatures,
)
from tests.conftest import REPO

VOCAB = [f"w{i}" for i in range(5000)]


def base_doc(rng: random.Random, words: int = 400) -> list[str]:
    return rng.sample(VOCAB, words)


def edited(words: list[str], rng: random.Random, edits: int) -> list[str]:
    out = list(words)
    for pos in rng.sample(range(len(out)), edits):
        out[pos] = f"x{rng.randrange(10**9)}"
    return out


def exact_jaccard(a: str, b: str) -> float:
    return jaccard(np.unique(shingle_hashes(a, 5)), np.unique(shingle_hashes(b, 5)))


def rows(*texts: str) -> list[dict]:
    return [
        new_document(doc_id=f"d{i}", ordinal=i, text=t, source="s", title="", meta={}) for i, t in enumerate(texts)
    ]


def dedupe(texts, **config):
    stage = get_stage("dedupe.minhash")
    return run_stage_in_memory(stage, stage.config(**config), rows(*texts), batch_size=7)


def test_signatures_are_bit_equal_to_datasketch():
    texts = [p.read_text(encoding="utf-8") for p in sorted((REPO / "sample_data" / "docs").glob("*.md"))]
    texts += ["Ünïcode ﬁne İstanbul straße 東京 ١٢٣ don't_stop — café", "two words", ""]
    for num_perm, seed in ((128, 1), (64, 42)):
        ours = signatures([shingle_hashes(t, 5) for t in texts], num_perm, seed)
        for text, sig in zip(texts, ours, strict=True):
            reference = MinHash(num_perm=num_perm, seed=seed, hashfunc=shingle_hash)
            reference.update_batch([s.encode() for s in shingles(text, 5)])
            assert reference.scheme == "affine32"
            assert np.array_equal(reference.hashvalues, sig)


def test_sketches_work_in_datasketch_lsh():
    rng = random.Random(3)
    a = " ".join(base_doc(rng))
    b = " ".join(edited(a.split(), rng, 4))
    sigs = signatures([shingle_hashes(t, 5) for t in (a, b)], 128, 1)
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    for name, sig in zip("ab", sigs, strict=True):
        lsh.insert(name, MinHash(num_perm=128, seed=1, hashvalues=sig, scheme="affine32"))
    assert set(lsh.query(MinHash(num_perm=128, seed=1, hashvalues=sigs[0], scheme="affine32"))) == {"a", "b"}


def pair_with_jaccard(rng: random.Random, lo: float, hi: float) -> tuple[str, str, float]:
    """A fresh document and an edited copy whose exact Jaccard lies in [lo, hi)."""
    while True:
        words = base_doc(rng)
        for edits in range(3, 15):
            other = " ".join(edited(words, rng, edits))
            j = exact_jaccard(" ".join(words), other)
            if lo <= j < hi:
                return " ".join(words), other, j


def test_pairs_just_above_and_below_the_threshold():
    rng = random.Random(7)
    above = pair_with_jaccard(rng, 0.80, 0.84)
    below = pair_with_jaccard(rng, 0.76, 0.80)
    kept, dropped = dedupe([above[0], above[1], below[0], below[1]])
    assert [r["id"] for r in dropped] == ["d1#0"], (above[2], below[2])
    assert dropped[0][REJECT_REASON] == "near_duplicate_of:d0#0"
    assert dropped[0][REJECT_DETAIL] == f"jaccard {above[2]:.3f} with d0#0"
    assert [r["id"] for r in kept] == ["d0#0", "d2#0", "d3#0"]


def test_clusters_of_three_point_at_the_kept_row_not_a_chain():
    rng = random.Random(11)
    words = base_doc(rng)
    first = edited(words, rng, 2)
    second = edited(first, rng, 2)
    third = edited(second, rng, 2)
    texts = [" ".join(second), " ".join(words), "unrelated " * 50, " ".join(third), " ".join(first)]
    kept, dropped = dedupe(texts)
    assert [r["id"] for r in kept] == ["d0#0", "d2#0"]
    assert {r["id"]: r[REJECT_REASON] for r in dropped} == {
        "d1#0": "near_duplicate_of:d0#0",
        "d3#0": "near_duplicate_of:d0#0",
        "d4#0": "near_duplicate_of:d0#0",
    }


def test_keep_longest_and_idempotence():
    rng = random.Random(5)
    words = base_doc(rng)
    longer = [*words, "extra", "closing", "words"]
    kept, dropped = dedupe([" ".join(words), " ".join(longer)], keep="longest")
    assert [r["id"] for r in kept] == ["d1#0"] and dropped[0][REJECT_REASON] == "near_duplicate_of:d1#0"
    stage = get_stage("dedupe.minhash")
    again, none = run_stage_in_memory(stage, stage.config(), kept)
    assert again == kept and none == []


def test_big_buckets_of_copies_all_go_to_the_first():
    template = "Hello, my order was supposed to arrive three days ago and tracking has not moved. " * 5
    texts = [template + f"Order {i}." for i in range(150)]
    kept, dropped = dedupe(texts)
    assert [r["id"] for r in kept] == ["d0#0"]
    assert {r[REJECT_REASON] for r in dropped} == {"near_duplicate_of:d0#0"} and len(dropped) == 149


def test_empty_and_short_texts_are_never_duplicates_of_each_other():
    kept, dropped = dedupe(["", "", "...", "one two", "three four"])
    assert dropped == [] and len(kept) == 5


def test_config_checks():
    with pytest.raises(ValueError, match="must not exceed threshold"):
        get_stage("dedupe.minhash").config(threshold=0.7, lsh_threshold=0.9)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=80) | st.sampled_from(["ascii only text here", "Ünï ﬁne", "a\x00b c", ""]), max_size=8)
)
def test_batch_hashing_equals_one_by_one_and_counts_shingles(texts):
    batch = batch_shingle_hashes(texts, 3)
    for text, hashes in zip(texts, batch, strict=True):
        assert np.array_equal(hashes, shingle_hashes(text, 3))
        assert len(hashes) == len(shingles(text.replace("\x00", " "), 3))
        assert [shingle_hash(s.encode()) for s in shingles(text.replace("\x00", " "), 3)] == hashes.tolist()


@pytest.mark.parametrize("num_perm", [32, 128, 256])
def test_bands_are_the_ones_datasketch_lsh_picks(num_perm):
    from curate.stages.dedupe.minhash import bands_and_rows

    for threshold in (0.5, 0.7, 0.8, 0.9):
        for weight in (0.5, 0.9):
            lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(1 - weight, weight))
            assert bands_and_rows(threshold, num_perm, weight) == (lsh.b, lsh.r), (threshold, weight)


def test_default_bands_catch_pairs_at_the_threshold():
    from curate.stages.dedupe.minhash import MinHashConfig, bands_and_rows

    config = MinHashConfig()
    bands, rows = bands_and_rows(config.banding_threshold, config.num_perm, config.false_negative_weight)
    assert (bands, rows) == (20, 6) and bands * rows <= config.num_perm
    candidate = 1 - (1 - config.threshold**rows) ** bands  # a pair exactly at the threshold
    assert candidate > 0.99
    equal = bands_and_rows(config.threshold, config.num_perm, 0.5)
    assert 1 - (1 - config.threshold ** equal[1]) ** equal[0] < candidate  # why the bands are tuned lower


def test_jaccard_of_sorted_sets():
    from curate.stages.dedupe.minhash import jaccard

    rng = np.random.default_rng(0)
    for _ in range(200):
        a = np.unique(rng.integers(0, 60, rng.integers(0, 30))).astype(np.uint32)
        b = np.unique(rng.integers(0, 60, rng.integers(0, 30))).astype(np.uint32)
        union = len(set(a) | set(b))
        expected = len(set(a) & set(b)) / union if union else 1.0
        assert jaccard(a, b) == pytest.approx(expected)
