"""Curation on executor: ray against executor: local, in one run, on the planted 20k-document corpus of
bench/dedup_corpus.py (built on first use): normalize, exact and MinHash dedupe, quality, labels.

    python bench/executors.py [--docs 20000] [--cpus 2]

Each executor runs `gristmill curate` in its own process on a fresh run directory; the table shows documents
per second end to end (process start to exit) and per stage, the ratio ray/local, and whether the two
datasets are identical (train/test examples, documents, rejects with their reasons).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("documents/documents.jsonl", "rejects/rejects.jsonl", "train.jsonl", "test.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--cpus", type=int, default=2)
    args = parser.parse_args()
    corpus = HERE / "data" / f"dedup-{args.docs}" / "corpus.jsonl"
    if not corpus.exists():
        subprocess.run([sys.executable, str(HERE / "dedup_corpus.py"), "--docs", str(args.docs)], check=True)
    from rich.console import Console
    from rich.table import Table

    work = Path(tempfile.mkdtemp(prefix="gristmill-executors-"))
    recipe = {
        "name": "executors",
        "batch_size": 1000,
        "input": {"paths": [str(corpus)]},
        "stages": [
            {"use": "normalize.text"},
            {"use": "dedupe.exact"},
            {"use": "dedupe.minhash", "with": {"threshold": 0.8}},
            {"use": "filter.quality", "with": {"profile": "company_docs"}},
            {"use": "label.heuristic"},
        ],
    }
    results = {}
    for executor in ("local", "ray"):
        path = work / f"{executor}.yaml"
        path.write_text(json.dumps({**recipe, "executor": executor, "output": {"dir": str(work / executor)}}))
        env = {**os.environ, "GRISTMILL_RAY_CPUS": str(args.cpus), "RAY_USAGE_STATS_ENABLED": "0"}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "curate.cli", "curate", str(path)], check=True, env=env,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        wall = time.perf_counter() - start
        stats = json.loads((work / executor / "dataset" / "stats.json").read_text())
        results[executor] = (wall, {s["step"]: s["seconds"] for s in stats["steps"]})
    same = all(
        (work / "local" / "dataset" / f).read_bytes() == (work / "ray" / "dataset" / f).read_bytes() for f in FILES
    )
    table = Table("measure", "local", "ray", "ray / local (speed)")
    (lw, ls), (rw, rs) = results["local"], results["ray"]
    table.add_row("end to end, docs/s", f"{args.docs / lw:.0f}", f"{args.docs / rw:.0f}", f"{lw / rw:.2f}")
    for step in ls:
        if step in rs and ls[step] and rs[step]:
            table.add_row(f"{step}, docs/s", f"{args.docs / ls[step]:.0f}", f"{args.docs / rs[step]:.0f}",
                          f"{ls[step] / rs[step]:.2f}")  # fmt: skip
    Console().print(table)
    print(f"identical datasets (documents, rejects, examples): {same}")


if __name__ == "__main__":
    main()
