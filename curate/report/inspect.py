"""``gristmill inspect``: what is in a dataset directory, as data (for --json) and as rich tables."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from curate.output import check_dataset_dir, read_jsonl


def inspect_dataset(
    path: Path, *, kind: str | None = None, reason: str | None = None, sample: int = 3
) -> dict[str, Any]:
    dataset_dir = check_dataset_dir(path)
    stats = json.loads((dataset_dir / "stats.json").read_text())
    splits = {name: read_jsonl(dataset_dir / f"{name}.jsonl") for name in ("train", "test")}
    rejects = read_jsonl(dataset_dir / "rejects" / "rejects.jsonl")
    rng = random.Random(0)
    examples: dict[str, list] = {}
    for k in sorted({ex["kind"] for rows in splits.values() for ex in rows}):
        if kind and k != kind:
            continue
        pool = [ex for rows in splits.values() for ex in rows if ex["kind"] == k]
        examples[k] = [
            {"id": ex["id"], "template": ex["template"], "source_ids": ex["source_ids"], "messages": ex["messages"]}
            for ex in rng.sample(pool, min(sample, len(pool)))
        ]
    by_reason: dict[str, list] = {}
    for r in rejects:
        slug = r["reason"].split(":", 1)[0]
        if reason and slug != reason:
            continue
        by_reason.setdefault(slug, []).append(r)
    return {
        "dataset": str(dataset_dir),
        "counts": {name: dict(sorted(Counter(ex["kind"] for ex in rows).items())) for name, rows in splits.items()},
        "funnel": [{k: s[k] for k in ("step", "rows_in", "rows_out", "rejected")} for s in stats["steps"]],
        "rejects": {
            slug: {
                "count": len(items),
                "examples": [{k: r[k] for k in ("id", "source", "stage", "reason", "detail")} for r in items[:sample]],
            }
            for slug, items in sorted(by_reason.items())
        },
        "examples": examples,
    }


def print_inspection(console, data: dict[str, Any]) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console.print(f"[bold]{data['dataset']}[/]")
    counts = Table("kind", "train", "test", title="examples")
    for k in sorted(set(data["counts"]["train"]) | set(data["counts"]["test"])):
        counts.add_row(k, str(data["counts"]["train"].get(k, 0)), str(data["counts"]["test"].get(k, 0)))
    console.print(counts)
    funnel = Table("step", "rows in", "rows out", "dropped by reason", title="drop funnel")
    for s in data["funnel"]:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(s["rejected"].items())) or "-"
        funnel.add_row(s["step"], str(s["rows_in"]), str(s["rows_out"]), reasons)
    console.print(funnel)
    rejects = Table("reason", "count", "examples (source: detail)", title="rejects", show_lines=True)
    # Document text is data: it goes in as Text, never as rich markup (a "[bold]" in a document stays literal).
    for slug, info in data["rejects"].items():
        shown = "\n".join(f"{r['source'] or r['id']}: {r['detail']}" for r in info["examples"])
        rejects.add_row(Text(slug), str(info["count"]), Text(shown))
    console.print(rejects)
    for k, items in data["examples"].items():
        for ex in items:
            body = Text()
            for i, m in enumerate(ex["messages"]):
                body.append(("\n\n" if i else "") + m["role"], style="bold")
                body.append(": " + m["content"][:600])
            title = Text(f"{k} · {ex['template']} · {', '.join(ex['source_ids']) or 'no source'}")
            console.print(Panel(body, title=title, title_align="left"))
