"""The Ray executor: the same registered batch functions through Ray Data's ``map_batches``, and MinHash band
grouping in Ray tasks.

It connects to the cluster in ``RAY_ADDRESS`` or starts a local Ray (usage stats off), hands the step's
input rows to Ray as Arrow, maps the stage's batch function over blocks of ``batch_size`` rows, and collects
the result in input order (``preserve_order``), so every later decision (a global ``decide`` phase, rejects,
the checkpoint) sees exactly the rows, in the order, that the local executor gives. Batch functions are pure
and depend on nothing but their rows and config (tests/test_stages.py checks it for every stage), so the
output is identical to the local executor's whatever the block boundaries are.

Stages that call the LLM never come here: they run in the driver, where the run's one client, limiter, budget
and cache live (see docs/scaling.md).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any

from curate.errors import StageError
from curate.executors.base import Executor
from curate.executors.local import LocalExecutor

INSTALL = "pip install 'gristmill[ray]'"


def ensure_ray():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise StageError(f"executor: ray needs Ray, which is not installed; install the extra: {INSTALL}") from None
    import logging

    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            cpus = os.environ.get("GRISTMILL_RAY_CPUS")
            ray.init(num_cpus=int(cpus) if cpus else None, **kwargs)
    logging.getLogger("ray.data").setLevel(logging.WARNING)  # per-dataset progress lines are not for the user
    return ray


def _apply(table, fn: Callable):
    import pyarrow as pa

    return pa.Table.from_pydict(fn(table.to_pydict()))


def _band_pairs(sigs, first: int, last: int, rows: int):
    from curate.stages.dedupe.minhash import candidate_pairs

    return candidate_pairs(sigs[:, first * rows : last * rows], last - first, rows)


class RayExecutor(Executor):
    name = "ray"

    def map_batches(self, dataset, fn, *, batch_size, scratch_dir=None, fingerprint="", on_batch=None):
        """``fn`` over ``dataset`` (a datasets.Dataset) on Ray; a pyarrow Table in input order."""
        import pyarrow as pa

        ray = ensure_ray()
        from ray.data import DataContext

        context = DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        source = ray.data.from_arrow(dataset.data.table.combine_chunks())
        mapped = source.map_batches(
            _apply, fn_args=(fn,), batch_size=batch_size, batch_format="pyarrow", zero_copy_batch=True
        )
        tables = [ray.get(ref) for ref in mapped.to_arrow_refs()]
        result = pa.concat_tables([t for t in tables if t.num_rows] or tables[:1], promote_options="default")
        if on_batch is not None:
            on_batch(result.num_rows)
        return result

    def in_driver(self) -> Executor:
        return LocalExecutor(num_proc=1)

    def candidate_pairs(self, sigs, bands: int, rows: int):
        """MinHash candidate pairs with the bands grouped in Ray tasks (the signature matrix shared once through
        the object store); the union of the tasks' pairs is exactly the pairs of all bands."""
        import numpy as np

        ray = ensure_ray()
        shared = ray.put(sigs)
        task = ray.remote(_band_pairs)
        groups = max(1, min(bands, int(ray.available_resources().get("CPU", 1)) * 2))
        cuts = np.linspace(0, bands, groups + 1).astype(int)
        parts = ray.get([task.remote(shared, int(a), int(b), rows) for a, b in itertools.pairwise(cuts) if b > a])
        parts = [p for p in parts if len(p)]
        if not parts:
            return np.empty((0, 2), dtype=np.int64)
        return np.unique(np.concatenate(parts), axis=0)
