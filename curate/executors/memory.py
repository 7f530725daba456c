"""The in-memory executor: batches mapped in this process, no files. It runs the same contract as every other
executor (steps.apply_stage), for previews (``gristmill render``) and tests; ``run_stage_in_memory`` is the
convenience over lists of rows."""

from __future__ import annotations

from typing import Any

from curate.executors.base import Executor

Row = dict[str, Any]


class MemoryExecutor(Executor):
    name = "memory"

    def map_batches(self, dataset, fn, *, batch_size, scratch_dir=None, fingerprint="", on_batch=None):
        import pyarrow as pa

        tables = []
        for start in range(0, len(dataset), batch_size):
            batch = dataset[start : start + batch_size]
            tables.append(pa.Table.from_pydict(fn(batch)))
            if on_batch is not None:
                on_batch(len(next(iter(batch.values()), [])))
        return pa.concat_tables(tables, promote_options="default") if tables else pa.table({})


def run_stage_in_memory(
    stage, config, rows: list[Row], batch_size: int = 256, llm=None
) -> tuple[list[Row], list[Row]]:
    """(kept rows, dropped rows with ``_reject_reason`` and ``_reject_detail``), in input order. ``llm`` is the
    open LLM runtime an LLM stage needs."""
    from datasets import Dataset

    from curate.rows import REJECT_DETAIL, REJECT_REASON, SCRATCH_PREFIX
    from curate.steps import StageContext, apply_stage

    if not rows:
        return [], []
    table = apply_stage(
        Dataset.from_list(rows), stage, config, StageContext(MemoryExecutor(), llm), batch_size=batch_size
    )
    kept, dropped = [], []
    for row in table.to_pylist():
        reason, detail = row.get(REJECT_REASON, ""), row.get(REJECT_DETAIL, "")
        clean = {k: v for k, v in row.items() if not k.startswith(SCRATCH_PREFIX)}
        if reason:
            dropped.append({**clean, REJECT_REASON: reason, REJECT_DETAIL: detail})
        else:
            kept.append(clean)
    return kept, dropped
