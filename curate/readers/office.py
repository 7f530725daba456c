"""Word (.docx) and PowerPoint (.pptx) files as Markdown: headings, lists and tables kept.

python-docx and python-pptx: small, pure Python over lxml, offline, and they expose the document structure
(heading styles, list styles, tables, slide titles) that Markdown needs, where text extractors flatten it.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import FileRejected, Record, humanize
from curate.readers.pdf import page_marker


def check_unpacked_size(data: bytes, options) -> None:
    """A zip bomb is a small file whose parts unpack to gigabytes: refuse it from the sizes the archive declares,
    before anything is unpacked."""
    if options is None:
        return
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as err:
        raise FileRejected("corrupt_file", f"not a valid Office (zip) file ({err})") from None
    if total > options.max_unpacked_bytes:
        raise FileRejected(
            "zip_bomb",
            f"its parts would unpack to {total} bytes, over input.max_unpacked_bytes={options.max_unpacked_bytes}",
        )


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


def _table_rows(table) -> list[list[str]]:
    """A Word table's rows of cell text; a merged cell's text once, in its first row and column (python-docx
    repeats a merged cell in every grid position it covers), the positions it covers empty."""
    seen: dict[int, object] = {}  # id -> the cell element, held so that its id is not reused
    rows = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            cells.append("" if id(cell._tc) in seen else cell.text)
            seen[id(cell._tc)] = cell._tc
        rows.append(cells)
    return rows


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _list_formats(document) -> dict[str, dict[int, tuple[str, int]]]:
    """{numId: {level: (number format, start)}} from the document's numbering part: how Word's list numbering
    (a paragraph's ``w:numPr``) is drawn. Empty when the document has no numbering part."""
    try:
        numbering = document.part.numbering_part.element
    except (KeyError, NotImplementedError, AttributeError):
        return {}
    abstract: dict[str, dict[int, tuple[str, int]]] = {}
    for node in numbering.iter(_W + "abstractNum"):
        levels = {}
        for lvl in node.iter(_W + "lvl"):
            fmt = lvl.find(_W + "numFmt")
            start = lvl.find(_W + "start")
            levels[int(lvl.get(_W + "ilvl", 0))] = (
                fmt.get(_W + "val") if fmt is not None else "decimal",
                int(start.get(_W + "val")) if start is not None else 1,
            )
        abstract[node.get(_W + "abstractNumId")] = levels
    formats = {}
    for num in numbering.iter(_W + "num"):
        ref = num.find(_W + "abstractNumId")
        if ref is not None:
            formats[num.get(_W + "numId")] = abstract.get(ref.get(_W + "val"), {})
    return formats


def _list_label(fmt: str, n: int) -> str:
    if fmt == "bullet":
        return "-"
    if fmt in ("lowerLetter", "upperLetter"):
        label = ""
        while n > 0:
            n, r = divmod(n - 1, 26)
            label = chr(ord("a") + r) + label
        return (label if fmt == "lowerLetter" else label.upper()) + "."
    if fmt in ("lowerRoman", "upperRoman"):
        label = ""
        for value, numeral in (
            (1000, "m"),
            (900, "cm"),
            (500, "d"),
            (400, "cd"),
            (100, "c"),
            (90, "xc"),
            (50, "l"),
            (40, "xl"),
            (10, "x"),
            (9, "ix"),
            (5, "v"),
            (4, "iv"),
            (1, "i"),
        ):
            while n >= value:
                label, n = label + numeral, n - value
        return (label if fmt == "lowerRoman" else label.upper()) + "."
    return f"{n}."  # decimal and the formats Markdown has no form for


def _num_pr(para, style) -> tuple[str, int] | None:
    """(numId, level) of a paragraph in a Word list, set on the paragraph or on its style; None otherwise."""
    for owner in (para._p.pPr, style.element.pPr if style is not None else None):
        num_pr = owner.numPr if owner is not None else None
        if num_pr is not None and num_pr.numId is not None:
            level = num_pr.ilvl.val if num_pr.ilvl is not None else 0
            return str(num_pr.numId.val), int(level)
    return None


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"


def _body_blocks(parent):
    """The body's paragraphs and tables in order, those inside content controls (``w:sdt``: a form's fields, a
    template's filled-in blocks, a table of contents) included."""
    for element in parent.iterchildren():
        if element.tag == f"{_W}sdt":
            content = element.find(f"{_W}sdtContent")
            if content is not None:
                yield from _body_blocks(content)
        else:
            yield element


def _paragraph_text(para) -> str:
    """A paragraph's text, runs inside inline content controls included (python-docx reads only direct runs
    and hyperlinks)."""
    element = para._p
    if element.find(f"{_W}sdt") is None:
        return para.text
    parts = []
    for node in element.iter(f"{_W}t", f"{_W}tab", f"{_W}br", f"{_W}cr"):
        parts.append(node.text or "" if node.tag == f"{_W}t" else "\t" if node.tag == f"{_W}tab" else "\n")
    return "".join(parts)


def read_docx(path: Path, data: bytes, *, options=None, **_: object) -> Iterator[Record]:
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    check_unpacked_size(data, options)
    try:
        document = docx.Document(io.BytesIO(data))
    except Exception as err:
        raise FileRejected("corrupt_file", f"python-docx cannot open it ({type(err).__name__}: {err})") from None
    blocks: list[tuple[str, str]] = []
    first_heading = ""
    formats = _list_formats(document)
    counters: dict[tuple[str, int], int] = {}  # (numId, level): the number of the last item drawn
    for element in _body_blocks(document.element.body):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "tbl":
            table = markdown_table(_table_rows(Table(element, document)))
            if table:
                blocks.append(("table", table))
            continue
        if tag != "p":
            continue
        para = Paragraph(element, document)
        text = " ".join(_paragraph_text(para).split())
        if not text:
            continue
        style_obj = para.style  # resolved through the styles part: once per paragraph
        style = (style_obj.name if style_obj is not None else "") or ""
        level = re.match(r"Heading (\d)", style)
        numbered = _num_pr(para, style_obj)
        if style == "Title" or level:
            depth = int(level.group(1)) if level else 1
            blocks.append(("heading", "#" * depth + " " + text))
            first_heading = first_heading or text
        elif numbered is not None and numbered[0] != "0":  # numId 0 switches numbering off
            num_id, depth = numbered
            fmt, start = formats.get(num_id, {}).get(depth, ("bullet" if "Bullet" in style else "decimal", 1))
            n = counters.get((num_id, depth), start - 1) + 1
            counters[(num_id, depth)] = n
            for deeper in [key for key in counters if key[0] == num_id and key[1] > depth]:
                del counters[deeper]  # a sub-list starts again under each item
            blocks.append(("item", "   " * depth + _list_label(fmt, n) + " " + text))
        elif "List Bullet" in style:
            blocks.append(("item", "- " + text))
        else:
            blocks.append(("paragraph", text))
    if not blocks:
        raise FileRejected("empty_document", "the document has no text")
    title = (document.core_properties.title or "").strip() or first_heading or humanize(path.stem)
    yield Record(text=_join(blocks), title=title, meta={"format": "docx"})


def read_pptx(path: Path, data: bytes, *, options=None, **_: object) -> Iterator[Record]:
    from pptx import Presentation

    check_unpacked_size(data, options)
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
