"""Near-duplicate dedup: gristmill's dedupe.minhash against plain datasketch and datatrove, in one run.

    python bench/dedup.py [--docs 20000] [--skip-datatrove] [--memory-scale 10]

Builds (or reuses) the planted corpus of bench/dedup_corpus.py, then runs each method in its own process:
  gristmill   `gristmill curate` on a recipe with dedupe.minhash alone (threshold 0.8)
  datasketch  MinHash.bulk with xxhash's xxh32 plus MinHashLSH(threshold=0.8), clusters by union-find
  datatrove   its 4-step MinHash pipeline, installed in bench/.venv-datatrove (created on first use), with
              its default spaCy word tokenizer and with its whitespace tokenizer
Metrics, so they cannot be gamed: recall = share of true pairs with Jaccard >= 0.8 that end in one cluster;
precision = share of same-cluster pairs whose true Jaccard is >= 0.5; F1. Speed: documents per second per
process, end to end (process start to exit) and for the dedup work alone (gristmill: the stage's time in
stats.json; peers: their time inside the process). Memory: peak RSS over a 10-document run, per document.
Ratios are gristmill's speed over each peer's, measured in this run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DT_VENV = HERE / ".venv-datatrove"
DT_PACKAGES = ["datatrove", "spacy", "regex", "xxhash<4", "tokenizers", "orjson"]


def timed(cmd: list[str], **kwargs) -> tuple[float, int]:
    """(wall seconds, peak RSS in KiB) of a command, measured by a wrapper whose only child it is."""
    wrapper = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "rc = subprocess.run(sys.argv[1:]).returncode; w = time.perf_counter() - t; "
        "print(w, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, **kwargs)
    wall, rss, rc = out.stdout.strip().splitlines()[-1].split()
    if rc != "0":
        raise RuntimeError(f"{cmd[:3]} failed:\n{out.stderr[-3000:]}")
    return float(wall), int(rss)


def ensure_corpus(docs: int, truth: bool = True) -> Path:
    path = HERE / "data" / f"dedup-{docs}"
    if not (path / "corpus.jsonl").exists() or (truth and not (path / "truth.jsonl").exists()):
        cmd = [sys.executable, str(HERE / "dedup_corpus.py"), "--docs", str(docs), "--out", str(path)]
        subprocess.run(cmd + ([] if truth else ["--no-truth"]), check=True)
    return path


def tiny_corpus(work: Path, source: Path) -> Path:
    out = work / "tiny" / "corpus.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(source) as f, open(out, "w") as g:
        g.writelines(itertools.islice(f, 10))
    return out


def run_gristmill(corpus: Path, work: Path) -> dict:
    import yaml

    recipe = {
        "name": "dedup-bench",
        "input": {"paths": [str(corpus)], "fields": {"text": "text", "id": "id", "title": None}},
        "stages": [{"use": "dedupe.minhash", "with": {"threshold": 0.8}}],
        "output": {"dir": str(work / "run")},
    }
    (work / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    gristmill = str(Path(sys.executable).parent / "gristmill")
    wall, rss = timed([gristmill, "curate", str(work / "recipe.yaml")], cwd=work, env={**os.environ, "COLUMNS": "200"})
    dataset = work / "run" / "dataset"
    stats = json.loads((dataset / "stats.json").read_text())
    clusters = {}
    with open(dataset / "rejects" / "rejects.jsonl") as f:
        for line in f:
            r = json.loads(line)
            if r["reason"].startswith("near_duplicate_of:"):
                kept = r["reason"].split(":", 1)[1].rsplit("#", 1)[0]
                clusters[r["doc_id"]] = kept
                clusters[kept] = kept
    stage = next(s for s in stats["steps"] if s["step"].startswith("dedupe.minhash"))
    return {"clusters": clusters, "stage_seconds": stage["seconds"], "wall": wall, "rss": rss}


def run_peer(kind: str, corpus: Path, work: Path, tokenizer: str = "") -> dict:
    out = work / f"{kind}-{tokenizer or 'x'}.json"
    python = str(DT_VENV / "bin" / "python") if kind == "datatrove" else sys.executable
    cmd = [python, str(HERE / "_peer_runs.py"), kind, str(corpus), str(out)]
    if kind == "datatrove":
        cmd += [str(work / f"dt-{tokenizer}"), tokenizer]
    wall, rss = timed(cmd)
    data = json.loads(out.read_text())
    return {"clusters": data["clusters"], "stage_seconds": data["seconds"], "wall": wall, "rss": rss}


def ensure_datatrove() -> None:
    if (DT_VENV / "bin" / "python").exists():
        return
    subprocess.run([sys.executable, "-m", "venv", str(DT_VENV)], check=True)
    subprocess.run([str(DT_VENV / "bin" / "pip"), "install", "-q", *DT_PACKAGES], check=True)


def score(clusters: dict[str, str], truth: dict[tuple[str, str], float]) -> tuple[float, float, float]:
    members = defaultdict(list)
    for doc, cluster in clusters.items():
        members[cluster].append(doc)
    same = [tuple(sorted(p)) for m in members.values() for p in itertools.combinations(sorted(m), 2)]
    precision = sum(truth.get(p, 0.0) >= 0.5 for p in same) / len(same) if same else 1.0
    strong = [p for p, j in truth.items() if j >= 0.8]
    found = sum(clusters.get(a) is not None and clusters.get(a) == clusters.get(b) for a, b in strong)
    recall = found / len(strong) if strong else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--memory-scale", type=int, default=0, help="also run gristmill on N x the corpus (RSS)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    corpus_dir = ensure_corpus(args.docs)
    corpus = corpus_dir / "corpus.jsonl"
    truth = {}
    with open(corpus_dir / "truth.jsonl") as f:
        for line in f:
            t = json.loads(line)
            truth[tuple(sorted((t["a"], t["b"])))] = t["jaccard"]
    methods = [("gristmill", None), ("datasketch", None)]
    if not args.skip_datatrove:
        ensure_datatrove()
        methods += [("datatrove", "whitespace"), ("datatrove", "spacy")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tiny = tiny_corpus(tmp, corpus)
        for kind, tok in methods:
            label = f"{kind} ({tok} tokenizer)" if tok else kind
            for size, path in (("empty", tiny), ("full", corpus)):
                work = tmp / f"{kind}-{tok}-{size}"
                work.mkdir()
                start = time.perf_counter()
                res = run_gristmill(path, work) if kind == "gristmill" else run_peer(kind, path, work, tok or "")
                results.setdefault(label, {})[size] = res
                print(f"{label} {size}: {time.perf_counter() - start:.1f}s", file=sys.stderr)
        scale_row = None
        if args.memory_scale > 1:
            big = ensure_corpus(args.docs * args.memory_scale, truth=False) / "corpus.jsonl"
            work = tmp / "gristmill-scale"
            work.mkdir()
            scale_row = run_gristmill(big, work)
    n = args.docs
    g = results["gristmill"]["full"]
    table = Table(
        "method", "precision", "recall", "F1", "docs/s/proc (stage)", "docs/s/proc (end to end)",
        "gristmill speed x (stage / e2e)", "RSS KiB/doc",
        title=f"near-duplicate dedup, {n} documents of {corpus.stat().st_size / n / 1000:.1f} KB, 1 process each",
    )  # fmt: skip
    for label, res in results.items():
        full, empty = res["full"], res["empty"]
        p, r, f1 = score(full["clusters"], truth)
        stage_rate, e2e_rate = n / full["stage_seconds"], n / full["wall"]
        ratio = f"{full['stage_seconds'] / g['stage_seconds']:.1f} / {full['wall'] / g['wall']:.1f}"
        rss = (full["rss"] - empty["rss"]) / n
        table.add_row(
            label, f"{p:.3f}", f"{r:.3f}", f"{f1:.3f}", f"{stage_rate:.0f}", f"{e2e_rate:.0f}", ratio, f"{rss:.2f}"
        )
    console = Console(width=200)
    console.print(table)
    if scale_row is not None:
        big_n = n * args.memory_scale
        per_doc = (scale_row["rss"] - results["gristmill"]["empty"]["rss"]) / big_n
        base = (g["rss"] - results["gristmill"]["empty"]["rss"]) / n
        console.print(
            f"gristmill RSS increase per document: {base:.2f} KiB at {n} docs, {per_doc:.2f} KiB at {big_n} docs "
            f"({big_n / scale_row['stage_seconds']:.0f} docs/s in the stage at that size)"
        )


if __name__ == "__main__":
    main()
