"""Markdown and plain-text files: one document per file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from curate.readers.base import Record, decode, humanize
from curate.text import parse_heading

_FRONT_MATTER = re.compile(r"---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|$)", re.DOTALL)


def _strip_front_matter(text: str) -> tuple[str, dict[str, str]]:
    """YAML-ish front matter (``---`` fenced ``key: value`` lines, LF or CRLF line ends) as flat string fields."""
    m = _FRONT_MATTER.match(text)
    if m is None:
        return text, {}
    fields = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            fields[key.strip()] = value.strip().strip("\"'")
    return text[m.end() :].lstrip("\r\n"), fields


def read_markdown(path: Path, data: bytes, **_: object) -> Iterator[Record]:
    text, encoding = decode(data)
    text, front = _strip_front_matter(text)
    h1 = next((h[1] for h in map(parse_heading, text.split("\n")) if h and h[0] == 1 and h[1]), None)
    title = front.get("title") or h1 or humanize(path.stem)
    meta = {"format": "markdown", "encoding": encoding}
    if front:
        meta["front_matter"] = front
    yield Record(text=text, title=title, meta=meta)


def read_plain(path: Path, data: bytes, **_: object) -> Iterator[Record]:
    text, encoding = decode(data)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    # A short first line without closing punctuation reads as a title ("ACME SECURITY POLICY").
    title = first if 0 < len(first) <= 80 and first[-1] not in ".!?:,;" else humanize(path.stem)
    yield Record(text=text, title=title, meta={"format": "text", "encoding": encoding})
