"""Plain-text helpers shared by both halves (stages, generators, retrieval, evaluation): words, word counts,
sentences, code fences and Markdown blocks. Pure standard library, so ``train`` may import it."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_HEADING_START = re.compile(r" {0,3}(#{1,6})\s")
_PAGE = re.compile(r"^<!-- page (\d+) -->$")  # page markers written by the PDF and PPTX readers


_WORD = re.compile(r"\w+")


def words(text: str) -> list[str]:
    """The project's one word tokenizer: lower-cased runs of Unicode letters, digits and underscores ("Rückgabe"
    stays one word). Retrieval, token F1, support and the detector all count these."""
    return _WORD.findall(text.lower())


# Words that carry no content (grounded support counts the others; the refusal-reason check ignores them).
FUNCTION_WORDS = frozenset(
    "a an and are as at be been but by can could do does for from had has have how i if in into is it its me my no "
    "not of on or our so than that the their them then there these they this to up us was we were what when where "
    "which who why will with would you your".split()
)


def strip_fence(text: str) -> str:
    """``text`` without one Markdown code fence around it (```` ```json ... ``` ````; an unclosed fence runs to the
    end), as models wrap structured output; text without a fence is returned stripped."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def count_words(text: str) -> int:
    """Whitespace-separated words: the default length measure (documented in docs/recipes.md)."""
    return len(text.split())


# Words that end in a period without ending a sentence: titles, Latin, units, months, company forms.
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft no nos vs etc e.g i.e eg ie approx inc ltd co corp fig figs vol vols p pp "
    "ch dept est al jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun min max ca cf "
    "incl excl ref nr tel ext oz lb lbs kg km cm mm hr hrs sec resp".split()
)


def split_sentences(text: str) -> list[str]:
    """Sentences of one paragraph: split after . ! ? followed by a space and a capital or a digit, except after an
    abbreviation ("Dr. Lee", "e.g. The", "No. 5"), an initial ("J. Smith") or a list number ("1. Lay out").
    Decimals and URLs have no space after their dots, so they never split."""
    text = " ".join(text.split())
    if not text:
        return []
    pieces = [s for s in _SENTENCE_END.split(text) if s]
    out: list[str] = []
    for piece in pieces:
        if out and _continues(out[-1]):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _continues(sentence: str) -> bool:
    """Whether the text after ``sentence`` belongs to it: it ends in an abbreviation, an initial or a list number."""
    if not sentence.endswith("."):
        return False
    last = sentence.rsplit(" ", 1)[-1][:-1].lower().lstrip("(\"'")
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()) or (last.isdigit() and " " not in sentence)


def parse_heading(line: str) -> tuple[int, str] | None:
    """(level, text) of an ATX heading line (``## Returns ##``), or None. String operations rather than one
    regex: ``\\s+(.*?)\\s*#*\\s*$`` backtracks cubically on a heading followed by thousands of spaces."""
    m = _HEADING_START.match(line)
    if m is None:
        return None
    return len(m.group(1)), line[m.end() :].strip().rstrip("#").rstrip()


def is_rule(line: str) -> bool:
    """A thematic break: three or more of one of - * _, with spaces between and around (``- - -``, ``***``)."""
    stripped = line.strip(" ")
    if len(line) - len(line.lstrip(" ")) > 3 or not stripped or stripped[0] not in "-*_":
        return False
    marks = stripped.replace(" ", "")
    return len(marks) >= 3 and marks == stripped[0] * len(marks)


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
        heading = parse_heading(line)
        if not para and is_rule(line):
            add("rule", "")
        elif heading:
            flush_para()
            add("heading", heading[1], level=heading[0])
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


_STRUCTURAL = re.compile(r" {0,3}(?:#{1,6}\s|\||```|~~~)")
_ITEM = re.compile(r"\s*(?:[-*+]\s+|\d{1,3}[.)]\s+|>\s*)")


def drop_sentences(text: str, pattern: re.Pattern) -> str:
    """``text`` without the sentences ``pattern`` finds in, every other line kept as it is. A paragraph's lines
    are read as one (a sentence may wrap); a list item or quote keeps its marker; a heading, table row or fence
    line that matches goes whole; a paragraph or item left empty goes."""
    lines, out, i = text.split("\n"), [], 0

    def plain(n: int) -> bool:
        line = lines[n] if n < len(lines) else ""
        return bool(line.strip()) and not _STRUCTURAL.match(line) and not _ITEM.match(line)

    while i < len(lines):
        j = i + 1
        if plain(i):
            while plain(j):
                j += 1  # the rest of a plain paragraph
        group, i = lines[i:j], j
        if not pattern.search(" ".join(group)):  # a term may wrap from one line to the next
            out += group
        elif not _STRUCTURAL.match(group[0]):
            marker = _ITEM.match(group[0])
            prefix = marker.group(0) if marker and marker.group(0).strip() else ""
            kept = [s for s in split_sentences(" ".join(group)[len(prefix) :]) if not pattern.search(s)]
            if kept:
                out.append(prefix + " ".join(kept))
    return "\n".join(out)
