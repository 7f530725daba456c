"""chunk.sections: split documents on Markdown headings, then pack or split each section to a word budget.

A section is the text under one heading; its heading path (``Returns > Refund window``) goes to ``section``.
Inside a section, blocks are packed into chunks of at most ``max_words``. Tables and fenced code blocks are
never cut inside: a long table is split between rows with its header repeated, a long code block stays
whole (and may exceed the budget). Long paragraphs are split between sentences. Consecutive chunks of one
section share up to ``overlap_words`` words of trailing sentences.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps, row_id
from curate.stages.registry import Batch, register
from curate.text import Block, count_words, markdown_blocks, split_sentences


class ChunkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_words: int = Field(300, ge=10, description="Budget per chunk, in whitespace words.")
    overlap_words: int = Field(30, ge=0, description="Trailing sentences repeated at the start of the next chunk.")
    heading_separator: str = Field(" > ", description="Joins the heading path in the section column.")

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkConfig:
        if self.overlap_words >= self.max_words:
            raise ValueError(
                f"overlap_words ({self.overlap_words}) must be below max_words ({self.max_words}); lower overlap_words"
            )
        return self


def _sections(blocks: list[Block]) -> list[tuple[list[str], list[Block]]]:
    """(heading path, body blocks) per section; sections with only a heading are folded into their path.
    A thematic break (---) also ends a section: what follows it (a page footer, say) is chunked on its own."""
    out: list[tuple[list[str], list[Block]]] = []
    stack: list[tuple[int, str]] = []
    body: list[Block] = []
    path: list[str] = []
    for block in blocks:
        if block.kind == "heading":
            if body:
                out.append((path, body))
            body = []
            while stack and stack[-1][0] >= block.level:
                stack.pop()
            stack.append((block.level, block.text))
            path = [text for _, text in stack]
        elif block.kind == "rule":
            if body:
                out.append((path, body))
            body = []
        else:
            body.append(block)
    if body:
        out.append((path, body))
    return out


def _split_table(block: Block, max_words: int) -> list[Block]:
    lines = block.text.split("\n")
    has_header = len(lines) >= 2 and set(lines[1].replace("|", "").strip()) <= set("-: ")
    header = lines[:2] if has_header else []
    rows = lines[2:] if has_header else lines
    budget = max(max_words - count_words("\n".join(header)), 1)
    pieces: list[Block] = []
    current: list[str] = []
    for row in rows:
        if current and count_words("\n".join([*current, row])) > budget:
            pieces.append(Block("table", "\n".join(header + current)))
            current = []
        current.append(row)
    if current or not pieces:
        pieces.append(Block("table", "\n".join(header + current)))
    return pieces


def _units(blocks: list[Block], max_words: int) -> list[Block]:
    """Blocks cut to fit the budget where a cut is allowed: paragraphs by sentence, tables by row."""
    units: list[Block] = []
    for n, block in enumerate(blocks):
        if block.words <= max_words or block.kind == "code":
            units.append(block)
        elif block.kind == "table":
            units.extend(_split_table(block, max_words))
        else:
            for sentence in split_sentences(block.text):
                words = sentence.split()
                for start in range(0, len(words), max_words):  # a "sentence" longer than the budget
                    units.append(Block("sentence", " ".join(words[start : start + max_words]), paragraph=n))
    return units


def _overlap(units: list[Block], overlap_words: int) -> list[Block]:
    """Trailing sentences of the previous chunk's prose, at most overlap_words words in all."""
    carried: list[Block] = []
    total = 0
    for unit in reversed(units):
        if unit.kind not in ("paragraph", "sentence"):
            break
        for sentence in reversed(split_sentences(unit.text)):
            words = count_words(sentence)
            if total + words > overlap_words:
                return carried
            carried.insert(0, Block("sentence", sentence, paragraph=unit.paragraph))
            total += words
    return carried


def _join(units: list[Block]) -> str:
    """Blocks apart by a blank line; sentences of one paragraph by a space."""
    text = ""
    for prev, unit in zip([None, *units], units, strict=False):
        same_paragraph = prev is not None and prev.kind == unit.kind == "sentence" and prev.paragraph == unit.paragraph
        text += (" " if same_paragraph else "\n\n" if prev is not None else "") + unit.text
    return text


def pack_section(blocks: list[Block], max_words: int, overlap_words: int) -> list[str]:
    chunks: list[list[Block]] = []
    current: list[Block] = []
    fresh = 0  # words in current that are not overlap
    for unit in _units(blocks, max_words):
        size = sum(u.words for u in current)
        if fresh and size + unit.words > max_words:
            chunks.append(current)
            current = _overlap(current, overlap_words) if overlap_words else []
            if sum(u.words for u in current) + unit.words > max_words:
                current = []
            fresh = 0
        current.append(unit)
        fresh += unit.words
    if fresh:
        chunks.append(current)
    return [_join(chunk) for chunk in chunks]


@register("chunk.sections", version=1, config=ChunkConfig, expands=True)
def chunk_sections(batch: Batch, config: ChunkConfig) -> Batch:
    """Split documents into heading sections, then pack or split them to max_words with overlap."""
    out: Batch = {key: [] for key in batch}
    out[REJECT_REASON] = []
    out[REJECT_DETAIL] = []
    for i in range(len(batch["id"])):
        row = {key: batch[key][i] for key in batch}
        pieces = [
            (config.heading_separator.join(path), text)
            for path, blocks in _sections(markdown_blocks(row["text"]))
            for text in pack_section(blocks, config.max_words, config.overlap_words)
        ]
        if not pieces:  # only headings: keep the row so the drop is recorded
            pieces = [(row["section"], row["text"])]
            reason, detail = "no_content", "the document has headings but no text under them"
        else:
            reason, detail = "", ""
        meta = json.loads(row["meta"] or "{}")
        for index, (section, text) in enumerate(pieces):
            chunk = {**row, "id": row_id(row["doc_id"], index), "text": text, "section": section}
            chunk["meta"] = dumps(
                {**meta, "chunk": {"index": index, "count": len(pieces), "words": count_words(text)}}
            )
            for key in batch:
                out[key].append(chunk[key])
            out[REJECT_REASON].append(reason)
            out[REJECT_DETAIL].append(detail)
    return out
