"""JSON Lines and CSV: one document per record, with configurable text, id and title fields.

A record that is malformed or lacks its text field becomes a BadRecord (a reject envelope that keeps the raw
record), and the rest of the file is still read. The record's other fields go to ``meta.fields``.
"""

from __future__ import annotations

import codecs
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


def _open_text(path: Path):
    """(text stream, encoding) without reading the whole file: BOMs, then UTF-8 checked on the first 64 KiB;
    anything else is decoded whole by ``decode`` (legacy encodings are rare in large JSONL exports)."""
    with open(path, "rb") as f:
        head = f.read(65536)
    if head.startswith(codecs.BOM_UTF8):
        return open(path, encoding="utf-8-sig", newline=""), "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return open(path, encoding="utf-16", newline=""), "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        text, encoding = decode(path.read_bytes())
        return io.StringIO(text, newline=""), encoding
    return open(path, encoding="utf-8", newline=""), "utf-8"


def read_jsonl(path: Path, data: bytes | None = None, *, fields, **_: object) -> Iterator[Record | BadRecord]:
    """Streams the file line by line: a corpus larger than memory reads in constant memory."""
    stream, encoding = _open_text(path)
    index = 0
    with stream:
        try:
            for index, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    detail = f"line {index} is not valid JSON: {err.msg} at column {err.colno}"
                    yield BadRecord("malformed_record", detail, line.rstrip("\n"), index)
                    continue
                if not isinstance(obj, dict):
                    detail = f"line {index} is a JSON {type(obj).__name__}, not an object"
                    yield BadRecord("malformed_record", detail, line.rstrip("\n"), index)
                    continue
                yield _to_record(obj, index, fields, "jsonl", encoding)
        except UnicodeDecodeError as err:
            detail = f"not {encoding} after line {index}: {err.reason}; the rest of the file is skipped"
            yield BadRecord("undecodable", detail, None, index + 1)


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
