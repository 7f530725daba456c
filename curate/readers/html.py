"""HTML pages to Markdown-ish text: headings, lists, tables and code kept; scripts, styles and navigation removed.

BeautifulSoup with the standard library's html.parser: no compiled dependency, and it tolerates the broken
markup that exported wikis are full of.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import Record, decode, humanize

_DROP_TAGS = ["script", "style", "noscript", "nav", "header", "footer", "aside", "form", "iframe", "svg", "template"]
# class/id tokens that mark site chrome rather than content.
_CHROME = {"nav", "navbar", "menu", "breadcrumb", "breadcrumbs", "sidebar", "cookie-banner", "cookies", "skip-link"}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCKS = {"p", "div", "section", "article", "main", "body", "ul", "ol", "li", "pre", "table", "blockquote", "dl"}
_BLOCKS |= set(_HEADINGS) | {"hr", "br", "dt", "dd", "figure", "figcaption", "details", "summary"}


def _inline(tag) -> str:
    return " ".join(tag.get_text().split())


def _cell(tag) -> str:
    return _inline(tag).replace("|", "\\|")


def _table(tag) -> str:
    rows = [[_cell(c) for c in tr.find_all(["th", "td"])] for tr in tag.find_all("tr")]
    rows = [r for r in rows if r]
    if not rows:
        return ""
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join(["---"] * width) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(lines)


def _list_lines(tag, indent: str) -> list[str]:
    """One line per item, nested lists indented by two spaces."""
    lines = []
    for n, li in enumerate(tag.find_all("li", recursive=False), start=1):
        nested = [sub.extract() for sub in li.find_all(["ul", "ol"], recursive=False)]
        marker = f"{n}. " if tag.name == "ol" else "- "
        lines.append(indent + marker + _inline(li))
        for sub in nested:
            lines.extend(_list_lines(sub, indent + "  "))
    return lines


def _render(node, out: list[str]) -> None:
    from bs4 import NavigableString, Tag
    from bs4.element import Comment

    inline: list[str] = []

    def flush() -> None:
        text = " ".join("".join(inline).split())
        if text:
            out.append(text)
        inline.clear()

    for child in node.children:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            inline.append(str(child))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name not in _BLOCKS:
            inline.append(child.get_text())
            continue
        flush()
        if name in _HEADINGS:
            out.append("#" * _HEADINGS[name] + " " + _inline(child))
        elif name == "pre":
            out.append("```\n" + child.get_text().strip("\n") + "\n```")
        elif name == "table":
            out.append(_table(child))
        elif name in ("ul", "ol"):
            out.append("\n".join(_list_lines(child, "")))
        elif name == "blockquote":
            quoted: list[str] = []
            _render(child, quoted)
            out.append("\n".join("> " + line for block in quoted for line in block.split("\n")))
        elif name in ("br", "hr"):
            continue
        else:
            _render(child, out)
    flush()


def html_to_markdown(html: str) -> tuple[str, str]:
    """(markdown text, title) of an HTML page."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    title_tag = soup.find("title")
    title = _inline(title_tag) if title_tag else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": "navigation"}):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        tokens = set(tag.get("class") or []) | {tag.get("id") or ""}
        if tokens & _CHROME:
            tag.decompose()
    if not title:
        h1 = soup.find("h1")
        title = _inline(h1) if h1 else ""
    out: list[str] = []
    _render(soup.body or soup, out)
    text = "\n\n".join(block for block in out if block)
    return text, title


def read_html(path: Path, data: bytes, **_: object) -> Iterator[Record]:
    html, encoding = decode(data)
    text, title = html_to_markdown(html)
    yield Record(text=text, title=title or humanize(path.stem), meta={"format": "html", "encoding": encoding})
