"""Find input files and read them into document rows; every unreadable file or record becomes a reject.

Readers are registered by file extension. A reader takes (path, bytes, fields=...) and yields Records (one
document each) or BadRecords, or raises FileRejected for the whole file. Order is deterministic: files sorted
by their source path, records in file order; ``ordinal`` numbers the documents in that order.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputError
from curate.readers.base import BadRecord, FileRejected, ReadOptions, Record, sniff_binary
from curate.readers.email import read_eml, read_mbox
from curate.readers.html import read_html
from curate.readers.office import read_docx, read_pptx
from curate.readers.pdf import read_pdf
from curate.readers.tabular import read_csv, read_jsonl, read_spreadsheet
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
    ".xlsx": read_spreadsheet,
    ".xls": read_spreadsheet,
    ".pdf": read_pdf,
    ".docx": read_docx,
    ".pptx": read_pptx,
    ".eml": read_eml,
    ".mbox": read_mbox,
}
# Binary container formats: NUL bytes are expected, so they skip the binary-file check.
BINARY_FORMATS = {".pdf", ".docx", ".pptx", ".xlsx", ".xls"}

READ_STAGE = "read"
# Bumped whenever a reader's output changes for the same file, so a resumed run does not reuse old reads.
# 2: UTF-8 with stray cp1252 bytes, spreadsheets, HTML through markdownify, PDF headings, DOCX numbering.
# 3: reversible sources for names that are not UTF-8, HTML's declared charset and asides, CRLF front matter, DOCX
#    content controls.
READ_VERSION = 3


@dataclass
class InputFile:
    path: Path
    source: str  # relative to the input root, POSIX separators; undecodable bytes of a name as \xNN
    outside: bool = False  # a link that resolves outside the input root: never read


@dataclass
class ReadResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    files: int = 0


def display_name(path: str | Path) -> str:
    """A file name as text that any output takes: its bytes as UTF-8 where they are, ``\\xNN`` where not (a name
    written in a legacy encoding), so it can be written to JSON and Arrow without an encoding error. For messages;
    a stored source is :func:`source_name` (reversible)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def source_name(path: str | Path) -> str:
    """A path as the ``source`` of rows and rejects: valid UTF-8 whatever the file system holds, and reversible
    (:func:`source_bytes`). UTF-8 in the name stays as it is; a byte that is not UTF-8 (a Latin-1 name copied
    from an old share) becomes ``\\xNN``, and a backslash of the name itself is doubled, so the two never mix."""
    raw = os.fsencode(path).replace(b"\\", b"\\\\")
    return raw.decode("utf-8", "backslashreplace")


def source_bytes(source: str) -> bytes:
    """The file system's bytes of a :func:`source_name` (``os.fsdecode`` of them opens the file)."""

    def unescape(m: re.Match) -> bytes:
        return b"\\" if m[1] == b"\\" else bytes.fromhex(m[1][1:].decode())

    return re.sub(rb"\\(\\|x[0-9a-f]{2})", unescape, source.encode("utf-8"))


def discover(paths: list[str]) -> list[InputFile]:
    """Expand files, folders (recursively, skipping hidden entries) and globs; sort by source path. A source is the
    path as found, relative to the input root; a file that is (or lies behind) a link leading outside that root is
    marked ``outside`` and becomes an ``outside_input_root`` reject instead of being read."""
    found: list[Path] = []
    roots: list[Path] = []
    for i, entry in enumerate(paths):
        p = Path(entry)
        if p.is_dir():
            roots.append(Path(os.path.abspath(p)))
            found += [
                f
                for f in sorted(p.rglob("*"))
                if f.is_file() and not any(x.startswith(".") for x in f.relative_to(p).parts)
            ]
        elif p.is_file():
            roots.append(Path(os.path.abspath(p.parent)))
            found.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(entry, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(
                    f"input.paths[{i}]: {entry!r} matches no file (relative paths are read from {Path.cwd()}); "
                    "fix the path or remove the entry"
                )
            prefix = entry.split("*", 1)[0].split("?", 1)[0].split("[", 1)[0]
            base = prefix if prefix.endswith(("/", os.sep)) else os.path.dirname(prefix) or "."
            roots.append(Path(os.path.abspath(base)))
            found += matches
    if not found:
        raise InputError(f"input.paths {paths} hold no files; point input.paths at your documents")
    root = os.path.commonpath([str(r) for r in roots])
    real_root = os.path.realpath(root)
    files: dict[str, InputFile] = {}
    for f in found:
        source = source_name(Path(os.path.relpath(os.path.abspath(f), root)).as_posix())
        real = os.path.realpath(f)
        outside = os.path.commonpath([real, real_root]) != real_root
        files.setdefault(source, InputFile(f, source, outside))
    return sorted(files.values(), key=lambda f: f.source)


def fingerprint_files(files: list[InputFile]) -> str:
    """sha256 over every input's source path and content: the root of every checkpoint key. A file that cannot
    be read (deleted since discovery, unreadable, outside the root) counts by its name and the reason."""
    h = hashlib.sha256()
    for f in files:
        try:
            digest = b"outside" if f.outside else _file_digest(f.path)
        except OSError as err:
            digest = f"unreadable:{type(err).__name__}".encode()
        h.update(f.source.encode() + b"\0" + digest)
    return h.hexdigest()


def _file_digest(path: Path) -> bytes:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").digest()


# Readers that open the file themselves and stream it (the others get its bytes).
STREAMING = {read_jsonl, read_mbox}


def _read_file(f: InputFile, fields, options: ReadOptions) -> Iterator[Record | BadRecord]:
    if f.outside:
        raise FileRejected(
            "outside_input_root",
            f"a link to {display_name(os.path.realpath(f.path))}, outside the input folder; copy the file in, or "
            "add its folder to input.paths",
        )
    size = f.path.stat().st_size
    reader = READERS.get(f.path.suffix.lower())
    if size > options.max_file_bytes and reader not in STREAMING:  # a streamed file is never held whole
        raise FileRejected(
            "file_too_large", f"{size} bytes, over input.max_file_bytes={options.max_file_bytes}; raise it to read it"
        )
    with open(f.path, "rb") as handle:
        head = handle.read(65536)
    if not head.strip() and size <= len(head):
        raise FileRejected("empty_file", "the file is empty")
    suffix = f.path.suffix.lower()
    if suffix not in BINARY_FORMATS and sniff_binary(head):
        raise FileRejected("binary_file", f"binary content ({size} bytes, NUL bytes in the first 8 KiB)")
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise FileRejected(
            "unsupported_format", f"no reader for {f.path.suffix or 'files without extension'}; known: {known}"
        )
    if reader in STREAMING:
        yield from reader(f.path, fields=fields, options=options)
    else:
        yield from reader(f.path, f.path.read_bytes(), fields=fields, options=options)


def _file_reject(f: InputFile, reason: str, detail: str) -> tuple[str, dict[str, Any]]:
    file_id = make_doc_id(f.source, 0)
    envelope = reject_envelope(
        stage=READ_STAGE, reason=reason, detail=detail, row=None, id=file_id, doc_id=file_id, source=f.source
    )
    return "reject", envelope


def iter_documents(
    files: list[InputFile], fields, limit: int | None = None, on_file=None, options: ReadOptions | None = None
):
    """Yield ("row", document row) and ("reject", envelope) in input order, streaming: ``ordinal`` numbers the
    documents in file then record order. ``on_file`` is called after each file (progress). Nothing one file does
    stops the run: whatever it raises makes it a reject (``reader_error`` with the exception's class)."""
    options = options or ReadOptions()
    seen: dict[str, str] = {}
    count = 0
    for f in files:
        if limit is not None and count >= limit:
            break
        try:
            for n, item in enumerate(_read_file(f, fields, options)):
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
            yield _file_reject(f, rej.reason, rej.detail)
        except OSError as err:
            yield _file_reject(f, "unreadable_file", f"{type(err).__name__}: {display_name(str(err))}")
        except Exception as err:  # a reader's bug or a hostile file: one reject, the run goes on
            detail = f"{type(err).__name__} while reading {f.source}: {display_name(str(err))[:300]}"
            yield _file_reject(f, "reader_error", detail)
        if on_file is not None:
            on_file(f)


def read_documents(
    files: list[InputFile], fields, limit: int | None = None, options: ReadOptions | None = None
) -> ReadResult:
    """All document rows and reject envelopes in lists (small inputs: previews, tests)."""
    result = ReadResult()

    def count_file(_):
        result.files += 1

    for kind, item in iter_documents(files, fields, limit, on_file=count_file, options=options):
        (result.rows if kind == "row" else result.rejects).append(item)
    return result
