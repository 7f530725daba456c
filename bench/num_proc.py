"""Curation throughput by num_proc, as a ratio against num_proc=1 (the baseline), in one process tree.

    python bench/num_proc.py [--docs 3000] [--procs 1 2]

Builds a synthetic corpus from the sample documents (each copied with a unique paragraph so nothing is an
exact duplicate), then runs the sample recipe's stages from scratch once per num_proc setting, best of
--repeat runs. The default num_proc is only raised where this shows a gain on the target machine.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def build_corpus(root: Path, n_docs: int) -> None:
    sources = sorted((REPO / "sample_data" / "docs").glob("*.md"))
    texts = [p.read_text(encoding="utf-8") for p in sources]
    for i in range(n_docs):
        base = texts[i % len(texts)]
        extra = f"\n\n## Note {i}\n\nThis copy {i} of the document adds a line about order number A-{10000 + i}.\n"
        (root / f"doc-{i:05d}.md").write_text(base + extra, encoding="utf-8")


def run_once(corpus: Path, work: Path, num_proc: int) -> tuple[float, int]:
    from curate.pipeline import curate
    from curate.recipe import load_recipe

    shutil.rmtree(work, ignore_errors=True)
    recipe = load_recipe(
        REPO / "sample_data" / "recipe.yaml",
        [f"input.paths=[{corpus}]", f"num_proc={num_proc}", f"output.dir={work}", "generate=[]"],
    )
    start = time.perf_counter()
    result = curate(recipe)
    return time.perf_counter() - start, result.stats["documents"]["rows"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=3000)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        build_corpus(corpus, args.docs)
        results = {}
        for procs in args.procs:
            runs = [run_once(corpus, Path(tmp) / f"run-{procs}", procs) for _ in range(args.repeat)]
            results[procs] = min(runs)
    base = results[args.procs[0]][0]
    table = Table(
        "num_proc",
        "seconds (best)",
        "docs/s",
        f"speed vs num_proc={args.procs[0]}",
        title=f"curation of {args.docs} documents on {os.cpu_count()} cores",
    )
    for procs, (seconds, rows) in results.items():
        speed = f"{base / seconds:.2f}x"
        table.add_row(str(procs), f"{seconds:.2f}", f"{args.docs / seconds:.0f}", str(rows), speed)
    Console().print(table)


if __name__ == "__main__":
    main()
