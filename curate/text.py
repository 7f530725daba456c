"""Plain-text helpers shared by stages and generators: word counts, sentences, and Markdown blocks."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_RULE = re.compile(r"^ {0,3}([-*_])( *\1){2,} *$")
_PAGE = re.compile(r"^<!-- page (\d+) -->$")  # page markers written by the PDF and PPTX readers


def count_words(text: str) -> int:
    """Whitespace-separated words: the default length measure (documented in docs/recipes.md)."""
    return len(text.split())


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph, split after . ! ? when the next one starts with a capital or a digit."""
    text = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(text) if s] if text else []


def is_fence(line: str) -> bool:
    return bool(_FENCE.match(line))


@dataclass(frozen=True)
class Block:
    """A unit of Markdown that chunking never cuts through: heading, paragraph, table or fenced code."""

    kind: str  # "heading" | "paragraph" | "sentence" | "table" | "code" | "rule" (a thematic break, ---)
    text: str
    level: int = 0  # heading level, 0 for other kinds
    paragraph: int = -1  # for "sentence" pieces of a split paragraph: which paragraph, so they rejoin with spaces
    page: int = 0  # the page the block starts on, when the text has page markers (0: unknown)

    @property
    def words(self) -> int:
        return count_words(self.text)


def markdown_blocks(text: str) -> list[Block]:
    """Split Markdown-ish text into blocks. A fence left open runs to the end of the text (as CommonMark does)."""
    blocks: list[Block] = []
    lines = text.split("\n")
    i = 0
    para: list[str] = []
    page = 0

    def add(kind: str, body: str, level: int = 0) -> None:
        blocks.append(Block(kind, body, level=level, page=page))

    def flush_para() -> None:
        if para:
            add("paragraph", "\n".join(para))
            para.clear()

    while i < len(lines):
        line = lines[i]
        marker = _PAGE.match(line.strip())
        if marker:
            flush_para()
            page = int(marker.group(1))
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence:
            flush_para()
            fence_mark = fence.group(1)
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith(fence_mark[0] * len(fence_mark)):
                j += 1
            add("code", "\n".join(lines[i : j + 1]))
            i = j + 1
            continue
        heading = _HEADING.match(line)
        if _RULE.match(line) and not para:
            add("rule", "")
        elif heading:
            flush_para()
            add("heading", heading.group(2), level=len(heading.group(1)))
        elif line.lstrip().startswith("|"):
            flush_para()
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            add("table", "\n".join(lines[i:j]))
            i = j
            continue
        elif not line.strip():
            flush_para()
        else:
            para.append(line)
        i += 1
    flush_para()
    return blocks
