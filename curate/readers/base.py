"""What a reader yields, and how bytes become text (encoding detection and binary-file checks)."""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ReadOptions:
    """How files are read (``input.*`` in the recipe): limits that keep one hostile or oversized file from taking
    the run down, which spreadsheet sheets to read, and the web pages' main-content mode."""

    max_file_bytes: int = 256 * 2**20  # bigger files are file_too_large rejects
    max_unpacked_bytes: int = 512 * 2**20  # DOCX/PPTX/XLSX members that would unpack past this: zip_bomb
    max_pages: int = 2000  # PDFs with more pages: too_many_pages
    sheets: tuple[str, ...] | None = None  # spreadsheet sheets to read; None: every sheet
    html_main_content: bool = False  # trafilatura's main-content extraction for crawled pages (gristmill[web])


class FileRejected(Exception):
    """The whole file cannot be read: it becomes one reject envelope (no text) and the run goes on."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class Record:
    """One document read from a file; ``id`` is the record's own id field, when the format has one."""

    text: str
    title: str
    meta: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


@dataclass
class BadRecord:
    """One record inside a readable file that cannot become a document (malformed, missing its text)."""

    reason: str
    detail: str
    raw: Any
    index: int


def humanize(stem: str) -> str:
    """A title from a file name: dashes and underscores as spaces; bytes of a name that are not UTF-8 (a Latin-1
    name, held by Python as surrogates) read as cp1252, so ``caf\\xe9-notes`` is "Café notes"."""
    stem = stem.encode("utf-8", "surrogateescape").decode("utf-8", STRAY_BYTES)
    words = re.sub(r"[-_]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def sniff_binary(data: bytes) -> bool:
    """NUL bytes in the first 8 KiB mean binary, unless a UTF-16 byte-order mark says otherwise (as git does)."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    return b"\x00" in data[:8192]


STRAY_BYTES = "gristmill-cp1252-strays"


def _strays_as_cp1252(err: UnicodeDecodeError) -> tuple[str, int]:
    """A decode error handler: the bytes that are not UTF-8 read as cp1252 (a byte cp1252 leaves undefined, as
    U+FFFD), decoding going on after them."""
    bad = err.object[err.start : err.end]
    return bad.decode("cp1252", errors="replace"), err.end


codecs.register_error(STRAY_BYTES, _strays_as_cp1252)


_HIGH_BYTES = bytes(range(0x80, 0x100))


def _mostly_utf8(data: bytes) -> bool:
    """Whether non-UTF-8 bytes are strays in a UTF-8 file: it holds valid multi-byte UTF-8 sequences, and more
    of them than bytes that fail. A legacy file (all cp1252) has none, and still decodes whole as before. Counted
    by Python's own decoder, in C (files go up to input.max_file_bytes): each byte that fails becomes one escape,
    which encoding back drops."""
    text = data.decode("utf-8", "surrogateescape")
    invalid = len(data) - len(text.encode("utf-8", "ignore"))
    ascii_bytes = len(data.translate(None, _HIGH_BYTES))
    valid = len(text) - ascii_bytes - invalid  # the characters that are neither ASCII nor an escape
    return valid > 0 and valid >= invalid


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding): BOMs first, then strict UTF-8, then UTF-8 with stray bytes read as cp1252 (a UTF-8 file
    with one pasted legacy character stays UTF-8), then cp1252 or charset-normalizer's guess (see below)."""
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as err:
            raise FileRejected(
                "undecodable", f"starts with a UTF-16 byte-order mark but is not UTF-16: {err}"
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    if _mostly_utf8(data):  # UTF-8 with a few stray legacy bytes: only those are read as cp1252
        return data.decode("utf-8", errors=STRAY_BYTES), "utf-8+cp1252"
    import charset_normalizer
    from charset_normalizer.md import mess_ratio

    results = charset_normalizer.from_bytes(data)
    best = results.best()
    # On short texts charset-normalizer ranks single-byte code pages (cp1257, cp775, cp1250, cp1252) almost
    # arbitrarily and may pick one that turns 'à' into 'ą'. cp1252, by far the most common legacy encoding,
    # wins when the detector lists it, or when it reads no worse than the detector's pick; Cyrillic, Greek or
    # Polish bytes read clearly worse in cp1252.
    try:
        western = data.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and (
        any(match.encoding == "cp1252" for match in results)
        or best is None
        or mess_ratio(western, 1.0) <= best.chaos + 0.01
    ):
        return western, "cp1252"
    if best is not None and best.encoding:
        return str(best), best.encoding
    raise FileRejected(
        "undecodable", "not UTF-8/16 and no encoding fits, cp1252 included; re-save the file as UTF-8"
    ) from None
