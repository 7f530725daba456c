"""The local executor: ``datasets.Dataset.map`` over memory-mapped Arrow, ``num_proc`` processes.

Batch functions are pure, so the same function runs here and on any other executor; ``map`` with
``num_proc`` keeps shard order, so the output order is the input order whatever the process count.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _call(fn: Callable, config: Any, batch: dict[str, list]) -> dict[str, list]:
    return fn(dict(batch), config)


def run_batch_function(
    dataset,
    fn: Callable,
    config: Any,
    *,
    batch_size: int,
    num_proc: int,
    scratch_dir: Path,
    fingerprint: str,
    on_batch: Callable[[int], None] | None = None,
):
    """Apply ``fn(batch, config)`` to every batch; returns the resulting pyarrow Table (backed by scratch_dir)."""
    call = functools.partial(_call, fn, config)
    if on_batch is not None and num_proc == 1:  # progress only from the driver process

        def call(batch, _inner=call):
            out = _inner(batch)
            on_batch(len(next(iter(batch.values()), [])))
            return out

    scratch_dir.mkdir(parents=True, exist_ok=True)
    mapped = dataset.map(
        call,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc if num_proc > 1 and len(dataset) > batch_size else None,
        remove_columns=dataset.column_names,
        cache_file_name=str(scratch_dir / "map.arrow"),
        load_from_cache_file=False,
        new_fingerprint=fingerprint,
    )
    return mapped.data.table
