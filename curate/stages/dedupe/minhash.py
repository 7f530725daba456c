"""dedupe.minhash: near-duplicate documents by MinHash LSH, verified by exact Jaccard before anything drops.

Shingles (fixed, so results compare across tools): ``text.lower()``, tokens ``re.findall(r"\\w+")``, word
n-grams joined by a space (a text shorter than n words is one shingle). Each shingle is hashed by
``shingle_hash``: a polynomial over each token's code points, then a rolling polynomial over the tokens, both
mod 2^32, so a document hashes in a few numpy calls with no Python object per token or shingle.
``shingle_hash(shingle.encode())`` gives the same value, so ``datasketch.MinHash(num_perm, seed,
hashfunc=shingle_hash)`` fed the same shingles holds exactly our hash values (tests/test_minhash.py checks it
bit for bit): sketches stay interchangeable with datasketch's tools.
The permutations are datasketch 2.x's default ``affine32`` scheme (MurmurHash3 fmix32, then ``a*h + b`` mod
2^32), which is why ``datasketch`` is pinned to major version 2.

Banding: datasketch's optimal parameters with equal weights centres the S-curve above the threshold and misses
many pairs just over it, so the bands are tuned for ``lsh_threshold`` (default: threshold - 0.1) with missed
pairs weighted 0.9 against extra candidates: for 128 permutations at 0.8 that is 20 bands of 6 rows, which
makes a pair at Jaccard 0.8 a candidate with probability 0.998 (equal weights at 0.8: 0.87). The bands are
the ones datasketch's ``MinHashLSH`` picks for the same threshold, permutations and weights (a test checks it
over a grid), computed here with exact Gauss-Legendre quadrature in numpy rather than by importing datasketch
and scipy (a second per run). Every candidate pair (unless its signatures agree more than 4 standard errors
below the threshold) is then verified with the exact Jaccard of the two documents' shingle sets, kept from
the hashing pass as a scratch column (sorted unique hashes), so no text is read or hashed twice. Verified
pairs are joined by union-find; each cluster keeps one row (first by ordinal, or the longest), and every other
row is dropped as ``near_duplicate_of:<kept id>`` with its Jaccard to the kept row in ``detail``.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.stages.registry import Batch, register

_WORD = re.compile(r"\w+")
_TOKEN_P = np.uint32(0x9E3779B1)  # odd multipliers (golden ratio, FNV prime): invertible mod 2^32
_TOKEN_P_INV = np.uint32(pow(0x9E3779B1, -1, 1 << 32))
_SHINGLE_R = np.uint32(0x01000193)
_FMIX = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))
_SUBCHUNK = 1 << 14  # shingles per permutation matrix: 16k x 128 x 4 bytes = 8 MiB, cache-friendly


class MinHashConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(0.8, gt=0.0, le=1.0, description="Jaccard at or above which rows are near duplicates.")
    ngram: int = Field(5, ge=1, description="Words per shingle.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations.")
    seed: int = Field(1, description="Seed of the permutations (datasketch's MinHash seed).")
    lsh_threshold: float | None = Field(
        None, gt=0.0, le=1.0, description="Threshold the LSH bands are tuned for; default threshold - 0.1."
    )
    false_negative_weight: float = Field(
        0.9, gt=0.0, lt=1.0, description="Weight of missed pairs against extra candidates when choosing bands."
    )
    keep: Literal["first", "longest"] = Field(
        "first", description="Which row of a cluster survives: the first by ordinal, or the longest (ties: first)."
    )

    @model_validator(mode="after")
    def _lsh_not_above(self) -> MinHashConfig:
        if self.lsh_threshold is not None and self.lsh_threshold > self.threshold:
            raise ValueError(f"lsh_threshold ({self.lsh_threshold}) must not exceed threshold ({self.threshold})")
        return self

    @property
    def banding_threshold(self) -> float:
        return self.lsh_threshold if self.lsh_threshold is not None else max(self.threshold - 0.1, 0.05)


# What ``\\w`` matches among ASCII code points (isalnum() or '_').
_ASCII_WORD = np.array([chr(c).isalnum() or c == 95 for c in range(128)], dtype=bool)


@functools.lru_cache(maxsize=4)
def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P^k and P^-k mod 2^32 for k < n (uint32 arithmetic wraps, P is odd so it has an inverse)."""
    forward = np.cumprod(np.full(n, _TOKEN_P, dtype=np.uint32), dtype=np.uint32)
    inverse = np.cumprod(np.full(n, _TOKEN_P_INV, dtype=np.uint32), dtype=np.uint32)
    one = np.ones(1, dtype=np.uint32)
    return np.concatenate((one, forward[:-1])), np.concatenate((one, inverse[:-1]))


def _roll(token_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every n-gram of token hashes: h = sum(t[i+j] * R^(n-1-j)) mod 2^32; fewer than n tokens: one."""
    if len(token_hashes) == 0:
        return token_hashes
    n = min(n, len(token_hashes))
    count = len(token_hashes) - n + 1
    h = np.zeros(count, dtype=np.uint32)
    for j in range(n):
        h = h * _SHINGLE_R + token_hashes[j : j + count]
    return h


def batch_shingle_hashes(texts: list[str], ngram: int) -> list[np.ndarray]:
    """uint32 hashes of each text's shingles (one per n-gram position; duplicates kept), for a whole batch in
    a few numpy calls. Token hash: sum(cp_k * P^(len-1-k)) mod 2^32 over the token's code points, from prefix
    sums; shingle hash: the rolling polynomial of its token hashes (``_roll``). ASCII texts and the others
    are hashed in two groups, since ASCII has a much cheaper path."""
    texts = [t.replace("\x00", " ") if "\x00" in t else t for t in texts]  # NUL separates documents below
    ascii_idx = [i for i, t in enumerate(texts) if t.isascii()]
    if len(ascii_idx) in (0, len(texts)):
        return _hash_group(texts, ngram)
    other_idx = [i for i, t in enumerate(texts) if not t.isascii()]
    out: list[np.ndarray] = [np.empty(0, dtype=np.uint32)] * len(texts)
    for idx in (ascii_idx, other_idx):
        for i, hashes in zip(idx, _hash_group([texts[i] for i in idx], ngram), strict=True):
            out[i] = hashes
    return out


def _hash_group(texts: list[str], ngram: int) -> list[np.ndarray]:
    # NUL is no word character, so no token crosses documents; str.lower is the same joined or apart.
    joined = "\x00".join(texts)
    if joined.isascii():  # the common case, cheaper: lower-case bytes and a 128-entry table
        cps = np.frombuffer(joined.encode("ascii").lower(), dtype=np.uint8)
        word = _ASCII_WORD[cps]
        cps = cps.astype(np.uint32)
    else:  # \w for each distinct code point of the group only (a whole-Unicode table costs more than a batch)
        cps = np.frombuffer(joined.lower().encode("utf-32-le"), dtype=np.uint32)
        distinct, where = np.unique(cps, return_inverse=True)
        word = np.fromiter((chr(c).isalnum() or c == 95 for c in distinct.tolist()), dtype=bool, count=len(distinct))
        word = word[where.reshape(-1)]
    empty = np.empty(0, dtype=np.uint32)
    if len(cps) == 0:
        return [empty for _ in texts]
    doc_starts = np.concatenate(([0], np.flatnonzero(cps == 0) + 1))
    edges = np.diff(np.concatenate(([False], word, [False])).astype(np.int8))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    forward, inverse = _powers(1 << max(len(cps).bit_length(), 10))  # cached by power-of-two sizes
    prefix = np.concatenate(([0], np.cumsum(cps * inverse[: len(cps)], dtype=np.uint32))).astype(np.uint32)
    tokens = forward[ends - 1] * (prefix[ends] - prefix[starts])
    per_doc = np.bincount(np.searchsorted(doc_starts, starts, side="right") - 1, minlength=len(texts))
    offsets = np.concatenate(([0], np.cumsum(per_doc)))
    rolled = _roll(tokens, ngram) if len(tokens) >= ngram else empty
    out = []
    for d in range(len(texts)):
        lo, hi = int(offsets[d]), int(offsets[d + 1])
        if hi - lo >= ngram:
            out.append(rolled[lo : hi - ngram + 1])
        else:  # fewer words than a shingle: the whole text is one shingle
            out.append(_roll(tokens[lo:hi], ngram))
    return out


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """uint32 hashes of one text's shingles (see batch_shingle_hashes)."""
    return batch_shingle_hashes([text], ngram)[0]


def shingle_hash(shingle: bytes) -> int:
    """The hash of one shingle (its words joined by spaces): use as datasketch's ``hashfunc``."""
    hashes = []
    for token in shingle.decode("utf-8").split(" "):
        h = 0
        for ch in token:
            h = (h * int(_TOKEN_P) + ord(ch)) & 0xFFFFFFFF
        hashes.append(h)
    return int(_roll(np.array(hashes, dtype=np.uint32), len(hashes))[0])


def shingles(text: str, ngram: int) -> list[str]:
    """The shingles as strings, for datasketch and for people; the stage itself never builds them."""
    tokens = _WORD.findall(text.lower())
    n = min(ngram, len(tokens))
    return [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)] if tokens else []


def _fmix32(h: np.ndarray) -> np.ndarray:
    s1, m1, s2, m2, s3 = _FMIX
    h = h ^ (h >> s1)
    h = h * m1
    h = h ^ (h >> s2)
    h = h * m2
    return h ^ (h >> s3)


@functools.lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) exactly as datasketch 2.x's affine32 scheme draws them."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def signatures(hash_arrays: list[np.ndarray], num_perm: int, seed: int) -> np.ndarray:
    """(documents x num_perm) uint32 MinHash signatures; an empty document gets the all-max signature."""
    a, b = permutations(num_perm, seed)
    out = np.full((len(hash_arrays), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    lengths = np.array([len(h) for h in hash_arrays], dtype=np.int64)
    nonempty = np.flatnonzero(lengths)
    start = 0
    while start < len(nonempty):  # groups of documents whose shingles fit one permutation matrix
        stop, total = start, 0
        while stop < len(nonempty) and (stop == start or total + lengths[nonempty[stop]] <= _SUBCHUNK):
            total += lengths[nonempty[stop]]
            stop += 1
        docs = nonempty[start:stop]
        hv = _fmix32(np.concatenate([hash_arrays[d] for d in docs]))
        # Permutation-major layout: the min over each document's shingles runs along contiguous memory,
        # about 14x faster than shingle-major. uint32 arithmetic wraps: a*h + b mod 2^32, as datasketch.
        permuted = np.multiply.outer(a, hv)
        permuted += b[:, None]
        offsets = np.concatenate(([0], np.cumsum(lengths[docs])[:-1]))
        out[docs] = np.minimum.reduceat(permuted, offsets, axis=1).T
        start = stop
    return out


@functools.lru_cache(maxsize=32)
def bands_and_rows(threshold: float, num_perm: int, false_negative_weight: float) -> tuple[int, int]:
    """(bands, rows) as datasketch's ``MinHashLSH(threshold, num_perm, weights=(1 - w, w))`` chooses them: the
    pair minimising the weighted areas under the S-curve 1 - (1 - s^r)^b below the threshold (false positives)
    and above it (false negatives), over every b, r with b * r <= num_perm, the first minimum in (b, r) order.
    The curve is a polynomial of degree b * r, so Gauss-Legendre quadrature with num_perm / 2 + 1 nodes
    integrates it exactly."""
    pairs = np.array([(b, r) for b in range(1, num_perm + 1) for r in range(1, num_perm // b + 1)], dtype=np.float64)
    nodes, weights = np.polynomial.legendre.leggauss(num_perm // 2 + 1)

    def area(lo: float, hi: float, missed: bool) -> np.ndarray:
        s = (hi - lo) / 2 * nodes + (hi + lo) / 2  # the nodes mapped onto [lo, hi]
        candidate = 1.0 - (1.0 - s[None, :] ** pairs[:, 1:2]) ** pairs[:, 0:1]  # P(candidate) at similarity s
        return ((1.0 - candidate) if missed else candidate) @ weights * (hi - lo) / 2

    weight = false_negative_weight
    error = area(0.0, threshold, False) * (1.0 - weight) + area(threshold, 1.0, True) * weight
    b, r = pairs[int(np.argmin(error))]
    return int(b), int(r)


def candidate_pairs(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Index pairs (i < j) that share a bucket in at least one band; buckets are grouped by sorting keys, and
    all buckets of one size are expanded to pairs together."""
    pairs: list[np.ndarray] = []
    n = len(sigs)
    mult = np.uint64(0x9E3779B97F4A7C15)
    for band in range(bands):
        part = sigs[:, band * rows : (band + 1) * rows].astype(np.uint64)
        key = np.zeros(n, dtype=np.uint64)
        for col in range(rows):
            key = (key ^ part[:, col]) * mult  # wraps mod 2^64
        order = np.argsort(key, kind="stable")
        sorted_keys = key[order]
        starts = np.flatnonzero(np.concatenate(([True], sorted_keys[1:] != sorted_keys[:-1])))
        sizes = np.diff(np.concatenate((starts, [n])))
        for size in np.unique(sizes[sizes > 1]):
            firsts = starts[sizes == size]
            members = order[firsts[:, None] + np.arange(size)[None, :]]  # (buckets x size)
            if size <= 64:
                i, j = np.triu_indices(size, k=1)
                pairs.append(np.stack([members[:, i].ravel(), members[:, j].ravel()], axis=1))
            else:  # big buckets (copies, templates): neighbours and the first are enough to connect them
                members = np.sort(members, axis=1)
                pairs.append(np.stack([members[:, :-1].ravel(), members[:, 1:].ravel()], axis=1))
                pairs.append(np.stack([np.repeat(members[:, 0], size - 1), members[:, 1:].ravel()], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    pairs_arr = np.sort(np.concatenate(pairs).astype(np.int64), axis=1)
    return np.unique(pairs_arr, axis=0)


def _unique_each(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """np.unique of each array, with one sort for all of them: keys are (array index << 32) | value."""
    if not arrays:
        return []
    lengths = np.array([len(a) for a in arrays])
    keys = np.concatenate(arrays).astype(np.uint64) | (
        np.repeat(np.arange(len(arrays), dtype=np.uint64), lengths) << np.uint64(32)
    )
    keys.sort()  # sort-based unique: numpy's hash-based np.unique is several times slower on uint64 keys
    keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))] if len(keys) else keys
    bounds = np.searchsorted(keys >> np.uint64(32), np.arange(len(arrays) + 1, dtype=np.uint64))
    values = (keys & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    return [values[bounds[i] : bounds[i + 1]] for i in range(len(arrays))]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard of two sorted arrays of unique values (a binary search of each of ``a`` in ``b``)."""
    if len(a) == 0 or len(b) == 0:
        return 1.0 if len(a) == len(b) else 0.0
    where = np.searchsorted(b, a)
    where[where == len(b)] = 0
    inter = int(np.count_nonzero(b[where] == a))
    return inter / (len(a) + len(b) - inter)


class _UnionFind:
    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, x: int) -> int:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, x: int, y: int) -> None:
        rx, ry = self.find(x), self.find(y)
        if rx != ry:
            self.parent[max(rx, ry)] = min(rx, ry)


def _binary_matrix(column, width: int) -> np.ndarray:
    """(rows x width) uint32 view of a binary column whose values are all width*4 bytes, without Python bytes."""
    import pyarrow as pa

    parts = []
    for chunk in column.chunks:
        if len(chunk) == 0:
            continue
        offset_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]]
        parts.append(data.view(np.uint32).reshape(len(chunk), width))
    return np.concatenate(parts) if parts else np.empty((0, width), dtype=np.uint32)


def _binary_rows(column, indices: np.ndarray) -> dict[int, np.ndarray]:
    """{index: the row's bytes as uint32} of a binary column, for ``indices`` only: views into the column's own
    (memory-mapped) buffers, so only the pages of those rows are read, and nothing is copied."""
    import pyarrow as pa

    chunks = [c for c in column.chunks if len(c)]
    starts = np.cumsum([0] + [len(c) for c in chunks])
    views = []
    for chunk in chunks:
        offset_type = np.int64 if pa.types.is_large_binary(chunk.type) else np.int32
        offsets = np.frombuffer(chunk.buffers()[1], dtype=offset_type)[chunk.offset : chunk.offset + len(chunk) + 1]
        buffer = chunk.buffers()[2]
        views.append((offsets, np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.empty(0, np.uint8)))
    out = {}
    for i, k in zip(indices.tolist(), (np.searchsorted(starts, indices, side="right") - 1).tolist(), strict=True):
        offsets, data = views[k]
        local = i - int(starts[k])
        out[i] = data[offsets[local] : offsets[local + 1]].view(np.uint32)
    return out


def _decide_minhash(columns: Batch, config: MinHashConfig, context) -> list[tuple[str, str] | None]:
    n = len(columns["id"])
    decisions: list[tuple[str, str] | None] = [None] * n
    if n < 2:
        return decisions
    sigs = _binary_matrix(columns["_minhash"], config.num_perm)
    nonempty = columns["_shingles"].to_numpy() > 0
    bands, rows = bands_and_rows(config.banding_threshold, config.num_perm, config.false_negative_weight)
    pairs = context.executor.candidate_pairs(sigs, bands, rows)  # band keys grouped on the driver or in Ray tasks
    pairs = pairs[nonempty[pairs[:, 0]] & nonempty[pairs[:, 1]]]
    # Skip pairs whose signatures agree more than 4 standard errors below the threshold: they cannot
    # plausibly reach it, and nothing is dropped without the exact check below anyway.
    t = config.threshold
    floor = t - 4 * math.sqrt(t * (1 - t) / config.num_perm)
    keep = np.zeros(len(pairs), dtype=bool)
    for lo in range(0, len(pairs), 65536):  # in slices: two (pairs x num_perm) arrays at once would be large
        part = pairs[lo : lo + 65536]
        keep[lo : lo + 65536] = (sigs[part[:, 0]] == sigs[part[:, 1]]).mean(axis=1) >= floor
    pairs = pairs[keep]
    if len(pairs) == 0:
        return decisions
    sets = _binary_rows(columns["_shingle_set"], np.unique(pairs))  # of the candidate rows only
    uf = _UnionFind(n)
    for i, j in pairs:
        if uf.find(i) != uf.find(j) and jaccard(sets[int(i)], sets[int(j)]) >= config.threshold:
            uf.union(int(i), int(j))
    clusters: dict[int, list[int]] = {}
    for i in sets:
        clusters.setdefault(uf.find(i), []).append(i)
    ordinals = columns["ordinal"].to_numpy()
    lengths = columns["_length"].to_numpy()
    for members in clusters.values():
        if len(members) < 2:
            continue
        if config.keep == "longest":
            kept = min(members, key=lambda m: (-lengths[m], ordinals[m], m))
        else:
            kept = min(members, key=lambda m: (ordinals[m], m))
        kept_id = columns["id"][kept].as_py()
        for m in members:
            if m != kept:
                j = jaccard(sets[m], sets[kept])
                decisions[m] = (f"near_duplicate_of:{kept_id}", f"jaccard {j:.3f} with {kept_id}")
    return decisions


@register("dedupe.minhash", version=2, config=MinHashConfig, decide=_decide_minhash)
def minhash_signatures(batch: Batch, config: MinHashConfig) -> Batch:
    """Drop near duplicates (MinHash LSH, verified by exact Jaccard), keeping one row per cluster."""
    sets = _unique_each(batch_shingle_hashes(batch["text"], config.ngram))  # the minimum of a set is the same
    sigs = signatures(sets, config.num_perm, config.seed)
    return {
        "_minhash": [row.tobytes() for row in sigs],
        "_shingle_set": [s.tobytes() for s in sets],
        "_shingles": [len(s) for s in sets],
        "_length": [len(t) for t in batch["text"]],
    }
