"""label.heuristic: offline labels written to ``labels`` (never drops): language, length bucket, has_table,
has_code, reading level. Selection on them is ``select.threshold``'s job (label first, select second)."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field

from curate.rows import dumps
from curate.stages.registry import Batch, register
from curate.text import markdown_blocks, split_sentences

# The most frequent function words of each language: a document's language is the set it hits most.
_STOP = {
    "en": "the and of to in is that for it with as was on be are this by or you your we our not can",
    "de": "der die und das ist nicht ein eine zu den mit sie ich es auf für im dem sich auch wir ihr",
    "fr": "le la les et des est une un pour que dans qui pas sur vous nous avec au du ce il sont",
    "es": "el la los las y de que en un una es por para con no se del al su lo como más",
    "nl": "de het een en van is dat niet op te zijn voor met je ik die er aan ook als",
    "it": "il lo la gli le di che è un una per con non sono del della si da al nel",
    "pt": "o a os as e de que um uma não para com por se do da em no na são",
}
_STOP_SETS = {lang: frozenset(words.split()) for lang, words in _STOP.items()}
_WORD = re.compile(r"[^\W\d_]+")
_VOWEL_GROUPS = re.compile(r"[aeiouy]+")


class LabelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    short_words: int = Field(100, ge=1, description="Below this many words a row is 'short'.")
    long_words: int = Field(400, ge=1, description="From this many words a row is 'long' (else 'medium').")
    min_language_hits: int = Field(3, ge=1, description="Stop-word hits needed to name a language ('unknown' else).")


def guess_language(words: list[str], min_hits: int) -> str:
    hits = {lang: sum(w in stop for w in words) for lang, stop in _STOP_SETS.items()}
    lang, best = max(sorted(hits.items()), key=lambda kv: kv[1])
    return lang if best >= min_hits else "unknown"


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


@register("label.heuristic", version=1, config=LabelConfig)
def label_heuristic(batch: Batch, config: LabelConfig) -> Batch:
    """Label language, length bucket, tables, code and reading level (never drops a row)."""
    labels = []
    for text, existing in zip(batch["text"], batch["labels"], strict=True):
        words = _WORD.findall(text.lower())
        n = len(text.split())
        kinds = {b.kind for b in markdown_blocks(text)}
        merged = json.loads(existing or "{}")
        merged.update(
            {
                "language": guess_language(words, config.min_language_hits),
                "length": "short" if n < config.short_words else "long" if n >= config.long_words else "medium",
                "has_table": "table" in kinds,
                "has_code": "code" in kinds,
                "reading_level": reading_level(text, words),
            }
        )
        labels.append(dumps(merged))
    return {**batch, "labels": labels}
