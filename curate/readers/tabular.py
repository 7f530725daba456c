"""JSON Lines and CSV: one document per record, with configurable text, id and title fields.

A record that is malformed or lacks its text field becomes a BadRecord (a reject envelope that keeps the raw
record), and the rest of the file is still read. The record's other fields go to ``meta.fields``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.readers.base import BadRecord, FileRejected, Record, decode


def _to_record(obj: dict[str, Any], index: int, fields, fmt: str, encoding: str) -> Record | BadRecord:
    text = obj.get(fields.text)
    if not isinstance(text, str) or not text.strip():
        problem = "has no" if fields.text not in obj else "has an empty or non-text"
        keys = ", ".join(sorted(map(str, obj))) or "none"
        return BadRecord(
            "missing_text_field",
            f"record {index} {problem} {fields.text!r} field (its keys: {keys}); set input.fields.text",
            obj,
            index,
        )
    rid = obj.get(fields.id) if fields.id else None
    title = obj.get(fields.title) if fields.title else None
    used = {fields.text, fields.id, fields.title}
    meta = {"format": fmt, "record": index, "encoding": encoding}
    rest = {k: v for k, v in obj.items() if k not in used}
    if rest:
        meta["fields"] = rest
    return Record(
        text=text,
        title=str(title) if title not in (None, "") else "",
        meta=meta,
        id=str(rid) if rid not in (None, "") else None,
    )


def read_jsonl(path: Path, data: bytes, *, fields, **_: object) -> Iterator[Record | BadRecord]:
    text, encoding = decode(data)
    for index, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield BadRecord(
                "malformed_record", f"line {index} is not valid JSON: {err.msg} at column {err.colno}", line, index
            )
            continue
        if not isinstance(obj, dict):
            yield BadRecord(
                "malformed_record", f"line {index} is a JSON {type(obj).__name__}, not an object", line, index
            )
            continue
        yield _to_record(obj, index, fields, "jsonl", encoding)


def read_csv(path: Path, data: bytes, *, fields, **_: object) -> Iterator[Record | BadRecord]:
    text, encoding = decode(data)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        raise FileRejected("empty_file", "the CSV file has no header row")
    try:
        for row in reader:
            index = reader.line_num  # the physical line where this record ends
            if None in row or any(v is None for v in row.values()):
                width = len(reader.fieldnames)
                got = width + len(row.get(None) or []) - sum(v is None for v in row.values())
                raw = {k if k is not None else "_extra": v for k, v in row.items()}
                yield BadRecord(
                    "malformed_record", f"line {index} has {got} fields, the header has {width}", raw, index
                )
                continue
            yield _to_record(row, index, fields, "csv", encoding)
    except csv.Error as err:
        yield BadRecord(
            "malformed_record",
            f"line {reader.line_num}: {err}; the rest of the file is skipped",
            None,
            reader.line_num,
        )
