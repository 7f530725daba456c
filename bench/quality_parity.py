"""filter.quality's web profile against datatrove's Gopher, C4 and FineWeb filters, rule by rule, in one run.

    python bench/quality_parity.py [--docs 2000] [--corpus-docs 20000] [--show 3]

The documents: --docs drawn (seeded) from the planted corpus of bench/dedup_corpus.py (--corpus-docs built),
plus every document of sample_data/docs as gristmill reads it. Each rule runs alone on each side: gristmill's
``first_failure`` with only that threshold set, and datatrove's filter (installed in bench/.venv-datatrove by
bench/dedup.py, created on first use) with every other check of that filter switched off. The table gives,
per rule, how often both keep or both drop, and the documents where they disagree; --show prints a few.
datatrove's decisions are cached under bench/data/ by the documents' hash and datatrove's version (it takes
about ten minutes on 2 cores; gristmill's side takes seconds), so gristmill's side can be iterated on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from dedup import DT_VENV, ensure_datatrove  # noqa: E402
from dedup_corpus import build  # noqa: E402

from curate.stages.filter.quality import WEB, first_failure, measure  # noqa: E402


def rule_thresholds() -> dict[str, dict]:
    """{rule name (as datatrove's side names it): thresholds with only that rule on}."""
    off = {key: None for key in WEB}
    off["fineweb_short_line_length"] = WEB["fineweb_short_line_length"]
    rules = {}
    for key, value in WEB.items():
        if key == "fineweb_short_line_length":
            continue
        if key in ("top_n_grams", "dup_n_grams"):
            for n, limit in value.items():
                rules[f"{key.split('_')[0]}_{n}_gram"] = {**off, key: {n: limit}}
        else:
            rules[key] = {**off, key: value}
    return rules


def documents(n_docs: int, corpus_docs: int) -> list[dict]:
    from curate.readers import discover, read_documents
    from curate.recipe import FieldsSection

    corpus = build(corpus_docs)
    picked = random.Random(0).sample(corpus, min(n_docs, len(corpus)))
    docs = [{"id": d["id"], "text": d["text"]} for d in picked]
    sample = read_documents(discover([str(HERE.parent / "sample_data" / "docs")]), FieldsSection())
    return docs + [{"id": r["id"], "text": r["text"]} for r in sample.rows]


def datatrove_decisions(docs: list[dict]) -> tuple[dict[str, list[bool]], float | None]:
    """({rule: kept per document}, seconds or None when cached) from datatrove, in its own venv."""
    python = str(DT_VENV / "bin" / "python")
    version = subprocess.run(
        [python, "-c", "from importlib.metadata import version; print(version('datatrove'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    lines = "".join(json.dumps(d) + "\n" for d in docs)
    key = hashlib.sha256((version + (HERE / "_peer_runs.py").read_text() + lines).encode()).hexdigest()[:16]
    cache = HERE / "data" / f"quality-datatrove-{key}.json"
    if cache.exists():
        return json.loads(cache.read_text()), None
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "docs.jsonl", Path(tmp) / "kept.json"
        path.write_text(lines, encoding="utf-8")
        start = time.perf_counter()
        subprocess.run([python, str(HERE / "_peer_runs.py"), "quality", str(path), str(out)], check=True)
        seconds = time.perf_counter() - start
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(out.read_text())
    return json.loads(cache.read_text()), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--corpus-docs", type=int, default=20_000)
    parser.add_argument("--show", type=int, default=0, help="print this many disagreeing documents per rule")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Column, Table

    ensure_datatrove()
    docs = documents(args.docs, args.corpus_docs)
    rules = rule_thresholds()
    start = time.perf_counter()
    measured = [measure(d["text"], WEB["fineweb_short_line_length"]) for d in docs]
    ours = {rule: [first_failure(m, t) is None for m in measured] for rule, t in rules.items()}
    ours_seconds = time.perf_counter() - start
    theirs, theirs_seconds = datatrove_decisions(docs)

    table = Table(
        Column("rule", no_wrap=True),
        "both keep",
        "both drop",
        "only gristmill drops",
        "only datatrove drops",
        "agreement",
        title=f"filter.quality (web) vs datatrove, each rule alone, on {len(docs)} documents",
    )
    console = Console()
    worst = 1.0
    for rule in rules:
        a, b = ours[rule], theirs[rule]
        both_keep = sum(x and y for x, y in zip(a, b, strict=True))
        both_drop = sum(not x and not y for x, y in zip(a, b, strict=True))
        only_ours = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if not x and y]
        only_theirs = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x and not y]
        agreement = (both_keep + both_drop) / len(docs)
        worst = min(worst, agreement)
        style = "" if agreement >= 0.99 else "bold red"
        table.add_row(
            rule,
            str(both_keep),
            str(both_drop),
            str(len(only_ours)),
            str(len(only_theirs)),
            f"[{style}]{agreement:.2%}[/]" if style else f"{agreement:.2%}",
        )
        for i in (only_ours + only_theirs)[: args.show]:
            side = "gristmill" if i in only_ours else "datatrove"
            console.print(f"[dim]{rule}: only {side} drops {docs[i]['id']}: {docs[i]['text'][:200]!r}[/]")
    console.print(table)
    peer = f"{theirs_seconds:.1f} s" if theirs_seconds is not None else "(cached decisions)"
    console.print(
        f"lowest agreement {worst:.2%}; gristmill measured every signal in {ours_seconds:.1f} s, datatrove ran "
        f"{len(rules)} single-rule filters in {peer}"
    )


if __name__ == "__main__":
    main()
