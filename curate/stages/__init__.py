"""Curation stages. Importing this package registers every built-in stage (see registry.py for the contract).

One module per stage family, or a folder per family with a module per stage (``filter/length.py`` is
``filter.length``)."""

from curate.stages import chunk, normalize, pii, select  # noqa: F401  (registration side effects)
from curate.stages.dedupe import exact, minhash  # noqa: F401
from curate.stages.filter import blocklist, length, quality  # noqa: F401
from curate.stages.label import heuristic, llm  # noqa: F401
from curate.stages.registry import Stage, all_stages, get_stage, register

__all__ = ["Stage", "all_stages", "get_stage", "register"]
