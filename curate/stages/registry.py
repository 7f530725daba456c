"""The stage registry: every stage is a ``family.name`` with a version, a pydantic config and a batch function.

A stage's batch function maps a batch of document rows (``dict[str, list]``) to a batch of document rows. It
drops a row by filling ``_reject_reason`` / ``_reject_detail``; the pipeline moves such rows to rejects/. Its
output must not depend on how rows are batched (tests/test_stages.py checks each registered stage).

Integer scratch columns named ``_count_<name>`` are summed into the step's ``counters`` in stats.json.

A *global* stage (dedupe) also has a ``decide`` phase. Its batch function returns only scratch columns
(signatures, prefixed ``_``), which the executor puts beside the unchanged rows; ``decide(columns, config,
context)`` then sees those columns, ``id`` and ``ordinal`` for all rows at once, as pyarrow ChunkedArrays in
row order (so it can hold them as compact numpy arrays), may fetch the text of chosen rows again
(``context.fetch_text``) and spread work on the executor (``context.executor.candidate_pairs``), and returns
one ``(reason, detail)`` or ``None`` per row.

Plain stages take ``(batch, config)``; only global and LLM stages receive the context (steps.StageContext):
an LLM stage's batch function is ``(batch, config, context)`` and calls ``context.llm``, the run's client.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from curate.errors import StageError

Batch = dict[str, list[Any]]
BatchFn = Callable[[Batch, Any], Batch]
# decide(columns, config, context): context.fetch_text(row indices) returns those rows' texts, for stages that
# must look at a few rows again (MinHash verification) without holding every text in memory.
DecideFn = Callable[[Batch, Any, Any], list[tuple[str, str] | None]]


@dataclass(frozen=True)
class Stage:
    name: str
    version: int
    config: type[BaseModel]
    batch: BatchFn
    decide: DecideFn | None = None
    expands: bool = False  # emits rows per input rather than one row per input (chunking)
    # A scrubbing stage (pii.redact) gives scrubs(reject envelope, config) -> envelope; once it has run, the
    # pipeline rewrites the rejects of earlier steps through it and deletes their checkpointed rows.
    scrubs: Callable[[dict, Any], dict] | None = None
    # Calls the LLM: its batch function takes the context, runs in the driver process (num_proc 1), so one
    # client, limiter, budget and cache serve the whole run; its checkpoint key includes the recipe's llm section.
    uses_llm: bool = False

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def summary(self) -> str:
        return (self.batch.__doc__ or "").strip().splitlines()[0] if self.batch.__doc__ else ""


_REGISTRY: dict[str, dict[int, Stage]] = {}


def register(
    name: str,
    *,
    version: int,
    config: type[BaseModel],
    decide: DecideFn | None = None,
    expands: bool = False,
    scrubs: Callable[[dict, Any], dict] | None = None,
    uses_llm: bool = False,
) -> Callable[[BatchFn], BatchFn]:
    """Register the decorated batch function as stage ``name@version``."""
    if "." not in name:
        raise ValueError(f"stage names are family.name, got {name!r}")

    def wrap(fn: BatchFn) -> BatchFn:
        versions = _REGISTRY.setdefault(name, {})
        if version in versions:
            raise ValueError(f"stage {name}@{version} registered twice")
        versions[version] = Stage(name, version, config, fn, decide, expands, scrubs, uses_llm)
        return fn

    return wrap


def get_stage(name: str, version: int | None = None) -> Stage:
    """The stage ``name`` at ``version`` (the newest when None), or a StageError that lists what exists."""
    versions = _REGISTRY.get(name)
    if not versions:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise StageError(f"unknown stage {name!r}.{hint} Run `gristmill stages` to list the registered stages.")
    if version is None:
        return versions[max(versions)]
    if version not in versions:
        known = ", ".join(f"{name}@{v}" for v in sorted(versions))
        raise StageError(f"stage {name} has no version {version}; registered: {known}.")
    return versions[version]


def all_stages() -> list[Stage]:
    return [versions[v] for name in sorted(_REGISTRY) for versions in [_REGISTRY[name]] for v in sorted(versions)]
