"""PDF files: the text layer, page by page, with headers and footers that repeat on every page removed.

pypdf, not docling or markitdown: it is pure Python (about 0.4 MB), reads offline with no model download,
and gives the text layer in content-stream order, which for the single-column documents companies write is
reading order. docling's PDF path needs layout models from a hub; markitdown wraps pypdf for PDFs and adds
about 300 MB of dependencies. A scanned PDF has no text layer and is rejected (OCR is out of scope offline).

Pages are marked in the text with ``<!-- page N -->`` lines; ``chunk.sections`` turns them into the
``pages`` of each chunk's meta and removes them from the chunk text.

Headings come from the type: pypdf's text visitor gives each run of text its font and size, the body size is
the one most characters are set in, and a short line set larger than the body, or bold at the body size,
becomes a Markdown heading (``#`` by size rank, largest first), so ``chunk.sections`` gives PDF chunks a
heading path as it does for Markdown.
"""

from __future__ import annotations

import io
import math
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


HEADING_SIZE_RATIO = 1.15  # a line this much larger than the body text is a heading
MAX_HEADING_WORDS = 14
MAX_HEADING_SHARE = 0.4  # when more lines than this look like headings, the type says nothing: no headings
_BOLD_NAMES = ("bold", "black", "heavy", "semibold", "demibold", "demi")


def _is_bold(font) -> bool:
    if not font:
        return False
    name = str(font.get("/BaseFont", "")).lower()
    if any(word in name for word in _BOLD_NAMES):
        return True
    descriptor = font.get("/FontDescriptor")
    descriptor = descriptor.get_object() if descriptor is not None else {}
    weight = descriptor.get("/FontWeight", 0)
    flags = int(descriptor.get("/Flags", 0))
    return float(weight) >= 600 or bool(flags & (1 << 18))  # bit 19: ForceBold


def _size(font_size: float, cm, tm) -> float:
    """The rendered height of text: the font size through the text and the current transformation matrices."""
    c = tm[2] * cm[0] + tm[3] * cm[2]
    d = tm[2] * cm[1] + tm[3] * cm[3]
    return round(font_size * math.hypot(c, d), 1)


def _page_lines(page) -> tuple[list[str], dict[str, tuple[float, bool, int]]]:
    """(lines of the page's text, {line: (size, bold, characters)}): each line's type is the size and weight
    most of its characters are set in."""
    runs: list[tuple[str, float, bool]] = []

    def visit(text, cm, tm, font, font_size):
        if text:
            runs.append((text, _size(font_size, cm, tm), _is_bold(font)))

    lines = [line.rstrip() for line in (page.extract_text(visitor_text=visit) or "").splitlines()]
    styles: dict[str, tuple[float, bool, int]] = {}
    current: list[tuple[str, float, bool]] = []

    def close() -> None:
        text = " ".join("".join(part for part, _, _ in current).split())
        if text and text not in styles:
            weight: Counter = Counter()
            for part, size, bold in current:
                weight[(size, bold)] += len(part.strip())
            (size, bold), _ = weight.most_common(1)[0]
            styles[text] = (size, bold, len(text))
        current.clear()

    for text, size, bold in runs:
        for i, part in enumerate(text.split("\n")):
            if i:
                close()
            if part:
                current.append((part, size, bold))
    close()
    return lines, styles


def mark_headings(pages: list[list[str]], styles: dict[str, tuple[float, bool, int]]) -> int:
    """Prefix the heading lines of ``pages`` with ``#`` marks in place (wrapped heading lines joined); the number
    of headings found."""
    chars: Counter = Counter()
    for size, bold, n in styles.values():
        chars[(size, bold)] += n
    if not chars:
        return 0
    body, body_bold = chars.most_common(1)[0][0]  # the type most characters are set in

    def is_heading(line: str) -> tuple[float, bool] | None:
        style = styles.get(" ".join(line.split()))
        if style is None:
            return None
        size, bold, _ = style
        words = line.split()
        if (
            not words
            or len(words) > MAX_HEADING_WORDS
            or line.rstrip()[-1] in ".,;"
            or not re.search(r"[^\W\d_]", line)
        ):
            return None
        if size >= body * HEADING_SIZE_RATIO or (bold and not body_bold and size >= body * 0.95):
            return size, bold
        return None

    found = [[is_heading(line) for line in lines] for lines in pages]
    total = sum(1 for lines in pages for line in lines if line.strip())
    flagged = [style for page in found for style in page if style]
    if not flagged or len(flagged) > MAX_HEADING_SHARE * total:
        return 0
    # Levels by size, largest first; bold at the body size is the level below the smallest larger size.
    sizes = sorted({size for size, _ in flagged if size >= body * HEADING_SIZE_RATIO}, reverse=True)
    level_of = {size: min(i + 1, 6) for i, size in enumerate(sizes)}
    bold_level = min(len(sizes) + 1, 6)
    count = 0
    for p, lines in enumerate(pages):
        out: list[str] = []
        previous = None
        for line, style in zip(lines, found[p], strict=True):
            if style is None:
                out.append(line)
                previous = None
                continue
            level = level_of.get(style[0], bold_level)
            if previous == level and out:  # a heading wrapped over two lines
                out[-1] += " " + line.strip()
                continue
            out.append("#" * level + " " + line.strip())
            previous = level
            count += 1
        lines[:] = out
    return count


def read_pdf(path: Path, data: bytes, *, options=None, **_: object) -> Iterator[Record]:
    from pypdf import PdfReader

    max_pages = options.max_pages if options is not None else None
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileRejected(
                "encrypted_file", "the PDF needs a password; decrypt it (qpdf --decrypt) and add it again"
            )
        if max_pages is not None and len(reader.pages) > max_pages:
            raise FileRejected(
                "too_many_pages", f"{len(reader.pages)} pages, over input.max_pages={max_pages}; raise it to read it"
            )
        pages, styles = [], {}
        for page in reader.pages:
            lines, page_styles = _page_lines(page)
            pages.append(lines)
            for line, style in page_styles.items():
                styles.setdefault(line, style)
        info_title = (reader.metadata.title if reader.metadata else None) or ""
    except FileRejected:
        raise
    except Exception as err:  # pypdf raises many types on damaged files
        raise FileRejected("corrupt_file", f"pypdf cannot read it ({type(err).__name__}: {err})") from None
    if not any(line.strip() for lines in pages for line in lines):
        raise FileRejected("no_text_layer", f"{len(pages)} page(s) and no text layer (a scan?); OCR it first")
    pages, running = strip_running_lines(pages)
    headings = mark_headings(pages, styles)
    text = "\n\n".join(f"{page_marker(n)}\n" + "\n".join(lines) for n, lines in enumerate(pages, start=1))
    first = next((x.strip().lstrip("#").strip() for lines in pages for x in lines if x.strip()), "")
    title = info_title.strip() or (first if len(first) <= 80 else humanize(path.stem))
    meta = {"format": "pdf", "pages": len(pages), "headings": headings}
    if running:
        meta["running_lines_removed"] = running
    yield Record(text=text, title=title, meta=meta)
