"""The local executor: ``datasets.Dataset.map`` over memory-mapped Arrow, ``num_proc`` processes.

``map`` with ``num_proc`` keeps shard order, so the output order is the input order whatever the process count.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from curate.executors.base import Batch, Executor


def _counted(fn: Callable[[Batch], Batch], on_batch: Callable[[int], None]) -> Callable[[Batch], Batch]:
    def call(batch: Batch) -> Batch:
        out = fn(batch)
        on_batch(len(next(iter(batch.values()), [])))
        return out

    return call


class LocalExecutor(Executor):
    name = "local"

    def map_batches(self, dataset, fn, *, batch_size, scratch_dir: Path, fingerprint, on_batch=None):
        parallel = self.num_proc > 1 and len(dataset) > batch_size
        if on_batch is not None and not parallel:  # progress only from the driver process
            fn = _counted(fn, on_batch)
        scratch_dir.mkdir(parents=True, exist_ok=True)
        mapped = dataset.map(
            fn,
            batched=True,
            batch_size=batch_size,
            num_proc=self.num_proc if parallel else None,
            remove_columns=dataset.column_names,
            cache_file_name=str(scratch_dir / "map.arrow"),
            load_from_cache_file=False,
            new_fingerprint=fingerprint,
        )
        return mapped.data.table
