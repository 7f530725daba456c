"""chunk.sections: split documents on Markdown headings, then pack or split each section to a size budget.

A section is the text under one heading; its heading path (``Returns > Refund window``) goes to ``section``.
Inside a section, blocks are packed into chunks of at most ``max_words`` whitespace words, or, with a
``tokenizer`` (a local path or hub id, loaded on first use), at most ``max_tokens`` tokens of that tokenizer.
Tables and fenced code blocks are never cut inside: a long table is split between rows with its header
repeated, a long code block stays whole (and may exceed the budget). Long paragraphs are split between
sentences. Consecutive chunks of one section share up to ``overlap_words`` (``overlap_tokens``) of trailing
sentences. Page markers written by the PDF and PPTX readers become ``meta.chunk.pages`` and leave the text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.errors import StageError
from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps, row_id
from curate.stages.registry import Batch, register
from curate.text import Block, count_words, markdown_blocks, split_sentences

Measure = Callable[[str], int]


class ChunkConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_words: int = Field(300, ge=10, description="Budget per chunk in whitespace words (without a tokenizer).")
    overlap_words: int = Field(30, ge=0, description="Trailing sentences repeated at the start of the next chunk.")
    tokenizer: str | None = Field(
        None, description="A tokenizer (local path or hub id) to measure chunks in tokens instead of words."
    )
    max_tokens: int = Field(400, ge=10, description="Budget per chunk in tokens (with a tokenizer).")
    overlap_tokens: int = Field(40, ge=0, description="Overlap in tokens (with a tokenizer).")
    heading_separator: str = Field(" > ", description="Joins the heading path in the section column.")

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkConfig:
        if self.overlap_words >= self.max_words:
            raise ValueError(
                f"overlap_words ({self.overlap_words}) must be below max_words ({self.max_words}); lower overlap_words"
            )
        if self.overlap_tokens >= self.max_tokens:
            raise ValueError(
                f"overlap_tokens ({self.overlap_tokens}) must be below max_tokens ({self.max_tokens}); lower it"
            )
        return self

    @property
    def unit(self) -> str:
        return f"tokens of {self.tokenizer}" if self.tokenizer else "whitespace words"

    def budget(self) -> tuple[int, int, Measure]:
        """(max, overlap, measuring function) in the configured unit."""
        if self.tokenizer:
            return self.max_tokens, self.overlap_tokens, token_counter(self.tokenizer)
        return self.max_words, self.overlap_words, count_words


@functools.lru_cache(maxsize=4)
def token_counter(name: str) -> Measure:
    """Count tokens with a transformers tokenizer, loaded once per process (only when a recipe asks for it)."""
    from transformers import AutoTokenizer  # honours HF_HUB_OFFLINE: no download attempt when it is set

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except Exception as err:
        raise StageError(
            f"chunk.sections: cannot load tokenizer {name!r} ({type(err).__name__}: {err}); "
            "give a local tokenizer folder, or drop tokenizer to count words"
        ) from None

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


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


def _split_table(block: Block, budget: int, measure: Measure) -> list[Block]:
    lines = block.text.split("\n")
    has_header = len(lines) >= 2 and set(lines[1].replace("|", "").strip()) <= set("-: ")
    header = lines[:2] if has_header else []
    rows = lines[2:] if has_header else lines
    room = max(budget - measure("\n".join(header)), 1)
    pieces: list[Block] = []
    current: list[str] = []
    for row in rows:
        if current and measure("\n".join([*current, row])) > room:
            pieces.append(Block("table", "\n".join(header + current), page=block.page))
            current = []
        current.append(row)
    if current or not pieces:
        pieces.append(Block("table", "\n".join(header + current), page=block.page))
    return pieces


def _sentence_pieces(block: Block, n: int, budget: int, measure: Measure) -> list[Block]:
    """A paragraph over budget, cut between sentences; a run-on sentence over budget, cut between words."""
    pieces = []

    def add(text: str) -> None:
        pieces.append(Block("sentence", text, paragraph=n, page=block.page))

    for sentence in split_sentences(block.text):
        if measure(sentence) <= budget:
            add(sentence)
            continue
        piece: list[str] = []
        for word in sentence.split():
            if piece and measure(" ".join([*piece, word])) > budget:
                add(" ".join(piece))
                piece = []
            piece.append(word)
        if piece:
            add(" ".join(piece))
    return pieces


def _units(blocks: list[Block], budget: int, measure: Measure) -> list[Block]:
    """Blocks cut to fit the budget where a cut is allowed: paragraphs by sentence, tables by row."""
    units: list[Block] = []
    for n, block in enumerate(blocks):
        if block.kind == "code" or measure(block.text) <= budget:
            units.append(block)
        elif block.kind == "table":
            units.extend(_split_table(block, budget, measure))
        else:
            units.extend(_sentence_pieces(block, n, budget, measure))
    return units


def _overlap(units: list[Block], overlap: int, measure: Measure) -> list[Block]:
    """Trailing sentences of the previous chunk's prose, at most ``overlap`` in all."""
    carried: list[Block] = []
    total = 0
    for unit in reversed(units):
        if unit.kind not in ("paragraph", "sentence"):
            break
        for sentence in reversed(split_sentences(unit.text)):
            size = measure(sentence)
            if total + size > overlap:
                return carried
            carried.insert(0, Block("sentence", sentence, paragraph=unit.paragraph, page=unit.page))
            total += size
    return carried


def _join(units: list[Block]) -> str:
    """Blocks apart by a blank line; sentences of one paragraph by a space."""
    text = ""
    for prev, unit in zip([None, *units], units, strict=False):
        same_paragraph = prev is not None and prev.kind == unit.kind == "sentence" and prev.paragraph == unit.paragraph
        text += (" " if same_paragraph else "\n\n" if prev is not None else "") + unit.text
    return text


def pack_section(
    blocks: list[Block], budget: int, overlap: int, measure: Measure = count_words
) -> list[tuple[str, list[int]]]:
    """(text, [first page, last page] or []) for each chunk of one section. A chunk is measured as the joined
    text it will be (a tokenizer counts separators, and merges across them), not as a sum of its parts."""
    chunks: list[list[Block]] = []
    current: list[Block] = []
    fresh = False  # current holds more than the overlap carried from the previous chunk
    for unit in _units(blocks, budget, measure):
        if fresh and measure(_join([*current, unit])) > budget:
            chunks.append(current)
            current = _overlap(current, overlap, measure) if overlap else []
            if current and measure(_join([*current, unit])) > budget:
                current = []
            fresh = False
        current.append(unit)
        fresh = True
    if fresh:
        chunks.append(current)
    out = []
    for chunk in chunks:
        pages = sorted({u.page for u in chunk if u.page})
        out.append((_join(chunk), [pages[0], pages[-1]] if pages else []))
    return out


@register("chunk.sections", version=1, config=ChunkConfig, expands=True)
def chunk_sections(batch: Batch, config: ChunkConfig) -> Batch:
    """Split documents into heading sections, then pack or split them to a word or token budget with overlap."""
    out: Batch = {key: [] for key in batch}
    out[REJECT_REASON] = []
    out[REJECT_DETAIL] = []
    budget, overlap, measure = config.budget()
    for i in range(len(batch["id"])):
        row = {key: batch[key][i] for key in batch}
        pieces = [
            (config.heading_separator.join(path), text, pages)
            for path, blocks in _sections(markdown_blocks(row["text"]))
            for text, pages in pack_section(blocks, budget, overlap, measure)
        ]
        if not pieces:  # only headings: keep the row so the drop is recorded
            pieces = [(row["section"], row["text"], [])]
            reason, detail = "no_content", "the document has headings but no text under them"
        else:
            reason, detail = "", ""
        meta = json.loads(row["meta"] or "{}")
        for index, (section, text, pages) in enumerate(pieces):
            chunk = {**row, "id": row_id(row["doc_id"], index), "text": text, "section": section}
            info = {"index": index, "count": len(pieces), "words": count_words(text)}
            if config.tokenizer:
                info["tokens"] = measure(text)
            if pages:
                info["pages"] = pages
            chunk["meta"] = dumps({**meta, "chunk": info})
            for key in batch:
                out[key].append(chunk[key])
            out[REJECT_REASON].append(reason)
            out[REJECT_DETAIL].append(detail)
    return out
