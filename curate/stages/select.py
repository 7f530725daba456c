"""select.threshold: keep rows whose labels or signals pass thresholds; every drop names its rule.

Rules address values by path: ``labels.language``, ``signals.quality.avg_word_length``,
``signals.pii.email``. Changing a threshold here never recomputes a label or signal (dolma's split of
attributes and mixing), so trying another threshold is a cheap re-run of this stage alone.
"""

from __future__ import annotations

import json
import operator
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from curate.rows import REJECT_DETAIL, REJECT_REASON
from curate.stages.registry import Batch, register

_OPS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda a, b: a in b,
    "not_in": lambda a, b: a not in b,
}


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(description="labels.<key> or signals.<key>[.<key>...].")
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in", "not_in"] = Field(
        description="Comparison; the row keeps if true."
    )
    value: Any = Field(description="What the field is compared with (a list for in / not_in).")
    name: str | None = Field(None, description="Reason slug suffix; default from the field path.")
    missing: Literal["keep", "drop"] = Field("keep", description="What to do with rows that lack the field.")

    @field_validator("field")
    @classmethod
    def _root(cls, value: str) -> str:
        if value.split(".", 1)[0] not in ("labels", "signals") or "." not in value:
            raise ValueError(f"field {value!r} must start with labels. or signals. (labels.language, say)")
        return value

    @property
    def slug(self) -> str:
        return "select_" + re.sub(r"[^a-z0-9]+", "_", (self.name or self.field).lower()).strip("_")


class SelectConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(min_length=1, description="Every rule must pass for a row to be kept.")


def lookup(row_json: dict[str, dict], path: str) -> tuple[bool, Any]:
    root, *keys = path.split(".")
    node: Any = row_json[root]
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False, None
        node = node[key]
    return True, node


@register("select.threshold", version=1, config=SelectConfig)
def select_threshold(batch: Batch, config: SelectConfig) -> Batch:
    """Keep rows whose labels or signals pass every rule; a drop names the rule and the value."""
    reasons, details = [], []
    for labels, signals in zip(batch["labels"], batch["signals"], strict=True):
        data = {"labels": json.loads(labels or "{}"), "signals": json.loads(signals or "{}")}
        failure = None
        for rule in config.rules:
            found, value = lookup(data, rule.field)
            if not found:
                if rule.missing == "drop":
                    failure = (rule.slug, f"{rule.field} is missing")
                    break
                continue
            try:
                passed = _OPS[rule.op](value, rule.value)
            except TypeError:
                passed = False
            if not passed:
                failure = (rule.slug, f"{rule.field} = {value!r}, needs {rule.op} {rule.value!r}")
                break
        reasons.append(failure[0] if failure else "")
        details.append(failure[1] if failure else "")
    return {**batch, REJECT_REASON: reasons, REJECT_DETAIL: details}
