"""Executors: objects that run a stage's batch function over a table of document rows (``map_batches``) and
spread the one parallel part of a global ``decide`` phase (``candidate_pairs``, MinHash band grouping).

- ``local`` (local.py): ``datasets.map`` over memory-mapped Arrow, ``num_proc`` processes; pairs on the driver;
- ``ray`` (ray.py): Ray Data ``map_batches``; band grouping in Ray tasks;
- ``memory`` (memory.py): batches in this process, for previews (``gristmill render``) and tests.

Choosing one is a lookup in ``EXECUTORS``. The contract around them (scratch columns, the decide phase, the
split into kept rows and rejects) is steps.py's, the same for every executor.
"""

from __future__ import annotations

from curate.executors.base import Executor
from curate.executors.local import LocalExecutor
from curate.executors.memory import MemoryExecutor
from curate.executors.ray import RayExecutor

EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor, "memory": MemoryExecutor}


def executor_for(name: str, num_proc: int = 1) -> Executor:
    return EXECUTORS[name](num_proc=num_proc)


__all__ = ["EXECUTORS", "Executor", "executor_for"]
