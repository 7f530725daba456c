"""Content rules: a blocklist of terms (competitor names, internal code names) that no response may mention.

Terms come from a list, a file (one term per line, ``#`` comments), or both. Matching is case-insensitive on
whole words: "Orion" blocks "orion's" but not "Orionid". The same matcher serves the ``filter.blocklist``
document stage (drop, redact or label) and the check on generated responses in mix (a response naming a term
is rejected with the term as its reason).
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator

from curate.config import Strict
from curate.errors import RecipeError


def read_terms_file(path: str) -> list[str]:
    file = Path(path)
    if not file.is_file():
        raise RecipeError(f"blocklist file {path!r} does not exist; give an existing file of terms, one per line")
    terms = []
    for line in file.read_text(encoding="utf-8").splitlines():
        term = line.split("#", 1)[0].strip()
        if term:
            terms.append(term)
    return terms


class Blocklist(Strict):
    """Terms no response may mention. ``file`` is read when the recipe is validated, into ``terms``, so the
    checkpoint key and the resolved recipe hold the actual terms."""

    terms: list[str] = Field(default_factory=list, description="Blocked terms (case-insensitive, whole words).")
    file: str | None = Field(None, description="A file of more terms, one per line; '#' starts a comment.")

    @model_validator(mode="after")
    def _load_file(self):
        if self.file:
            merged = dict.fromkeys([*self.terms, *read_terms_file(self.file)])
            self.terms = list(merged)
            self.file = None  # read once: the terms now carry it (and re-validating the resolved recipe works)
        self.terms = [t.strip() for t in self.terms if t.strip()]
        return self

    @cached_property
    def pattern(self) -> re.Pattern | None:
        if not self.terms:
            return None
        # a space of a term matches any run of whitespace: a term wrapped across two lines is still found
        alternatives = sorted((r"\s+".join(map(re.escape, t.split())) for t in self.terms), key=len, reverse=True)
        return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)

    def find(self, text: str) -> list[str]:
        """The blocked terms ``text`` mentions, as listed (not as written), in first-seen order."""
        if self.pattern is None:
            return []
        return list(dict.fromkeys(self.term_of(m.group(0)) for m in self.pattern.finditer(text)))

    def term_of(self, written: str) -> str:
        """The listed term a match stands for ("project  bluebird" is "Project Bluebird")."""
        by_words = {" ".join(t.lower().split()): t for t in self.terms}
        return by_words.get(" ".join(written.lower().split()), written)
