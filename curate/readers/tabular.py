"""JSON Lines and CSV: one document per record, with configurable text, id and title fields.

A record that is malformed or lacks its text field becomes a BadRecord (a reject envelope that keeps the raw
record), and the rest of the file is still read. The record's other fields go to ``meta.fields``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from curate.readers.base import STRAY_BYTES, BadRecord, FileRejected, Record, decode


def _to_record(obj: dict[str, Any], index: int, fields, fmt: str, encoding: str | None) -> Record | BadRecord:
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
    # A stray byte further on reads as cp1252 on its own line; the rest of the file goes on as UTF-8.
    return open(path, encoding="utf-8", errors=STRAY_BYTES, newline=""), "utf-8"


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
                    yield BadRecord("malformed_record", detail, line.rstrip("\n")[:2000], index)
                    continue
                except (RecursionError, ValueError) as err:  # nesting too deep, a number too long to convert
                    detail = f"line {index} cannot be read as JSON ({type(err).__name__}: {str(err)[:120]})"
                    yield BadRecord("malformed_record", detail, line.rstrip("\n")[:2000], index)
                    continue
                if not isinstance(obj, dict):
                    detail = f"line {index} is a JSON {type(obj).__name__}, not an object"
                    yield BadRecord("malformed_record", detail, line.rstrip("\n"), index)
                    continue
                yield _to_record(obj, index, fields, "jsonl", encoding)
        except UnicodeDecodeError as err:
            detail = f"not {encoding} after line {index}: {err.reason}; the rest of the file is skipped"
            yield BadRecord("undecodable", detail, None, index + 1)


# The csv module's default cell limit (131,072 characters) would end a file at its first long cell, a pasted
# log in a ticket; a file is already bounded by input.max_file_bytes.
csv.field_size_limit(2**31 - 1)


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


def read_spreadsheet(path: Path, data: bytes, *, fields, options=None, **_: object) -> Iterator[Record | BadRecord]:
    """.xlsx (openpyxl) and .xls (xlrd) through pandas, every cell as text (no NaN, no floats made of ids): one
    document per row of every sheet (``input.sheets`` names some), with the same ``input.fields`` as CSV; the
    sheet and the row are in ``meta``. A row without its text field is a ``missing_text_field`` reject."""
    import pandas as pd

    fmt = path.suffix.lower().lstrip(".")
    if fmt == "xlsx":
        from curate.readers.office import check_unpacked_size

        check_unpacked_size(data, options)
    try:
        with warnings.catch_warnings():  # pandas 3 marks xlrd (the .xls engine) for removal in pandas 4
            warnings.filterwarnings("ignore", message="The xlrd engine is deprecated")
            sheets = pd.read_excel(io.BytesIO(data), sheet_name=None, dtype=str, keep_default_na=False, header=0)
    except Exception as err:  # the engines raise many types on damaged files
        raise FileRejected("corrupt_file", f"cannot read it as a spreadsheet ({type(err).__name__}: {err})") from None
    wanted = options.sheets if options is not None and options.sheets else None
    if wanted:
        missing = [name for name in wanted if name not in sheets]
        if missing:
            raise FileRejected(
                "missing_sheet", f"no sheet {missing[0]!r} (sheets: {', '.join(sheets)}); fix input.sheets"
            )
    for sheet, frame in sheets.items():
        if wanted and sheet not in wanted:
            continue
        for number, row in enumerate(frame.to_dict(orient="records"), start=2):  # row 1 is the header
            record = _to_record({str(k): v for k, v in row.items()}, number, fields, fmt, None)
            if isinstance(record, Record):
                del record.meta["record"], record.meta["encoding"]
                record.meta.update(sheet=str(sheet), row=number)
                yield record
            else:
                yield BadRecord(record.reason, f"sheet {sheet!r}, {record.detail}", record.raw, number)
