"""What every executor provides. Batch functions are pure, so the same function runs on any executor and the
output never depends on where or in how many pieces it ran (tests/test_stages.py, tests/test_ray.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Batch = dict[str, list]


class Executor:
    """``map_batches`` over a ``datasets.Dataset`` of rows and ``candidate_pairs`` of MinHash signatures."""

    name = "base"

    def __init__(self, num_proc: int = 1):
        self.num_proc = num_proc

    def map_batches(
        self,
        dataset,
        fn: Callable[[Batch], Batch],
        *,
        batch_size: int,
        scratch_dir: Path,
        fingerprint: str,
        on_batch: Callable[[int], None] | None = None,
    ):
        """``fn`` over every batch of ``dataset``, in input order; a pyarrow Table of the results."""
        raise NotImplementedError

    def in_driver(self) -> Executor:
        """The executor for stages that must run in this process (LLM stages share the run's one client)."""
        return type(self)(num_proc=1)

    def candidate_pairs(self, sigs, bands: int, rows: int):
        """Index pairs (i < j) of signature rows that share a bucket in at least one band."""
        from curate.stages.dedupe.minhash import candidate_pairs

        return candidate_pairs(sigs, bands, rows)
