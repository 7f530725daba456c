"""Run one stage over a list of rows in this process: for previews (`gristmill render`) and tests.

It follows the same contract as the local executor (batches, then the global ``decide`` phase over all rows),
so tests can check that a stage's output does not depend on the batch size.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from curate.rows import REJECT_DETAIL, REJECT_REASON, SCRATCH_PREFIX

Row = dict[str, Any]


def run_stage_in_memory(stage, config, rows: list[Row], batch_size: int = 256) -> tuple[list[Row], list[Row]]:
    """(kept rows, dropped rows with ``_reject_reason`` and ``_reject_detail``), in input order."""
    out: list[Row] = []
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        batch = {key: [r[key] for r in chunk] for key in chunk[0]}
        result = stage.batch(batch, config)
        if stage.decide is not None:  # a global stage's batch phase only adds scratch columns
            result = {**batch, **result}
        out += [{key: values[i] for key, values in result.items()} for i in range(len(next(iter(result.values()))))]
    if stage.decide is not None and out:
        names = [k for k in out[0] if k in ("id", "ordinal") or k.startswith(SCRATCH_PREFIX)]
        columns = {k: pa.chunked_array([pa.array([r[k] for r in out])]) for k in names}
        decisions = stage.decide(columns, config, lambda idx: [out[i]["text"] for i in idx])
        for row, decision in zip(out, decisions, strict=True):
            row[REJECT_REASON], row[REJECT_DETAIL] = decision or ("", "")
    kept, dropped = [], []
    for row in out:
        reason = row.get(REJECT_REASON, "")
        clean = {k: v for k, v in row.items() if not k.startswith(SCRATCH_PREFIX)}
        if reason:
            dropped.append({**clean, REJECT_REASON: reason, REJECT_DETAIL: row.get(REJECT_DETAIL, "")})
        else:
            kept.append(clean)
    return kept, dropped
