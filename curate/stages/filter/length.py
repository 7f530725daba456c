"""filter.length: drop rows outside a word-count range."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from curate.rows import REJECT_DETAIL, REJECT_REASON
from curate.stages.registry import Batch, register
from curate.text import count_words


class LengthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_words: int = Field(0, ge=0, description="Rows with fewer words are dropped as too_short.")
    max_words: int | None = Field(None, ge=1, description="Rows with more words are dropped as too_long; null: none.")

    @model_validator(mode="after")
    def _range(self) -> LengthConfig:
        if self.max_words is not None and self.max_words < self.min_words:
            raise ValueError(f"max_words ({self.max_words}) is below min_words ({self.min_words}); raise max_words")
        return self


@register("filter.length", version=1, config=LengthConfig)
def length_batch(batch: Batch, config: LengthConfig) -> Batch:
    """Drop rows with fewer than min_words or more than max_words words."""
    reasons, details = [], []
    for text in batch["text"]:
        words = count_words(text)
        if words < config.min_words:
            reasons.append("too_short")
            details.append(f"{words} words, below min_words={config.min_words}")
        elif config.max_words is not None and words > config.max_words:
            reasons.append("too_long")
            details.append(f"{words} words, above max_words={config.max_words}")
        else:
            reasons.append("")
            details.append("")
    return {**batch, REJECT_REASON: reasons, REJECT_DETAIL: details}
