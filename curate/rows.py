"""Column names and shapes of the two row types (document rows, example rows) and of reject envelopes.

docs/architecture.md ("Row contracts") describes them; this module is the one place the code spells them out.
``meta``, ``signals`` and ``labels`` are JSON strings so every executor and file format carries them unchanged.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

# Document rows.
DOC_COLUMNS = ("id", "doc_id", "ordinal", "text", "source", "title", "section", "meta", "signals", "labels")
# Example rows, in TRL's conversational format.
EXAMPLE_COLUMNS = ("id", "messages", "kind", "source_ids", "group", "template", "generator", "meta")
# A stage marks a row for dropping by filling these two columns; the pipeline moves the row to rejects/.
REJECT_REASON = "_reject_reason"
REJECT_DETAIL = "_reject_detail"
# Reject envelopes kept for audit, not drops: the original of an example a reviewer edited (it trains as edited).
EDITED_BY_REVIEW = "edited_by_review"
AUDIT_REASONS = (EDITED_BY_REVIEW,)
# Columns whose name starts with this prefix are a stage's scratch space and never reach a checkpoint.
SCRATCH_PREFIX = "_"

_SLUG_RE = re.compile(r"[^a-z0-9]+")


def dumps(value: Any) -> str:
    """Canonical JSON: the same value always gives the same bytes (sorted keys, no ASCII escaping)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def loads_obj(text: str) -> dict[str, Any]:
    return json.loads(text) if text else {}


def short_hash(*parts: str, length: int = 16) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:length]


def slug(text: str, max_len: int = 40) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-")[:max_len].strip("-") or "doc"


def make_doc_id(source: str, record_index: int) -> str:
    """A readable, stable doc id for inputs without an id field: the file's slug and a hash of path + index."""
    stem = source.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{slug(stem)}-{short_hash(source, str(record_index), length=8)}"


def row_id(doc_id: str, chunk_index: int = 0) -> str:
    return f"{doc_id}#{chunk_index}"


def doc_of(row_id_: str) -> str:
    """The document id of a row id (the inverse of ``row_id``)."""
    return row_id_.rsplit("#", 1)[0]


def new_document(
    *, doc_id: str, ordinal: int, text: str, source: str, title: str, meta: dict[str, Any], section: str = ""
) -> dict[str, Any]:
    return {
        "id": row_id(doc_id, 0),
        "doc_id": doc_id,
        "ordinal": ordinal,
        "text": text,
        "source": source,
        "title": title,
        "section": section,
        "meta": dumps(meta),
        "signals": dumps({}),
        "labels": dumps({}),
    }


def example_id(messages: list[dict[str, str]]) -> str:
    return short_hash(dumps(messages))


def reject_envelope(
    *,
    stage: str,
    reason: str,
    detail: str,
    row: dict[str, Any] | None,
    id: str = "",
    doc_id: str = "",
    source: str = "",
) -> dict[str, Any]:
    """One dropped thing: ``{id, doc_id, source, stage, reason, detail, row}`` with ``row`` as JSON (or null)."""
    return {
        "id": id or (row or {}).get("id", ""),
        "doc_id": doc_id or (row or {}).get("doc_id", ""),
        "source": source or (row or {}).get("source", ""),
        "stage": stage,
        "reason": reason,
        "detail": detail,
        "row": dumps(row) if row is not None else None,
    }


def doc_features():
    """datasets Features of a document row (imported late: `datasets` is heavy)."""
    from datasets import Features, Value

    return Features({c: Value("int64") if c == "ordinal" else Value("string") for c in DOC_COLUMNS})


def example_features():
    from datasets import Features, List, Value

    return Features(
        {
            "id": Value("string"),
            "messages": List({"role": Value("string"), "content": Value("string")}),
            "kind": Value("string"),
            "source_ids": List(Value("string")),
            "group": Value("string"),
            "template": Value("string"),
            "generator": Value("string"),
            "meta": Value("string"),
        }
    )


def pair_features():
    """The preference split's columns (curate/preference.py): TRL's conversational preference format."""
    from datasets import Features, List, Value

    turn = {"role": Value("string"), "content": Value("string")}
    return Features({
        "id": Value("string"), "kind": Value("string"), "prompt": List(turn), "chosen": List(turn),
        "rejected": List(turn), "rejected_from": Value("string"),
    })  # fmt: skip
