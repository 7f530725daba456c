"""PDF files: the text layer, page by page, with headers and footers that repeat on every page removed.

pypdf, not docling or markitdown: it is pure Python (about 0.4 MB), reads offline with no model download,
and gives the text layer in content-stream order, which for the single-column documents companies write is
reading order. docling's PDF path needs layout models from a hub; markitdown wraps pypdf for PDFs and adds
about 300 MB of dependencies. A scanned PDF has no text layer and is rejected (OCR is out of scope offline).

Pages are marked in the text with ``<!-- page N -->`` lines; ``chunk.sections`` turns them into the
``pages`` of each chunk's meta and removes them from the chunk text.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import FileRejected, Record, humanize

EDGE_LINES = 3  # lines at the top and at the bottom of a page that may be running headers or footers


def page_marker(n: int) -> str:
    return f"<!-- page {n} -->"


def _edge_key(line: str) -> str:
    return re.sub(r"\d+", "#", " ".join(line.split())).lower()  # "Page 3 of 9" and "Page 4 of 9" match


def strip_running_lines(pages: list[list[str]]) -> tuple[list[list[str]], list[str]]:
    """Remove lines that recur at the top or bottom of at least half the pages (and at least 3 pages)."""
    if len(pages) < 3:
        return pages, []
    counts: Counter = Counter()
    for lines in pages:
        edges = {_edge_key(x) for x in lines[:EDGE_LINES] + lines[-EDGE_LINES:] if x.strip()}
        counts.update(edges)
    running = {k for k, n in counts.items() if n >= max(3, len(pages) / 2)}
    cleaned = []
    for lines in pages:
        top = [i for i in range(min(EDGE_LINES, len(lines))) if _edge_key(lines[i]) in running]
        bottom = [i for i in range(max(0, len(lines) - EDGE_LINES), len(lines)) if _edge_key(lines[i]) in running]
        drop = set(top) | set(bottom)
        cleaned.append([x for i, x in enumerate(lines) if i not in drop])
    return cleaned, sorted(running)


def read_pdf(path: Path, data: bytes, **_: object) -> Iterator[Record]:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileRejected(
                "encrypted_file", "the PDF needs a password; decrypt it (qpdf --decrypt) and add it again"
            )
        pages = [[line.rstrip() for line in (page.extract_text() or "").splitlines()] for page in reader.pages]
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except FileRejected:
        raise
    except Exception as err:  # pypdf raises many types on damaged files
        raise FileRejected("corrupt_file", f"pypdf cannot read it ({type(err).__name__}: {err})") from None
    if not any(line.strip() for lines in pages for line in lines):
        raise FileRejected("no_text_layer", f"{len(pages)} page(s) and no text layer (a scan?); OCR it first")
    pages, running = strip_running_lines(pages)
    text = "\n\n".join(f"{page_marker(n)}\n" + "\n".join(lines) for n, lines in enumerate(pages, start=1))
    first = next((x.strip() for lines in pages for x in lines if x.strip()), "")
    title = info_title.strip() or (first if len(first) <= 80 else humanize(path.stem))
    meta = {"format": "pdf", "pages": len(pages)}
    if running:
        meta["running_lines_removed"] = running
    yield Record(text=text, title=title, meta=meta)
