"""filter.quality: the Gopher quality and repetition rules, the C4 rules and the FineWeb rules.

Every threshold is a config field whose default is the published value (sources below), with the measures and
comparisons of datatrove's ``gopher_quality_filter.py``, ``gopher_repetition_filter.py``, ``c4_filters.py``
and ``fineweb_quality_filter.py``; ``bench/quality_parity.py`` runs both on the same documents, rule by rule,
and docs/recipes.md names where gristmill departs and why (adapted from datatrove, not a copy of it). A
``profile`` picks which rules run and at what thresholds: ``web`` is the published set; ``company_docs`` keeps
the rules that catch junk in company documents and switches off those that punish short FAQ answers, tables,
lists and API docs. Any field set in the recipe overrides the profile; ``disable`` turns rules off by name.
Measured values go to ``signals.quality`` on kept and dropped rows alike, so a threshold can be changed later
with ``select.threshold`` without measuring again.

Words are the tokens of spaCy's English tokenizer (which datatrove uses), approximated by one regular
expression (``tokens``): punctuation is split off as tokens of its own, contractions split (do|n't), and
abbreviations, decimals, URLs and e-mail addresses stay whole. No model, no spaCy install.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any, Literal

import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register
from curate.text import split_sentences

# Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher", appendix A.
STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("•", "-")  # what datatrove counts as a bullet line
_ELLIPSES = ("...", "…")
# Lines that end a sentence (FineWeb): Unicode's Sentence_Terminal characters, as datatrove's list.
_TERMINAL = regex.compile(r"\p{Sentence_Terminal}$")
_C4_END = (".", "?", "!", '"', "'")  # C4 keeps lines ending in these (and not in "...")
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_POLICY = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
_TOKEN = re.compile(
    r"""https?://\S+?(?=[.,;:!?)\]"']*(?:\s|$))      # a URL, without the punctuation after it
    | [\w.+-]+@\w+(?:\.\w+)+                       # an e-mail address
    | (?:[^\W\d_]\.){2,}                            # U.S., e.g.
    | \w+(?=n't\b) | n't\b                          # do|n't, ca|n't
    | '(?:s|re|ve|ll|d|m)\b                         # it|'s, we|'re
    | \w+(?:[.,:/]\d\w*|[.]\w+|['’](?!(?:s|re|ve|ll|d|m|t)\b)\w+)*  # 3.5x, 1,000, 10:30, api.html, O'Neil
    | \.{2,} | -{2,}                               # ... and --
    | [^\w\s]                                       # any other punctuation mark, on its own""",
    re.VERBOSE | re.IGNORECASE,
)


def tokens(text: str) -> list[str]:
    """The words and punctuation tokens of ``text``, as spaCy's English tokenizer splits them (closely)."""
    return _TOKEN.findall(text)


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
    "min_avg_word_length": 2.0,  # size tables: S, M, L, 89-96
    "max_bullet_lines_ratio": None,
    "min_stop_words": 0,
    "min_alpha_words_ratio": 0.1,  # tables of sizes and prices are numbers between pipes
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
    max_symbol_word_ratio: float | None = Field(
        None, description="Gopher: '#' per word, and ellipses per word (0.1 each)."
    )
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
        None, description="FineWeb: drop when a smaller share of lines ends a sentence (0.12)."
    )
    fineweb_short_line_ratio: float | None = Field(
        None, description="FineWeb: drop over this share of short lines (0.67)."
    )
    fineweb_short_line_length: int | None = Field(
        None, description="FineWeb: a short line has at most this many characters (30)."
    )
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


def _top_ngram_chars(words: list[str], n: int) -> int:
    """Characters of the most frequent n-gram (its words joined by spaces) times its count."""
    grams = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0
    gram, count = grams.most_common(1)[0]
    return len(gram) * count


def _dup_ngram_chars(words: list[str], n: int) -> int:
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
    return repeated


def _c4_lines(text: str) -> dict[str, Any]:
    """C4's line edits, then what its document rules look at: lines are kept that end in terminal punctuation
    (not "..."), have 3+ words and no word over 1,000 characters (citations like [1] removed first); of those,
    lines mentioning javascript or a site policy (cookies, terms of use) are dropped, and the sentences of the
    rest are counted."""
    lorem = curly = False
    sentences = policy = 0
    for raw in text.splitlines():
        line = raw.strip()
        words = line.split()
        if any(len(w) > 1000 for w in words):
            continue
        line = _CITATION.sub("", line)
        if not line.endswith(_C4_END) or line.endswith("...") or len(words) < 3:
            continue
        lowered = line.lower()
        lorem = lorem or "lorem ipsum" in lowered
        if "javascript" in lowered:
            continue
        curly = curly or "{" in line
        if any(p in lowered for p in _POLICY):
            policy += 1
            continue
        sentences += len(split_sentences(line))
    return {"lorem_ipsum": lorem, "curly_bracket": curly, "sentences": sentences, "policy_lines": policy}


def measure(text: str, short_line_length: int = 30) -> dict[str, Any]:
    """Every quality signal of one text, unrounded (the stage rounds what it stores)."""
    words = tokens(text)
    n_words = len(words) or 1
    real = [w for w in words if any(c.isalnum() for c in w)]  # tokens that are not only punctuation
    lines = text.splitlines() or [""]
    paragraphs = re.split(r"\n{2,}", text.strip())
    rep_lines = re.split(r"\n+", text)
    dup_lines, dup_line_chars = _dup_stats(rep_lines)
    dup_paras, dup_para_chars = _dup_stats(paragraphs)
    chars = len(text) or 1
    fw_lines = [line for line in text.split("\n") if line.strip()] or [""]
    lowered = {w.lower() for w in words}
    return {
        "words": len(real),
        "avg_word_length": sum(len(w) for w in real) / len(real) if real else 0.0,
        "hash_word_ratio": text.count("#") / n_words,
        "ellipsis_word_ratio": sum(text.count(e) for e in _ELLIPSES) / n_words,
        "bullet_lines_ratio": sum(line.lstrip().startswith(_BULLETS) for line in lines) / len(lines),
        "ellipsis_lines_ratio": sum(line.rstrip().endswith(_ELLIPSES) for line in lines) / len(lines),
        "alpha_words_ratio": sum(any(c.isalpha() for c in w) for w in words) / n_words,
        "stop_words": len(STOP_WORDS & lowered),
        "dup_line_frac": dup_lines / len(rep_lines),
        "dup_para_frac": dup_paras / len(paragraphs),
        "dup_line_char_frac": dup_line_chars / chars,
        "dup_para_char_frac": dup_para_chars / chars,
        "top_n_grams": {n: _top_ngram_chars(words, n) / chars for n in (2, 3, 4)},
        "dup_n_grams": {n: _dup_ngram_chars(words, n) / chars for n in range(5, 11)},
        **_c4_lines(text),
        "line_punct_ratio": sum(bool(_TERMINAL.search(line)) for line in fw_lines) / len(fw_lines),
        "short_line_ratio": sum(len(line) <= short_line_length for line in fw_lines) / len(fw_lines),
        "char_dup_ratio": _dup_stats(fw_lines)[1] / (len(text.replace("\n", "")) or 1),
        "newline_ratio": text.count("\n") / n_words,
    }


def first_failure(m: dict[str, Any], t: dict[str, Any]) -> tuple[str, str] | None:
    """The first rule the measurements fail, as (reason slug, detail), in the order the rules are listed."""

    def over(value, limit, name, slug):
        return (slug, f"{name} {value:.4g} > {limit}") if limit is not None and value > limit else None

    def under(value, limit, name, slug):
        return (slug, f"{name} {value:.4g} < {limit}") if limit is not None and value < limit else None

    symbols = t["max_symbol_word_ratio"]
    checks = [
        under(m["words"], t["min_doc_words"], "words", "gopher_too_few_words"),
        over(m["words"], t["max_doc_words"], "words", "gopher_too_many_words"),
        under(m["avg_word_length"], t["min_avg_word_length"], "mean word length", "gopher_short_words"),
        over(m["avg_word_length"], t["max_avg_word_length"], "mean word length", "gopher_long_words"),
        over(m["hash_word_ratio"], symbols, "'#' per word", "gopher_symbol_ratio"),
        over(m["ellipsis_word_ratio"], symbols, "ellipses per word", "gopher_symbol_ratio"),
        over(m["bullet_lines_ratio"], t["max_bullet_lines_ratio"], "bullet lines", "gopher_bullet_lines"),
        over(m["ellipsis_lines_ratio"], t["max_ellipsis_lines_ratio"], "ellipsis lines", "gopher_ellipsis_lines"),
        under(m["alpha_words_ratio"], t["min_alpha_words_ratio"], "words with letters", "gopher_alpha_words"),
        under(m["stop_words"], t["min_stop_words"], "stop words", "gopher_stop_words"),
        over(m["dup_para_frac"], t["dup_para_frac"], "duplicated paragraphs", "gopher_dup_paragraphs"),
        over(
            m["dup_para_char_frac"], t["dup_para_char_frac"], "chars in duplicated paragraphs", "gopher_dup_para_chars"
        ),
        over(m["dup_line_frac"], t["dup_line_frac"], "duplicated lines", "gopher_dup_lines"),
        over(m["dup_line_char_frac"], t["dup_line_char_frac"], "chars in duplicated lines", "gopher_dup_line_chars"),
    ]
    for n, limit in sorted((t["top_n_grams"] or {}).items()):
        checks.append(over(m["top_n_grams"][int(n)], limit, f"top {n}-gram share", f"gopher_top_{n}_gram"))
    for n, limit in sorted((t["dup_n_grams"] or {}).items()):
        checks.append(over(m["dup_n_grams"][int(n)], limit, f"repeated {n}-gram share", f"gopher_dup_{n}_gram"))
    checks += [
        ("c4_lorem_ipsum", "contains 'lorem ipsum'") if t["c4_lorem_ipsum"] and m["lorem_ipsum"] else None,
        ("c4_curly_bracket", "contains '{'") if t["c4_curly_bracket"] and m["curly_bracket"] else None,
        under(m["sentences"], t["c4_min_sentences"], "sentences in C4's kept lines", "c4_too_few_sentences"),
        under(m["line_punct_ratio"], t["fineweb_line_punct_ratio"], "lines ending a sentence", "fineweb_line_punct"),
        over(m["short_line_ratio"], t["fineweb_short_line_ratio"], "short lines", "fineweb_short_lines"),
        over(m["char_dup_ratio"], t["fineweb_char_dup_ratio"], "chars in duplicated lines", "fineweb_dup_line_chars"),
        over(m["newline_ratio"], t["fineweb_newline_ratio"], "newlines per word", "fineweb_newline_ratio"),
    ]
    return next((c for c in checks if c is not None), None)


def _rounded(value):
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


@register("filter.quality", version=2, config=QualityConfig)
def quality_batch(batch: Batch, config: QualityConfig) -> Batch:
    """Gopher, C4 and FineWeb quality rules (profiles web, company_docs); signals kept on every row."""
    thresholds = config.thresholds()
    short = thresholds["fineweb_short_line_length"] or 30
    signals, reasons, details = [], [], []
    for text, sig in zip(batch["text"], batch["signals"], strict=True):
        m = measure(text, short)
        failure = first_failure(m, thresholds)
        merged = json.loads(sig or "{}")
        merged["quality"] = {k: _rounded(v) for k, v in m.items()}
        signals.append(dumps(merged))
        reasons.append(failure[0] if failure else "")
        details.append(failure[1] if failure else "")
    return {**batch, "signals": signals, REJECT_REASON: reasons, REJECT_DETAIL: details}
