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
    documents = read_jsonl(dataset_dir / "documents" / "documents.jsonl")
    return {
        "dataset": str(dataset_dir),
        "counts": {name: dict(sorted(Counter(ex["kind"] for ex in rows).items())) for name, rows in splits.items()},
        "lengths": _lengths(splits, documents),
        "labels": _label_counts(documents),
        "duplicate_clusters": _clusters(rejects, sample),
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


def shortcut_audit(path: Path, kind: str | None = None) -> dict[str, Any]:
    """stats.json's shortcut audit (curate.shortcuts), its rows only of ``kind`` if given."""
    from curate.errors import OutputError

    dataset_dir = check_dataset_dir(path)
    section = json.loads((dataset_dir / "stats.json").read_text()).get("shortcuts")
    if section is None:
        raise OutputError(
            f"{dataset_dir / 'stats.json'} has no shortcut audit: it was curated by an older gristmill; run "
            "`gristmill curate` on its recipe again (the checkpoints make it quick)"
        )
    if kind:
        for key in ("giveaways", "content", "frames"):
            section[key] = [r for r in section[key] if r["kind"] == kind]
    return {"dataset": str(dataset_dir), **section}


def print_shortcuts(console, data: dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from curate.shortcuts import warning

    t = data["thresholds"]
    rule = f"precision >= {t['min_precision']}, support >= {t['min_support']}, 1-{t['max_n']} words"
    console.print(f"[bold]{data['dataset']}[/]  training prompts per kind: "
                  + ", ".join(f"{k} {n}" for k, n in data["prompts"].items()))  # fmt: skip
    for key, title in (("giveaways", "give-aways: words only one kind's prompts use"),
                       ("content", "content: words that carry the behaviour (expected)")):  # fmt: skip
        table = Table("kind", "n-gram", "support", "prompts with it", "precision", title=f"{title} ({rule})")
        rows = data[key] if key == "giveaways" else [r for r in data[key] if r["n"] == 1][:40]
        for r in rows:
            table.add_row(r["kind"], Text(r["ngram"]), str(r["support"]), str(r["prompts"]), f"{r['precision']:.2f}")
        console.print(table if rows else f"{title}: none")
    frames = Table("kind", "frame", "train prompts", "other kinds using it", title="policy request frames")
    for f in sorted(data["frames"], key=lambda f: (bool(f["other_kinds"]), f["kind"], f["frame"])):
        others = ", ".join(f"{k} {n}" for k, n in f["other_kinds"].items())
        frames.add_row(f["kind"], Text(f["frame"]), str(f["train"]), Text(others) if others else Text("none", "red"))
    console.print(frames)
    line = warning(data)
    console.print(Text(line or "shortcut audit: clean", "yellow" if line else "green"))


def _percentiles(values: list[int]) -> dict[str, int]:
    if not values:
        return {"p50": 0, "p90": 0, "max": 0}
    ordered = sorted(values)
    return {
        "p50": ordered[len(ordered) // 2],
        "p90": ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))],
        "max": ordered[-1],
    }


def _lengths(splits: dict[str, list], documents: list[dict]) -> dict[str, dict[str, int]]:
    """Words per example by kind (all turns) and per document row."""
    per_kind: dict[str, list[int]] = {}
    for rows in splits.values():
        for ex in rows:
            per_kind.setdefault(ex["kind"], []).append(sum(len(m["content"].split()) for m in ex["messages"]))
    out = {f"{kind} examples": _percentiles(v) for kind, v in sorted(per_kind.items())}
    out["document rows"] = _percentiles([len(d["text"].split()) for d in documents])
    return out


def _label_counts(documents: list[dict]) -> dict[str, dict[str, int]]:
    """How document rows spread over each label's values (reading level in bands of 4 grades)."""
    counts: dict[str, Counter] = {}
    for d in documents:
        for key, value in json.loads(d.get("labels") or "{}").items():
            if key == "reading_level" and isinstance(value, (int, float)):
                low = int(value // 4 * 4)
                value = f"{low}-{low + 3}"
            counts.setdefault(key, Counter())[str(value)] += 1
    return {key: dict(c.most_common()) for key, c in sorted(counts.items())}


def _clusters(rejects: list[dict], top: int) -> list[dict[str, Any]]:
    """The largest groups of exact and near duplicates: the kept row and the rows dropped as its copies."""
    groups: dict[str, list[dict]] = {}
    for r in rejects:
        slug, _, kept = r["reason"].partition(":")
        if slug in ("exact_duplicate_of", "near_duplicate_of") and kept:
            groups.setdefault(kept, []).append(r)
    largest = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))[: max(top, 1)]
    return [
        {"kept": kept, "copies": len(items), "dropped": [f"{r['source']} ({r['detail']})" for r in items[:5]]}
        for kept, items in largest
    ]


def print_inspection(console, data: dict[str, Any]) -> None:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console.print(f"[bold]{data['dataset']}[/]")
    counts = Table("kind", "train", "test", title="examples")
    for k in sorted(set(data["counts"]["train"]) | set(data["counts"]["test"])):
        counts.add_row(k, str(data["counts"]["train"].get(k, 0)), str(data["counts"]["test"].get(k, 0)))
    console.print(counts)
    lengths = Table("rows", "p50 words", "p90 words", "max words", title="lengths")
    for name, p in data["lengths"].items():
        lengths.add_row(name, str(p["p50"]), str(p["p90"]), str(p["max"]))
    console.print(lengths)
    if data["labels"]:
        labels = Table("label", "values (document rows)", title="labels")
        for key, values in data["labels"].items():
            labels.add_row(key, Text(", ".join(f"{v} {n}" for v, n in values.items())))
        console.print(labels)
    if data["duplicate_clusters"]:
        clusters = Table("kept row", "copies dropped", "dropped (source, detail)", title="largest duplicate clusters")
        for c in data["duplicate_clusters"]:
            clusters.add_row(Text(c["kept"]), str(c["copies"]), Text("\n".join(c["dropped"])))
        console.print(clusters)
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
