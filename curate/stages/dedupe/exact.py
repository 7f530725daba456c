"""dedupe.exact: drop rows whose text hashes equal an earlier row's (near duplicates: minhash.py).

A global stage: the batch phase hashes each row, the decide phase sees all hashes in ``ordinal`` order and
keeps the first row of each hash, so the kept row never depends on batching or arrival order.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict, Field

from curate.rows import doc_of
from curate.stages.registry import Batch, register


class ExactDedupeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lowercase: bool = Field(False, description="Compare texts case-insensitively.")
    ignore_whitespace: bool = Field(True, description="Compare texts with all whitespace runs as one space.")
    boilerplate_min_docs: int | None = Field(
        None,
        ge=2,
        description="A text found in at least this many documents is boilerplate (a footer, a disclaimer): "
        "every copy is dropped. Null: keep the first copy as usual.",
    )


def _decide_exact(columns: Batch, config: ExactDedupeConfig, context=None) -> list[tuple[str, str] | None]:
    ids, ordinals, hashes = (columns[c].to_pylist() for c in ("id", "ordinal", "_exact_hash"))
    kept: dict[str, str] = {}
    decisions: list[tuple[str, str] | None] = [None] * len(ids)
    docs_per_hash: dict[str, set[str]] = {}
    if config.boilerplate_min_docs:
        for row_id, digest in zip(ids, hashes, strict=True):
            docs_per_hash.setdefault(digest, set()).add(doc_of(row_id))
    for i in sorted(range(len(decisions)), key=lambda i: (ordinals[i], i)):
        digest = hashes[i]
        n_docs = len(docs_per_hash.get(digest, ()))
        if config.boilerplate_min_docs and n_docs >= config.boilerplate_min_docs:
            decisions[i] = (
                "boilerplate",
                f"the same text is in {n_docs} documents (boilerplate_min_docs={config.boilerplate_min_docs})",
            )
        elif digest in kept:
            decisions[i] = (
                f"exact_duplicate_of:{kept[digest]}",
                f"same text as {kept[digest]} (sha256 {digest[:12]})",
            )
        else:
            kept[digest] = ids[i]
    return decisions


@register("dedupe.exact", version=1, config=ExactDedupeConfig, decide=_decide_exact)
def exact_hashes(batch: Batch, config: ExactDedupeConfig) -> Batch:
    """Drop exact duplicates of an earlier row (by ordinal), compared on a hash of the text."""
    hashes = []
    for text in batch["text"]:
        key = " ".join(text.split()) if config.ignore_whitespace else text
        key = key.lower() if config.lowercase else key
        hashes.append(hashlib.sha256(key.encode("utf-8")).hexdigest())
    return {"_exact_hash": hashes}
