"""Find input files and read them into document rows; every unreadable file or record becomes a reject.

Readers are registered by file extension. A reader takes (path, bytes, fields=...) and yields Records (one
document each) or BadRecords, or raises FileRejected for the whole file. Order is deterministic: files sorted
by their source path, records in file order; ``ordinal`` numbers the documents in that order.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputError
from curate.readers.base import BadRecord, FileRejected, Record, sniff_binary
from curate.readers.email import read_eml, read_mbox
from curate.readers.html import read_html
from curate.readers.office import read_docx, read_pptx
from curate.readers.pdf import read_pdf
from curate.readers.tabular import read_csv, read_jsonl
from curate.readers.text import read_markdown, read_plain
from curate.rows import make_doc_id, new_document, reject_envelope

Reader = Callable[..., Iterator[Record | BadRecord]]

READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_plain,
    ".html": read_html,
    ".htm": read_html,
    ".jsonl": read_jsonl,
    ".csv": read_csv,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".eml": read_eml,
    ".mbox": read_mbox,
}
# Binary container formats: NUL bytes are expected, so they skip the binary-file check.
BINARY_FORMATS = {".pdf", ".docx", ".pptx"}

READ_STAGE = "read"


@dataclass
class InputFile:
    path: Path
    source: str  # relative to the input root, POSIX separators


@dataclass
class ReadResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0


def discover(paths: list[str]) -> list[InputFile]:
    """Expand files, folders (recursively, skipping hidden entries) and globs; sort by source path."""
    found: list[Path] = []
    roots: list[Path] = []
    for i, entry in enumerate(paths):
        p = Path(entry)
        if p.is_dir():
            roots.append(p.resolve())
            found += [
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts)
            ]
        elif p.is_file():
            roots.append(p.resolve().parent)
            found.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(entry, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(
                    f"input.paths[{i}]: {entry!r} matches no file (relative paths are read from {Path.cwd()}); "
                    "fix the path or remove the entry"
                )
            prefix = entry.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
            roots.append(Path(prefix if prefix.endswith(("/", os.sep)) else os.path.dirname(prefix) or ".").resolve())
            found += matches
    if not found:
        raise InputError(f"input.paths {paths} hold no files; point input.paths at your documents")
    root = Path(os.path.commonpath([str(r) for r in roots]))
    files = {f.resolve(): InputFile(f, f.resolve().relative_to(root).as_posix()) for f in found}
    return sorted(files.values(), key=lambda f: f.source)


def fingerprint_files(files: list[InputFile]) -> str:
    """sha256 over every input's source path and content: the root of every checkpoint key."""
    h = hashlib.sha256()
    for f in files:
        h.update(f.source.encode() + b"\0" + hashlib.sha256(f.path.read_bytes()).digest())
    return h.hexdigest()


# Readers that open the file themselves and stream it (the others get its bytes).
STREAMING = {read_jsonl, read_mbox}


def _read_file(f: InputFile, fields) -> Iterator[Record | BadRecord]:
    size = f.path.stat().st_size
    with open(f.path, "rb") as handle:
        head = handle.read(65536)
    if not head.strip() and size <= len(head):
        raise FileRejected("empty_file", "the file is empty")
    suffix = f.path.suffix.lower()
    if suffix not in BINARY_FORMATS and sniff_binary(head):
        raise FileRejected("binary_file", f"binary content ({size} bytes, NUL bytes in the first 8 KiB)")
    reader = READERS.get(suffix)
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise FileRejected(
            "unsupported_format", f"no reader for {f.path.suffix or 'files without extension'}; known: {known}"
        )
    if reader in STREAMING:
        yield from reader(f.path, fields=fields)
    else:
        yield from reader(f.path, f.path.read_bytes(), fields=fields)


def iter_documents(files: list[InputFile], fields, limit: int | None = None, on_file=None):
    """Yield ("row", document row) and ("reject", envelope) in input order, streaming: ``ordinal`` numbers the
    documents in file then record order. ``on_file`` is called after each file (progress)."""
    seen: dict[str, str] = {}
    count = 0
    for f in files:
        if limit is not None and count >= limit:
            break
        file_id = make_doc_id(f.source, 0)
        try:
            for n, item in enumerate(_read_file(f, fields)):
                if limit is not None and count >= limit:
                    break
                if isinstance(item, BadRecord):
                    yield (
                        "reject",
                        reject_envelope(
                            stage=READ_STAGE,
                            reason=item.reason,
                            detail=item.detail,
                            row={"raw": item.raw, "record": item.index},
                            id=f"{f.source}:{item.index}",
                            source=f.source,
                        ),
                    )
                    continue
                doc_id = item.id if item.id is not None else make_doc_id(f.source, n)
                if doc_id in seen:
                    yield (
                        "reject",
                        reject_envelope(
                            stage=READ_STAGE,
                            reason="duplicate_doc_id",
                            detail=f"id {doc_id!r} was already used by a record of {seen[doc_id]}",
                            row={"text": item.text, "title": item.title, "meta": item.meta},
                            id=f"{f.source}:{item.meta.get('record', n)}",
                            doc_id=doc_id,
                            source=f.source,
                        ),
                    )
                    continue
                seen[doc_id] = f.source
                yield (
                    "row",
                    new_document(
                        doc_id=doc_id, ordinal=count, text=item.text, source=f.source, title=item.title, meta=item.meta
                    ),
                )
                count += 1
        except FileRejected as rej:
            yield (
                "reject",
                reject_envelope(
                    stage=READ_STAGE,
                    reason=rej.reason,
                    detail=rej.detail,
                    row=None,
                    id=file_id,
                    doc_id=file_id,
                    source=f.source,
                ),
            )
        except OSError as err:
            yield (
                "reject",
                reject_envelope(
                    stage=READ_STAGE, reason="unreadable_file", detail=str(err), row=None, id=file_id, source=f.source
                ),
            )
        if on_file is not None:
            on_file(f)


def read_documents(files: list[InputFile], fields, limit: int | None = None) -> ReadResult:
    """All document rows and reject envelopes in lists (small inputs: previews, tests)."""
    result = ReadResult()

    def count_file(_):
        result.files += 1

    for kind, item in iter_documents(files, fields, limit, on_file=count_file):
        (result.rows if kind == "row" else result.rejects).append(item)
    return result
