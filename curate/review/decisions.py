"""Review decisions as data: ``<run>/review/decisions.jsonl``, one JSON object a line, appended and never rewritten.

A line is ``{id, hash, kind, decision, reason, edit, who, when}``:

- ``decision``: ``accept``, ``reject`` (with a ``reason``), ``edit`` (``edit`` holds the whole message list with the
  user and assistant turns changed; an edit accepts), ``rescue`` (a row curate dropped comes back in the next
  curate), or ``clear`` (the example is unreviewed again).
- ``hash``: ``content_hash`` of the example as the reviewer saw it (before any edit). A decision applies only to
  an example that still hashes the same; one that changed since is reported and not applied.

Later lines win (``fold``): a reviewer who changes their mind appends a new decision. Each line is one
``os.write`` on a file opened with ``O_APPEND``, then fsync: a killed server loses at most the decision in flight,
and a torn last line is reported by line number while every other line still applies.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from curate.rows import dumps, short_hash

DECISIONS = ("accept", "reject", "edit", "rescue", "clear")
_append_lock = threading.Lock()


def content_hash(example: dict[str, Any]) -> str:
    """What a reviewer judged: the messages as shown, the kind and the cited rows (not ``meta``, which notes only
    how the example was made)."""
    return short_hash(dumps([example["messages"], example["kind"], example["source_ids"]]))


@dataclass
class Review:
    """One example's folded decisions: ``status`` accepted / rejected / None, an edit, whether it was rescued."""

    status: str | None = None
    edit: list[dict[str, str]] | None = None
    rescued: bool = False
    reason: str = ""
    who: str = ""
    when: str = ""

    @property
    def reviewed(self) -> bool:
        return self.status is not None

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "edit": self.edit, "rescued": self.rescued, "reason": self.reason,
                "who": self.who, "when": self.when}  # fmt: skip


@dataclass
class Decisions:
    """A decisions file read: folded reviews by (id, hash), its number of lines, the bad lines."""

    path: Path
    reviews: dict[tuple[str, str], Review]
    lines: int
    problems: list[str]

    def __post_init__(self) -> None:
        self.hashes: dict[str, set[str]] = {}  # id -> every content hash it was reviewed under
        for example_id, digest in self.reviews:
            self.hashes.setdefault(example_id, set()).add(digest)

    def of(self, example_id: str, example_hash: str) -> Review | None:
        return self.reviews.get((example_id, example_hash))

    def hashes_of(self, example_id: str) -> set[str]:
        return self.hashes.get(example_id, set())


def check_record(record: Any, where: str) -> str | None:
    """Why ``record`` is not a decision (None when it is one); ``where`` names the line or request."""
    if not isinstance(record, dict):
        return f"{where}: a decision is a JSON object, got {type(record).__name__}"
    for key in ("id", "hash", "decision"):
        if not isinstance(record.get(key), str) or not record[key]:
            return f"{where}: {key!r} must be a non-empty string, got {record.get(key)!r}"
    if record["decision"] not in DECISIONS:
        return f"{where}: decision {record['decision']!r} is not one of {', '.join(DECISIONS)}"
    if record["decision"] == "reject" and not str(record.get("reason") or "").strip():
        return f"{where}: a reject needs a reason"
    if record["decision"] == "edit":
        edit = record.get("edit")
        ok = (
            isinstance(edit, list)
            and edit
            and all(
                isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
                for m in edit
            )
        )
        if not ok:
            return f"{where}: an edit holds the whole message list, [{{role, content}}, ...], got {edit!r:.80}"
    return None


def read_decisions(path: Path | str) -> Decisions:
    """Every well-formed line of ``path`` folded by (id, hash); a bad line is a problem naming it, never an error,
    and loses nothing else. A missing file is no decisions."""
    path = Path(path)
    reviews: dict[tuple[str, str], Review] = {}
    problems: list[str] = []
    n = 0
    if not path.is_file():
        return Decisions(path, reviews, 0, problems)
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path} line {n}"
            try:
                record = json.loads(line)
            except ValueError as err:
                torn = "" if line.endswith("\n") else " (the last line, cut short: a server killed while writing it)"
                problems.append(f"{where}: not JSON{torn} ({err}): {line.strip()[:80]!r}; it is skipped")
                continue
            problem = check_record(record, where)
            if problem:
                problems.append(problem + "; it is skipped")
                continue
            key = (record["id"], record["hash"])
            review = reviews.setdefault(key, Review())
            fold(review, record)
    return Decisions(path, reviews, n, problems)


def fold(review: Review, record: dict[str, Any]) -> None:
    """Apply one decision to ``review`` in place: later decisions win; an edit accepts and stays until replaced."""
    decision = record["decision"]
    if decision == "clear":
        review.status, review.edit, review.rescued, review.reason = None, None, False, ""
    elif decision == "reject":
        review.status, review.rescued, review.reason = "rejected", False, str(record.get("reason") or "")
    else:
        review.status, review.reason = "accepted", ""
        if decision == "edit":
            review.edit = [{"role": m["role"], "content": m["content"]} for m in record["edit"]]
        elif decision == "rescue":
            review.rescued = True
    review.who, review.when = str(record.get("who") or ""), str(record.get("when") or "")


def append_decision(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Append one decision (``when`` stamped now, UTC) as a single write with O_APPEND, then fsync; a torn last
    line left by a killed writer is ended first, so the new line stays whole. Returns the record written."""
    record = {**record, "when": record.get("when") or datetime.now(UTC).isoformat(timespec="seconds")}
    data = (dumps(record) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _append_lock:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size:
                with open(path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        data = b"\n" + data
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
    return record


def check_edit(original: list[dict[str, str]], edit: list[dict[str, str]]) -> str | None:
    """Why ``edit`` cannot replace ``original`` (None when it can): the same turns in the same order, the system
    prompt untouched, no turn left empty."""
    if [m["role"] for m in edit] != [m["role"] for m in original]:
        return f"an edit keeps the turns: roles {[m['role'] for m in original]}, got {[m['role'] for m in edit]}"
    for old, new in zip(original, edit, strict=True):
        if old["role"] == "system" and new["content"] != old["content"]:
            return "the system prompt is the persona's, not edited per example; edit the user or assistant turn"
        if not new["content"].strip():
            return f"the {new['role']} turn is empty; write it, or reject the example"
    return None


def check_json_answer(edit: list[dict[str, str]], schema: dict[str, Any] | None) -> str | None:
    """For an extract_json example: why the edited answer is not JSON valid against its schema (None when it is)."""
    from jsonschema.validators import validator_for

    from curate.text import strip_fence

    answer = next((m["content"] for m in reversed(edit) if m["role"] == "assistant"), "")
    try:
        value = json.loads(strip_fence(answer))
    except ValueError as err:
        return f"the edited answer is not JSON ({err}); an extract_json answer is one JSON object"
    if schema:
        errors = sorted(validator_for(schema)(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            where = "/".join(map(str, errors[0].path)) or "the object"
            return f"the edited answer does not match its schema at {where}: {errors[0].message}"
    return None
