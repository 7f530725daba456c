"""Word (.docx) and PowerPoint (.pptx) files as Markdown: headings, lists and tables kept.

python-docx and python-pptx: small, pure Python over lxml, offline, and they expose the document structure
(heading styles, list styles, tables, slide titles) that Markdown needs, where text extractors flatten it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import FileRejected, Record, humanize
from curate.readers.pdf import page_marker


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: list[list[str]]) -> str:
    rows = [[_cell(c) for c in r] for r in rows if any(c.strip() for c in r)]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join(["---"] * width) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows[1:]])


def _join(blocks: list[tuple[str, str]]) -> str:
    """Blocks apart by a blank line; consecutive list items on consecutive lines."""
    out = ""
    for i, (kind, text) in enumerate(blocks):
        if i:
            out += "\n" if kind == "item" and blocks[i - 1][0] == "item" else "\n\n"
        out += text
    return out


def read_docx(path: Path, data: bytes, **_: object) -> Iterator[Record]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as err:
        raise FileRejected("corrupt_file", f"python-docx cannot open it ({type(err).__name__}: {err})") from None
    blocks: list[tuple[str, str]] = []
    first_heading = ""
    number = 0  # position in the current numbered list
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "tbl":
            table = markdown_table([[c.text for c in row.cells] for row in Table(element, document).rows])
            if table:
                blocks.append(("table", table))
            continue
        if tag != "p":
            continue
        para = Paragraph(element, document)
        text = " ".join(para.text.split())
        if not text:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        level = re.match(r"Heading (\d)", style)
        if style == "Title" or level:
            depth = int(level.group(1)) if level else 1
            blocks.append(("heading", "#" * depth + " " + text))
            first_heading = first_heading or text
        elif "List Bullet" in style:
            blocks.append(("item", "- " + text))
        elif "List Number" in style:
            number = number + 1 if blocks and blocks[-1][1].startswith(f"{number}. ") else 1
            blocks.append(("item", f"{number}. " + text))
        else:
            blocks.append(("paragraph", text))
    if not blocks:
        raise FileRejected("empty_document", "the document has no text")
    title = (document.core_properties.title or "").strip() or first_heading or humanize(path.stem)
    yield Record(text=_join(blocks), title=title, meta={"format": "docx"})


def read_pptx(path: Path, data: bytes, **_: object) -> Iterator[Record]:
    from pptx import Presentation

    try:
        deck = Presentation(io.BytesIO(data))
    except Exception as err:
        raise FileRejected("corrupt_file", f"python-pptx cannot open it ({type(err).__name__}: {err})") from None
    parts: list[str] = []
    slide_titles: list[str] = []
    for n, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
        blocks: list[tuple[str, str]] = [("heading", f"# {title or f'Slide {n}'}")]
        slide_titles.append(title)
        for shape in slide.shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame:
                for para in shape.text_frame.paragraphs:
                    text = " ".join("".join(run.text for run in para.runs).split())
                    if text:
                        blocks.append(("item", "  " * para.level + "- " + text))
            if getattr(shape, "has_table", False) and shape.has_table:
                table = markdown_table([[c.text for c in row.cells] for row in shape.table.rows])
                if table:
                    blocks.append(("table", table))
        if len(blocks) > 1 or title:
            parts.append(page_marker(n) + "\n" + _join(blocks))
    if not parts:
        raise FileRejected("empty_document", "the presentation has no text")
    title = (deck.core_properties.title or "").strip() or next((t for t in slide_titles if t), humanize(path.stem))
    yield Record(text="\n\n".join(parts), title=title, meta={"format": "pptx", "pages": len(deck.slides)})
