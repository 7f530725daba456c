"""stats.json: rows in and out and drops by reason per step, examples per kind and split, coverage per policy
category or schema, lengths, notes, and the LLM's usage."""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

from curate import __version__
from curate.llm.client import LLM_RETRIED
from curate.output import iter_rows
from curate.rows import AUDIT_REASONS
from curate.text import count_words


def build_stats(
    recipe, files, stats, generated: Counter, train, test, notes: list[str], documents: Path, wall: float
) -> tuple[dict[str, Any], dict[str, int]]:
    """(stats.json's content, kept document rows per source)."""
    sources: Counter = Counter()
    words = rows = 0
    for batch in iter_rows(documents, ["source", "text"]):
        sources.update(batch.column(0).to_pylist())
        words += sum(count_words(t) for t in batch.column(1).to_pylist())
        rows += batch.num_rows
    by_reason: Counter = Counter()
    for s in stats:
        by_reason.update(s.rejected)
        by_reason.update({k: n for k, n in s.counters.items() if k in AUDIT_REASONS})  # in rejects.jsonl, for audit
    stats_doc = {
        "gristmill_version": __version__,
        "recipe": recipe.name,
        "input": {"files": len(files), "documents": stats[0].rows_out},
        "steps": [asdict(s) for s in stats],
        "rejects": {"total": sum(by_reason.values()), "by_reason": dict(sorted(by_reason.items()))},
        "examples": {
            "generated": dict(sorted(generated.items())),
            "train": dict(sorted(Counter(ex["kind"] for ex in train).items())),
            "test": dict(sorted(Counter(ex["kind"] for ex in test).items())),
            "total": {"train": len(train), "test": len(test)},
        },
        "documents": {"rows": rows, "words": words},
        "chunking": [
            {"stage": stage.ref, "budget": config.budget()[0], "unit": config.unit}
            for stage, config in recipe.resolved_stages
            if stage.name == "chunk.sections"
        ],
        "tokens": {
            "counter": "whitespace words (no tokenizer configured)",
            "train": sum(count_words(m["content"]) for ex in train for m in ex["messages"]),
            "test": sum(count_words(m["content"]) for ex in test for m in ex["messages"]),
        },
        "notes": notes,
        "wall_seconds": round(time.perf_counter() - wall, 3),
    }
    stats_doc["coverage"] = coverage(train, test)
    return stats_doc, dict(sources)


def llm_stats(recipe, stats: list, runtime) -> dict[str, Any]:
    usage = runtime.usage()
    failed = sum(s.rejected.get(reason, 0) for s in stats for reason in LLM_RETRIED)
    unsent = sum(s.rejected.get("budget_exhausted", 0) for s in stats)
    rows = sum(s.rows_in for s in stats if s.step.startswith("label.llm")) + sum(
        s.counters.get("llm_rows", 0) for s in stats
    )
    return {"model": recipe.llm.model, "usage": usage, "failed_rows": failed, "unsent_rows": unsent, "llm_rows": rows}


def coverage(train: list[dict[str, Any]], test: list[dict[str, Any]]) -> dict[str, Any]:
    """Per behaviour kind, examples per policy category (or schema, or entity type) in each split."""
    out: dict[str, Any] = {}
    for split, rows in (("train", train), ("test", test)):
        for ex in rows:
            meta = json.loads(ex["meta"] or "{}")
            facet = meta.get("category") or meta.get("schema") or meta.get("entity_type")
            if facet:
                cell = out.setdefault(ex["kind"], {}).setdefault(facet, {"train": 0, "test": 0})
                cell[split] += 1
    return {kind: dict(sorted(v.items())) for kind, v in sorted(out.items())}
