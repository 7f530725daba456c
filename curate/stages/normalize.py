"""normalize.text: mojibake repaired (ftfy), Unicode normal form, line endings, control characters, whitespace.

Normalizing is idempotent (a hypothesis property in tests/test_properties.py): the order below is chosen so
that no step can create work for an earlier one. Fenced code keeps its inner spacing; only trailing
whitespace is stripped there.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.rows import REJECT_DETAIL, REJECT_REASON
from curate.stages.registry import Batch, register
from curate.text import is_fence

# Invisible format characters that carry no meaning in prose (zero-width space, BOM, soft hyphen, word joiner).
# ZWJ/ZWNJ are kept: they change how emoji and some scripts render.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\ufeff\u00ad\u2060\u180e"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SPACES = re.compile(r"[^\S\n\t]")  # any Unicode space but newline and tab
_INNER_RUN = re.compile(r"(?<=\S)[ \t]{2,}")


class NormalizeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unicode_form: Literal["NFC", "NFKC", "none"] = Field(
        "NFC", description="Unicode normal form; NFKC also folds compatibility characters (ligatures, full-width)."
    )
    strip_control: bool = Field(True, description="Remove control and invisible format characters.")
    collapse_spaces: bool = Field(
        True, description="Turn runs of spaces inside a line into one space (indentation and code kept)."
    )
    max_blank_lines: int = Field(1, ge=0, description="Longest run of blank lines kept.")
    fix_text: bool = Field(
        True,
        description="Repair mojibake (text decoded with the wrong encoding upstream: cafÃ©, donâ€™t) with ftfy's "
        "encoding fixes only, as datatrove uses it; no quote, width or ligature changes.",
    )


@functools.cache
def _ftfy_config():
    from ftfy import TextFixerConfig

    # datatrove's FTFYFormatter settings: fix encodings, leave formatting (quotes, widths, ligatures, line breaks)
    # as written, so models still see the characters people type.
    return TextFixerConfig(
        unescape_html="auto",
        remove_terminal_escapes=True,
        fix_encoding=True,
        restore_byte_a0=True,
        replace_lossy_sequences=True,
        decode_inconsistent_utf8=True,
        fix_c1_controls=True,
        fix_latin_ligatures=False,
        fix_character_width=False,
        uncurl_quotes=False,
        fix_line_breaks=False,
        fix_surrogates=True,
        remove_control_chars=True,
        normalization=None,
        explain=False,
    )


def _fix(text: str) -> str:
    import ftfy

    return ftfy.fix_text(text, config=_ftfy_config())


def normalize_text(text: str, config: NormalizeConfig) -> str:
    """ftfy (a Latin-1 reading of UTF-8 needs its C1 characters to be repaired), the normalizations below, then
    ftfy again, so the result is a fixed point of both (normalizing twice changes nothing)."""
    if config.fix_text:
        text = _fix(text)
    text = _normalize(text, config)
    if config.fix_text:
        fixed = _fix(text)
        if fixed != text:
            text = _normalize(fixed, config)
    return text


def _normalize(text: str, config: NormalizeConfig) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    if config.strip_control:
        text = _CONTROL.sub("", text.translate(_INVISIBLE))
    if config.unicode_form != "none":
        text = unicodedata.normalize(config.unicode_form, text)
    text = _SPACES.sub(" ", text)
    out: list[str] = []
    blank_run = 0
    in_code = False
    for line in text.split("\n"):
        line = line.rstrip()
        if is_fence(line):
            in_code = not in_code
        elif config.collapse_spaces and not in_code:
            line = _INNER_RUN.sub(" ", line)
        if not line:
            blank_run += 1
            if blank_run > config.max_blank_lines:
                continue
        else:
            blank_run = 0
        out.append(line)
    return "\n".join(out).strip("\n")


@register("normalize.text", version=2, config=NormalizeConfig)
def normalize_batch(batch: Batch, config: NormalizeConfig) -> Batch:
    """Normalize Unicode, line endings, control characters and whitespace of text and title."""
    texts = [normalize_text(t, config) for t in batch["text"]]
    titles = [" ".join(normalize_text(t, config).split()) for t in batch["title"]]
    reasons = ["" if t.strip() else "empty_after_normalize" for t in texts]
    details = ["" if not r else "no text left after normalization" for r in reasons]
    return {**batch, "text": texts, "title": titles, REJECT_REASON: reasons, REJECT_DETAIL: details}
