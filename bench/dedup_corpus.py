"""A planted-duplicate corpus for the dedup benchmark, from real English text available offline.

    python bench/dedup_corpus.py [--docs 20000] [--out bench/data/dedup-20000] [--no-truth]

Text: docstrings of the Python standard library and the installed packages (parsed with ``ast``, never
imported), split into sentences. Base documents of about 4 KB are random runs of sentences; the planted rows
are exact copies, near copies with scattered word edits at several rates, near copies with a replaced block,
copies of near copies (clusters of three or more), and partial overlaps (half of a document plus new text) as
hard negatives. The ground truth is every pair with true Jaccard >= 0.5 under gristmill's shingling (lower
case, ``\\w+`` tokens, word 5-grams), found exactly by prefix filtering and verified on Python sets.

Writes corpus.jsonl ({"id", "text", "plant"}), truth.jsonl ({"a", "b", "jaccard"}) and meta.json.
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import random
import re
import sys
import sysconfig
from collections import Counter, defaultdict
from pathlib import Path

WORD = re.compile(r"\w+")
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def english_sentences(limit: int = 400_000) -> list[str]:
    cache = Path(__file__).parent / "data" / "sentences.json"
    if cache.exists():
        return json.loads(cache.read_text())
    sentences = _extract_sentences(limit)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(sentences))
    return sentences


def _extract_sentences(limit: int) -> list[str]:
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    seen: set[str] = set()
    out: list[str] = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if "test" in path.parts or "tests" in path.parts:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8", errors="ignore"))
            except (SyntaxError, ValueError, RecursionError):
                continue
            for node in ast.walk(tree):
                if not isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                for para in re.split(r"\n\s*\n", doc):
                    if any(marker in para for marker in (">>>", "::", ":param", "Args:", "----", "`")):
                        continue
                    for sentence in SENTENCE.split(" ".join(para.split())):
                        words = sentence.split()
                        alpha = sum(w.isalpha() for w in words)
                        if 8 <= len(words) <= 60 and alpha >= 0.8 * len(words) and sentence not in seen:
                            seen.add(sentence)
                            out.append(sentence)
                            if len(out) >= limit:
                                return out
    return out


class Corpus:
    def __init__(self, sentences: list[str], seed: int):
        self.rng = random.Random(seed)
        self.sentences = sentences
        self.order = list(range(len(sentences)))
        self.rng.shuffle(self.order)
        self.cursor = 0

    def fresh_text(self, chars: int) -> str:
        """Sentences taken in a shuffled cycle, so two documents rarely share one."""
        parts, size = [], 0
        while size < chars:
            s = self.sentences[self.order[self.cursor % len(self.order)]]
            self.cursor += 1
            parts.append(s)
            size += len(s) + 1
        return " ".join(parts)

    def scattered_edit(self, text: str, rate: float) -> str:
        words = text.split(" ")
        for _ in range(max(1, int(len(words) * rate))):
            i = self.rng.randrange(len(words))
            op = self.rng.random()
            if op < 0.5:
                words[i] = self.rng.choice(self.sentences).split(" ")[0]
            elif op < 0.75 and len(words) > 10:
                del words[i]
            else:
                words.insert(i, self.rng.choice(self.sentences).split(" ")[-1])
        return " ".join(words)

    def block_edit(self, text: str, share: float) -> str:
        words = text.split(" ")
        size = max(1, int(len(words) * share))
        start = self.rng.randrange(0, len(words) - size)
        return " ".join(
            words[:start]
            + self.fresh_text(len(" ".join(words[start : start + size]))).split(" ")
            + words[start + size :]
        )

    def partial_overlap(self, text: str, keep: float) -> str:
        words = text.split(" ")
        kept = words[: int(len(words) * keep)]
        return " ".join(kept) + " " + self.fresh_text(len(text) - len(" ".join(kept)))


def build(n_docs: int, seed: int = 0, doc_chars: int = 4000) -> list[dict]:
    corpus = Corpus(english_sentences(), seed)
    rng = corpus.rng
    plan = {
        "exact_copy": 0.05,
        "scattered_2pct": 0.03,
        "scattered_5pct": 0.03,
        "scattered_10pct": 0.03,
        "scattered_15pct": 0.03,
        "scattered_25pct": 0.03,
        "block_5pct": 0.025,
        "block_10pct": 0.025,
        "block_20pct": 0.025,
        "copy_of_near_copy": 0.05,
        "partial_overlap_50pct": 0.04,
        "partial_overlap_60pct": 0.035,
    }
    counts = {k: int(n_docs * v) for k, v in plan.items()}
    n_base = n_docs - sum(counts.values())
    docs = [
        {"text": corpus.fresh_text(int(rng.gauss(doc_chars, doc_chars / 5))), "plant": "base"} for _ in range(n_base)
    ]
    near: list[str] = []
    for kind, count in counts.items():
        for _ in range(count):
            source = docs[rng.randrange(n_base)]["text"]
            if kind == "exact_copy":
                text = source
            elif kind.startswith("scattered"):
                text = corpus.scattered_edit(source, int(kind.split("_")[1][:-3]) / 100)
                near.append(text)
            elif kind.startswith("block"):
                text = corpus.block_edit(source, int(kind.split("_")[1][:-3]) / 100)
                near.append(text)
            elif kind == "copy_of_near_copy":
                text = corpus.scattered_edit(rng.choice(near), 0.03)
            else:
                text = corpus.partial_overlap(source, int(kind.split("_")[2][:-3]) / 100)
            docs.append({"text": text, "plant": kind})
    rng.shuffle(docs)
    for i, doc in enumerate(docs):
        doc["id"] = f"doc-{i:06d}"
    return [{"id": d["id"], "text": d["text"], "plant": d["plant"]} for d in docs]


def shingle_set(text: str, n: int = 5) -> frozenset:
    tokens = WORD.findall(text.lower())
    n = min(n, len(tokens))
    return frozenset(hash(tuple(tokens[i : i + n])) for i in range(len(tokens) - n + 1)) if tokens else frozenset()


def true_pairs(docs: list[dict], threshold: float = 0.5) -> list[tuple[str, str, float]]:
    """Every pair with Jaccard >= threshold, exactly: prefix filtering (rarest shingles first), then sets."""
    sets = [shingle_set(d["text"]) for d in docs]
    freq = Counter(h for s in sets for h in s)
    index: dict[int, list[int]] = defaultdict(list)
    candidates: set[tuple[int, int]] = set()
    for i, s in enumerate(sets):
        if not s:
            continue
        ordered = sorted(s, key=lambda h: (freq[h], h))
        prefix = len(s) - math.ceil(threshold * len(s)) + 1
        for h in ordered[:prefix]:
            for j in index[h]:
                candidates.add((j, i))
            index[h].append(i)
    out = []
    for i, j in sorted(candidates):
        a, b = sets[i], sets[j]
        if min(len(a), len(b)) < threshold * max(len(a), len(b)):
            continue
        jac = len(a & b) / len(a | b)
        if jac >= threshold:
            out.append((docs[i]["id"], docs[j]["id"], round(jac, 4)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-truth", action="store_true", help="skip the ground truth (memory runs at scale)")
    args = parser.parse_args()
    out = args.out or Path(__file__).parent / "data" / f"dedup-{args.docs}"
    out.mkdir(parents=True, exist_ok=True)
    docs = build(args.docs, args.seed)
    with open(out / "corpus.jsonl", "w", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    meta = {
        "docs": len(docs),
        "plants": Counter(d["plant"] for d in docs),
        "bytes": (out / "corpus.jsonl").stat().st_size,
    }
    if not args.no_truth:
        pairs = true_pairs(docs)
        with open(out / "truth.jsonl", "w", encoding="utf-8") as f:
            for a, b, j in pairs:
                f.write(json.dumps({"a": a, "b": b, "jaccard": j}) + "\n")
        meta["pairs_at_0.5"] = len(pairs)
        meta["pairs_at_0.8"] = sum(j >= 0.8 for _, _, j in pairs)
    (out / "meta.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps(meta), file=sys.stderr)


if __name__ == "__main__":
    main()
