"""Executors run a stage's batch function over a whole table of document rows. Only ``local`` exists so far."""

from curate.executors.local import run_batch_function

__all__ = ["run_batch_function"]
