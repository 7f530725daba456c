"""Curation stages. Importing this package registers every built-in stage (see registry.py for the contract)."""

from curate.stages import blocklist, chunk, dedupe, filters, label, label_llm, minhash, normalize, pii, quality, select  # noqa: F401  (registration side effects)
from curate.stages.registry import Stage, all_stages, get_stage, register

__all__ = ["Stage", "all_stages", "get_stage", "register"]
