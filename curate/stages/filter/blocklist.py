"""filter.blocklist: documents that mention a blocked term (a competitor, an internal code name) are dropped,
redacted, or kept with the terms in ``labels.blocked_terms``. Title and text are both checked.

A redaction trains, so it must read as text: each term becomes its ``replacements`` entry or ``replacement``
("an internal fabric"), and with neither, the sentence that names it is removed (a heading or table row naming it
goes whole; a title loses the term). A placeholder such as ``<BLOCKED>`` is refused: the model would learn to
write it.
"""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import Field, field_validator

from curate.blocklist import Blocklist
from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register
from curate.text import drop_sentences

_PLACEHOLDER = re.compile(r"<[^<>]*>|\[[A-Z_]+\]")


class BlocklistConfig(Blocklist):
    action: Literal["drop", "redact", "label"] = Field(
        "redact",
        description="drop: reject the row; redact: replace each term, or remove the sentence naming it; label: "
        "keep, list the terms.",
    )
    replacement: str | None = Field(
        None,
        description="What a redacted term becomes, as words that read naturally ('an internal fabric'); null: the "
        "sentence naming it is removed.",
    )
    replacements: dict[str, str] = Field(
        default_factory=dict, description="Per term, what it becomes ({Project Bluebird: our recycled fabric})."
    )

    @field_validator("replacement")
    @classmethod
    def _reads_as_text(cls, value: str | None) -> str | None:
        if value is not None:
            _check_words(value)
        return value

    @field_validator("replacements")
    @classmethod
    def _all_read_as_text(cls, value: dict[str, str]) -> dict[str, str]:
        for words in value.values():
            _check_words(words)
        return value

    def redacted(self, text: str, *, title: bool = False) -> str:
        """``text`` with every term replaced, or the sentences naming it removed (in a title, the term alone)."""
        if self.pattern is None:
            return text
        own = {" ".join(t.lower().split()): w for t, w in self.replacements.items()}

        def swap(m: re.Match) -> str:
            words = own.get(" ".join(m.group(0).lower().split()), self.replacement)
            return m.group(0) if words is None else words

        text = self.pattern.sub(swap, text)
        left = Blocklist(terms=self.find(text)).pattern
        if left is None:
            return text
        if title:
            return " ".join(left.sub("", text).split()).strip(" -:,")
        return drop_sentences(text, left)


def _check_words(words: str) -> None:
    if not words.strip() or _PLACEHOLDER.search(words):
        raise ValueError(
            f"{words!r} would train the model to write a placeholder; give words that read naturally in a "
            "sentence ('an internal fabric'), or leave replacement null to remove the sentence"
        )


@register("filter.blocklist", version=2, config=BlocklistConfig)
def blocklist_batch(batch: Batch, config: BlocklistConfig) -> Batch:
    """Drop, redact or label rows that mention a blocked term (whole words, case-insensitive)."""
    out = {**batch, "text": list(batch["text"]), "title": list(batch["title"]), "labels": list(batch["labels"])}
    reasons, details, counts = [], [], []
    for i, (text, title) in enumerate(zip(batch["text"], batch["title"], strict=True)):
        found = config.find(f"{title}\n{text}")
        counts.append(len(found))
        reasons.append("blocked_term" if found and config.action == "drop" else "")
        details.append(f"mentions {', '.join(repr(t) for t in found)}" if reasons[-1] else "")
        if found and config.action == "redact":
            out["text"][i] = config.redacted(text)
            out["title"][i] = config.redacted(title, title=True)
        elif found and config.action == "label":
            labels = json.loads(out["labels"][i] or "{}")
            labels["blocked_terms"] = found
            out["labels"][i] = dumps(labels)
    return {**out, REJECT_REASON: reasons, REJECT_DETAIL: details, "_count_blocked_rows": [int(c > 0) for c in counts]}
