"""filter.quality: the Gopher quality and repetition rules, the C4 rules and the FineWeb rules.

Every threshold is a config field whose default is the published value (sources below, as implemented in
datatrove's ``gopher_quality_filter.py``, ``gopher_repetition_filter.py``, ``c4_filters.py`` and
``fineweb_quality_filter.py``). A ``profile`` picks which rules run and at what thresholds: ``web`` is the
published set; ``company_docs`` keeps the rules that catch junk in company documents and switches off those
that punish short FAQ answers, tables, lists and API docs. Any field set in the recipe overrides the profile;
``disable`` turns rules off by name. Measured values go to ``signals.quality`` on kept and dropped rows alike,
so a threshold can be changed later with ``select.threshold`` without measuring again.

Words are whitespace-separated tokens (datatrove uses a language-aware word tokenizer; on English prose the
two agree to within a few percent, and whitespace splitting needs no model).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register
from curate.text import split_sentences

# Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher", appendix A.
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("•", "●", "○", "■", "□", "▪", "‣", "–", "-", "*")
_ELLIPSES = ("...", "…")
_PUNCT_END = (".", "!", "?", '"', "'", "”", "’", ":", ";", ")")
_STRIP = "".join(sorted(set(".,;:!?\"'()[]{}<>|*#`~_-–—•…”’“‘/\\")))
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")

# Published defaults; None switches a rule off.
WEB: dict[str, Any] = {
    # Gopher quality (Rae et al. 2021)
    "min_doc_words": 50,
    "max_doc_words": 100_000,
    "min_avg_word_length": 3.0,
    "max_avg_word_length": 10.0,
    "max_symbol_word_ratio": 0.1,
    "max_bullet_lines_ratio": 0.9,
    "max_ellipsis_lines_ratio": 0.3,
    "min_alpha_words_ratio": 0.8,
    "min_stop_words": 2,
    # Gopher repetition (Rae et al. 2021, table A1)
    "dup_line_frac": 0.3,
    "dup_para_frac": 0.3,
    "dup_line_char_frac": 0.2,
    "dup_para_char_frac": 0.2,
    "top_n_grams": {2: 0.2, 3: 0.18, 4: 0.16},
    "dup_n_grams": {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
    # C4 (Raffel et al. 2020, section 2.2)
    "c4_lorem_ipsum": True,
    "c4_curly_bracket": True,
    "c4_min_sentences": 5,
    # FineWeb (Penedo et al. 2024, section 3.3)
    "fineweb_line_punct_ratio": 0.12,
    "fineweb_short_line_ratio": 0.67,
    "fineweb_short_line_length": 30,
    "fineweb_char_dup_ratio": 0.01,
    "fineweb_newline_ratio": 0.3,
}

# Company documents: short answers, tables, lists, code and repeated table cells are normal there.
COMPANY_DOCS: dict[str, Any] = {
    **WEB,
    "min_doc_words": 5,
    "max_bullet_lines_ratio": None,
    "min_stop_words": 0,
    "min_alpha_words_ratio": 0.25,  # tables of sizes and prices are mostly numbers
    "dup_line_frac": 0.5,
    "dup_line_char_frac": 0.4,
    "top_n_grams": None,  # table cells repeat ("3-5 business days" in every column)
    "dup_n_grams": {5: 0.3, 6: 0.28, 7: 0.26, 8: 0.24, 9: 0.22, 10: 0.2},
    "c4_curly_bracket": False,
    "c4_min_sentences": None,
    "fineweb_line_punct_ratio": None,
    "fineweb_short_line_ratio": None,
    "fineweb_char_dup_ratio": None,
    "fineweb_newline_ratio": None,
}
PROFILES = {"web": WEB, "company_docs": COMPANY_DOCS}


class QualityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: Literal["web", "company_docs"] = Field("web", description="Rule set: web (published) or company_docs.")
    disable: list[str] = Field(default_factory=list, description="Rule names (fields below) to switch off.")
    min_doc_words: int | None = Field(None, description="Gopher: fewest words (50).")
    max_doc_words: int | None = Field(None, description="Gopher: most words (100,000).")
    min_avg_word_length: float | None = Field(None, description="Gopher: shortest mean word length (3).")
    max_avg_word_length: float | None = Field(None, description="Gopher: longest mean word length (10).")
    max_symbol_word_ratio: float | None = Field(None, description="Gopher: '#' and ellipses per word (0.1).")
    max_bullet_lines_ratio: float | None = Field(None, description="Gopher: share of lines starting a bullet (0.9).")
    max_ellipsis_lines_ratio: float | None = Field(None, description="Gopher: share of lines ending '...' (0.3).")
    min_alpha_words_ratio: float | None = Field(None, description="Gopher: share of words with a letter (0.8).")
    min_stop_words: int | None = Field(
        None, description="Gopher: fewest of the, be, to, of, and, that, have, with (2)."
    )
    dup_line_frac: float | None = Field(None, description="Gopher: share of duplicated lines (0.3).")
    dup_para_frac: float | None = Field(None, description="Gopher: share of duplicated paragraphs (0.3).")
    dup_line_char_frac: float | None = Field(
        None, description="Gopher: share of characters in duplicated lines (0.2)."
    )
    dup_para_char_frac: float | None = Field(
        None, description="Gopher: share of characters in duplicated paragraphs (0.2)."
    )
    top_n_grams: dict[int, float] | None = Field(None, description="Gopher: most frequent n-gram's character share.")
    dup_n_grams: dict[int, float] | None = Field(None, description="Gopher: character share of repeated n-grams.")
    c4_lorem_ipsum: bool | None = Field(None, description="C4: drop placeholder text.")
    c4_curly_bracket: bool | None = Field(None, description="C4: drop text with '{' (code).")
    c4_min_sentences: int | None = Field(None, description="C4: fewest sentences (5).")
    fineweb_line_punct_ratio: float | None = Field(
        None, description="FineWeb: lines ending in punctuation, at most (0.12)."
    )
    fineweb_short_line_ratio: float | None = Field(None, description="FineWeb: share of short lines, at least (0.67).")
    fineweb_short_line_length: int | None = Field(None, description="FineWeb: a short line has fewer characters (30).")
    fineweb_char_dup_ratio: float | None = Field(None, description="FineWeb: characters in duplicated lines (0.01).")
    fineweb_newline_ratio: float | None = Field(None, description="FineWeb: newlines per word, at most (0.3).")

    @model_validator(mode="after")
    def _check_disable(self) -> QualityConfig:
        unknown = sorted(set(self.disable) - set(WEB))
        if unknown:
            raise ValueError(f"disable: unknown rules {unknown}; known: {', '.join(WEB)}")
        return self

    def thresholds(self) -> dict[str, Any]:
        """The profile's values, overridden by fields set in the recipe, minus disabled rules."""
        values = dict(PROFILES[self.profile])
        values.update({k: getattr(self, k) for k in self.model_fields_set if k in values})
        for rule in self.disable:
            values[rule] = None
        return values


def _dup_stats(items: list[str]) -> tuple[int, int]:
    """(number of duplicate items, characters in them), counting every occurrence after the first."""
    seen: set[str] = set()
    dup, chars = 0, 0
    for item in items:
        if item in seen:
            dup += 1
            chars += len(item)
        else:
            seen.add(item)
    return dup, chars


def _top_ngram_char_frac(words: list[str], n: int, total_chars: int) -> float:
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams or not total_chars:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return count * sum(len(w) for w in gram) / total_chars


def _dup_ngram_char_frac(words: list[str], n: int, text_len: int) -> float:
    """datatrove's find_all_duplicate: characters of n-grams seen before, skipping past each repeat."""
    seen: set[str] = set()
    repeated, i = 0, 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in seen:
            repeated += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return repeated / text_len if text_len else 0.0


def measure(text: str, short_line_length: int = 30) -> dict[str, Any]:
    """Every quality signal of one text."""
    words = text.split()
    n_words = len(words) or 1
    # Word length and letter share are measured on words with their punctuation stripped; tokens that are
    # only punctuation (table pipes, dashes, bullets) are not words.
    stripped = [s for s in (w.strip(_STRIP) for w in words) if s]
    n_stripped = len(stripped) or 1
    lines = [line for line in text.split("\n") if line.strip()]
    n_lines = len(lines) or 1
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    dup_lines, dup_line_chars = _dup_stats(lines)
    dup_paras, dup_para_chars = _dup_stats(paragraphs)
    chars = len(text) or 1
    word_chars = sum(len(w) for w in words)
    lowered = text.lower()
    return {
        "words": len(words),
        "avg_word_length": round(sum(len(w) for w in stripped) / n_stripped, 4),
        "symbol_word_ratio": round((text.count("#") + sum(text.count(e) for e in _ELLIPSES)) / n_words, 4),
        "bullet_lines_ratio": round(sum(line.lstrip().startswith(_BULLETS) for line in lines) / n_lines, 4),
        "ellipsis_lines_ratio": round(sum(line.rstrip().endswith(_ELLIPSES) for line in lines) / n_lines, 4),
        "alpha_words_ratio": round(sum(any(c.isalpha() for c in w) for w in stripped) / n_stripped, 4),
        "stop_words": sum(w.lower() in STOP_WORDS for w in stripped),
        "dup_line_frac": round(dup_lines / n_lines, 4),
        "dup_para_frac": round(dup_paras / (len(paragraphs) or 1), 4),
        "dup_line_char_frac": round(dup_line_chars / chars, 4),
        "dup_para_char_frac": round(dup_para_chars / chars, 4),
        "top_n_grams": {n: round(_top_ngram_char_frac(words, n, word_chars), 4) for n in (2, 3, 4)},
        "dup_n_grams": {n: round(_dup_ngram_char_frac(words, n, chars), 4) for n in range(5, 11)},
        "lorem_ipsum": "lorem ipsum" in lowered,
        "curly_bracket": "{" in text,
        "sentences": len([s for p in paragraphs for s in split_sentences(p)]),
        "line_punct_ratio": round(sum(line.rstrip().endswith(_PUNCT_END) for line in lines) / n_lines, 4),
        "short_line_ratio": round(sum(len(line.strip()) < short_line_length for line in lines) / n_lines, 4),
        "char_dup_ratio": round(dup_line_chars / chars, 4),
        "newline_ratio": round(text.count("\n") / n_words, 4),
        "policy_lines": sum(any(p in line.lower() for p in _POLICY) for line in lines),
    }


def first_failure(m: dict[str, Any], t: dict[str, Any]) -> tuple[str, str] | None:
    """The first rule the measurements fail, as (reason slug, detail), in the order the rules are listed."""

    def over(value, limit, name, slug):
        return (slug, f"{name} {value} > {limit}") if limit is not None and value > limit else None

    def under(value, limit, name, slug):
        return (slug, f"{name} {value} < {limit}") if limit is not None and value < limit else None

    checks = [
        under(m["words"], t["min_doc_words"], "words", "gopher_too_few_words"),
        over(m["words"], t["max_doc_words"], "words", "gopher_too_many_words"),
        under(m["avg_word_length"], t["min_avg_word_length"], "mean word length", "gopher_short_words"),
        over(m["avg_word_length"], t["max_avg_word_length"], "mean word length", "gopher_long_words"),
        over(m["symbol_word_ratio"], t["max_symbol_word_ratio"], "symbols per word", "gopher_symbol_ratio"),
        over(m["bullet_lines_ratio"], t["max_bullet_lines_ratio"], "bullet lines", "gopher_bullet_lines"),
        over(m["ellipsis_lines_ratio"], t["max_ellipsis_lines_ratio"], "ellipsis lines", "gopher_ellipsis_lines"),
        under(m["alpha_words_ratio"], t["min_alpha_words_ratio"], "words with letters", "gopher_alpha_words"),
        under(m["stop_words"], t["min_stop_words"], "stop words", "gopher_stop_words"),
        over(m["dup_line_frac"], t["dup_line_frac"], "duplicated lines", "gopher_dup_lines"),
        over(m["dup_para_frac"], t["dup_para_frac"], "duplicated paragraphs", "gopher_dup_paragraphs"),
        over(m["dup_line_char_frac"], t["dup_line_char_frac"], "chars in duplicated lines", "gopher_dup_line_chars"),
        over(
            m["dup_para_char_frac"], t["dup_para_char_frac"], "chars in duplicated paragraphs", "gopher_dup_para_chars"
        ),
    ]
    for n, limit in sorted((t["top_n_grams"] or {}).items()):
        checks.append(over(m["top_n_grams"][int(n)], limit, f"top {n}-gram share", f"gopher_top_{n}_gram"))
    for n, limit in sorted((t["dup_n_grams"] or {}).items()):
        checks.append(over(m["dup_n_grams"][int(n)], limit, f"repeated {n}-gram share", f"gopher_dup_{n}_gram"))
    checks += [
        ("c4_lorem_ipsum", "contains 'lorem ipsum'") if t["c4_lorem_ipsum"] and m["lorem_ipsum"] else None,
        ("c4_curly_bracket", "contains '{'") if t["c4_curly_bracket"] and m["curly_bracket"] else None,
        under(m["sentences"], t["c4_min_sentences"], "sentences", "c4_too_few_sentences"),
    ]
    punct = t["fineweb_line_punct_ratio"]
    if punct is not None and m["line_punct_ratio"] <= punct:
        checks.append(("fineweb_line_punct", f"lines ending in punctuation {m['line_punct_ratio']} <= {punct}"))
    short = t["fineweb_short_line_ratio"]
    if short is not None and m["short_line_ratio"] >= short:
        checks.append(("fineweb_short_lines", f"short lines {m['short_line_ratio']} >= {short}"))
    checks += [
        over(m["char_dup_ratio"], t["fineweb_char_dup_ratio"], "chars in duplicated lines", "fineweb_dup_line_chars"),
        over(m["newline_ratio"], t["fineweb_newline_ratio"], "newlines per word", "fineweb_newline_ratio"),
    ]
    return next((c for c in checks if c is not None), None)


@register("filter.quality", version=1, config=QualityConfig)
def quality_batch(batch: Batch, config: QualityConfig) -> Batch:
    """Gopher, C4 and FineWeb quality rules (profiles web, company_docs); signals kept on every row."""
    thresholds = config.thresholds()
    short = thresholds["fineweb_short_line_length"] or 30
    signals, reasons, details = [], [], []
    for text, sig in zip(batch["text"], batch["signals"], strict=True):
        m = measure(text, short)
        failure = first_failure(m, thresholds)
        merged = json.loads(sig or "{}")
        merged["quality"] = m
        signals.append(dumps(merged))
        reasons.append(failure[0] if failure else "")
        details.append(failure[1] if failure else "")
    return {**batch, "signals": signals, REJECT_REASON: reasons, REJECT_DETAIL: details}
