"""filter.blocklist: documents that mention a blocked term (a competitor, an internal code name) are dropped,
redacted, or kept with the terms in ``labels.blocked_terms``. Title and text are both checked."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from curate.blocklist import Blocklist
from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register


class BlocklistConfig(Blocklist):
    action: Literal["drop", "redact", "label"] = Field(
        "redact", description="drop: reject the row; redact: replace each term; label: keep, list the terms."
    )
    placeholder: str = Field("<BLOCKED>", description="What a redacted term becomes.")


@register("filter.blocklist", version=1, config=BlocklistConfig)
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
            out["text"][i] = config.redact(text, config.placeholder)[0]
            out["title"][i] = config.redact(title, config.placeholder)[0]
        elif found and config.action == "label":
            labels = json.loads(out["labels"][i] or "{}")
            labels["blocked_terms"] = found
            out["labels"][i] = dumps(labels)
    return {**out, REJECT_REASON: reasons, REJECT_DETAIL: details, "_count_blocked_rows": [int(c > 0) for c in counts]}
