"""The peers of bench/dedup.py, each run in its own process so time and memory are its own.

    python bench/_peer_runs.py datasketch CORPUS OUT_JSON
    bench/.venv-datatrove/bin/python bench/_peer_runs.py datatrove CORPUS OUT_JSON WORK_DIR [spacy|whitespace]

Each writes {"clusters": {doc id: cluster id}, "seconds": time inside the process}. Shingling is gristmill's
(lower case, \\w+ tokens, word 5-grams) for datasketch; datatrove uses its own (its normalisation and word
tokenizer), as a user of datatrove would.
"""

from __future__ import annotations

import json
import re
import sys
import time

WORD = re.compile(r"\w+")


def datasketch_run(corpus: str, out: str) -> None:
    import xxhash
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    sketches = {}
    batch_ids, batch_shingles = [], []

    def flush():
        for doc_id, mh in zip(
            batch_ids, MinHash.bulk(batch_shingles, num_perm=128, hashfunc=xxhash.xxh32_intdigest), strict=False
        ):
            sketches[doc_id] = mh
            lsh.insert(doc_id, mh)
        batch_ids.clear()
        batch_shingles.clear()

    with open(corpus, encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            tokens = WORD.findall(doc["text"].lower())
            n = min(5, len(tokens))
            batch_ids.append(doc["id"])
            batch_shingles.append([" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)])
            if len(batch_ids) >= 1000:
                flush()
    flush()
    parent = {k: k for k in sketches}

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for doc_id, mh in sketches.items():
        for other in lsh.query(mh):
            ra, rb = find(doc_id), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    clusters = {k: find(k) for k in sketches}
    seconds = time.perf_counter() - start
    json.dump({"clusters": clusters, "seconds": seconds}, open(out, "w"))


def datatrove_run(corpus: str, out: str, work: str, tokenizer: str) -> None:
    import glob
    import gzip
    from pathlib import Path

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    folder, name = str(Path(corpus).parent), Path(corpus).name
    config = MinhashConfig()  # datatrove's defaults: 5-grams, 14 buckets x 8 hashes
    signature = MinhashDedupSignature(output_folder=f"{work}/sigs", config=config)
    if tokenizer == "whitespace":
        from datatrove.utils.word_tokenizers import WhitespaceTokenizer

        signature.word_tokenizer = WhitespaceTokenizer()
    start = time.perf_counter()
    steps = [
        ([JsonlReader(folder, glob_pattern=name), signature], 1),
        (
            [MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=config)],
            config.num_buckets,
        ),
        (
            [
                MinhashDedupCluster(
                    input_folder=f"{work}/buckets", output_folder=f"{work}/remove", config=config, save_cluster_id=True
                )
            ],
            1,
        ),
        (
            [
                JsonlReader(folder, glob_pattern=name),
                MinhashDedupFilter(
                    input_folder=f"{work}/remove",
                    exclusion_writer=JsonlWriter(f"{work}/removed"),
                    load_cluster_ids=True,
                ),
                JsonlWriter(f"{work}/kept"),
            ],
            1,
        ),
    ]
    for i, (pipeline, tasks) in enumerate(steps):
        LocalPipelineExecutor(pipeline=pipeline, tasks=tasks, workers=1, logging_dir=f"{work}/logs{i}").run()
    seconds = time.perf_counter() - start
    clusters = {}
    for path in glob.glob(f"{work}/kept/*.jsonl.gz") + glob.glob(f"{work}/removed/*.jsonl.gz"):
        with gzip.open(path, "rt") as f:
            for line in f:
                doc = json.loads(line)
                cid = doc["metadata"].get("minhash_cluster_id", -1)
                clusters[doc["id"]] = f"c{cid}" if cid != -1 else doc["id"]
    json.dump({"clusters": clusters, "seconds": seconds}, open(out, "w"))


if __name__ == "__main__":
    if sys.argv[1] == "datasketch":
        datasketch_run(sys.argv[2], sys.argv[3])
    else:
        datatrove_run(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
