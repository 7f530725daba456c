"""The peers of bench/dedup.py, each run in its own process so time and memory are its own.

    python bench/_peer_runs.py datasketch CORPUS OUT_JSON
    bench/.venv-datatrove/bin/python bench/_peer_runs.py datatrove CORPUS OUT_JSON WORK_DIR [spacy|whitespace]
    bench/.venv-datatrove/bin/python bench/_peer_runs.py quality DOCS_JSONL OUT_JSON   (bench/quality_parity.py)

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


# Each rule of bench/quality_parity.py as one datatrove filter with every other check of that filter off, so
# each keep/drop decision is that rule's alone. C4's line edits (terminal punctuation, 3 words, javascript,
# policy lines, long words) stay on: they decide which lines the C4 rules look at.
GOPHER_OFF = dict(
    min_doc_words=None,
    max_doc_words=None,
    min_avg_word_length=None,
    max_avg_word_length=None,
    max_symbol_word_ratio=None,
    max_bullet_lines_ratio=None,
    max_ellipsis_lines_ratio=None,
    max_non_alpha_words_ratio=None,
    min_stop_words=None,
)
REPETITION_OFF = dict(
    dup_line_frac=None,
    dup_para_frac=None,
    dup_line_char_frac=None,
    dup_para_char_frac=None,
    top_n_grams=(),
    dup_n_grams=(),
)
C4_OFF = dict(filter_lorem_ipsum=False, filter_curly_bracket=False, min_num_sentences=-1)
FINEWEB_OFF = dict(line_punct_thr=-1, short_line_thr=2, char_duplicates_ratio=2, new_line_ratio=1e9)


def quality_filters():
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    def gopher(**on):
        return GopherQualityFilter(**{**GOPHER_OFF, **on})

    def repetition(**on):
        return GopherRepetitionFilter(**{**REPETITION_OFF, **on})

    def c4(**on):
        return C4QualityFilter(**{**C4_OFF, **on})

    def fineweb(**on):
        return FineWebQualityFilter(**{**FINEWEB_OFF, **on})

    rules = {
        "min_doc_words": gopher(min_doc_words=50),
        "max_doc_words": gopher(max_doc_words=100_000),
        "min_avg_word_length": gopher(min_avg_word_length=3),
        "max_avg_word_length": gopher(max_avg_word_length=10),
        "max_symbol_word_ratio": gopher(max_symbol_word_ratio=0.1),
        "max_bullet_lines_ratio": gopher(max_bullet_lines_ratio=0.9),
        "max_ellipsis_lines_ratio": gopher(max_ellipsis_lines_ratio=0.3),
        "min_alpha_words_ratio": gopher(max_non_alpha_words_ratio=0.8),
        "min_stop_words": gopher(min_stop_words=2),
        "dup_line_frac": repetition(dup_line_frac=0.3),
        "dup_para_frac": repetition(dup_para_frac=0.3),
        "dup_line_char_frac": repetition(dup_line_char_frac=0.2),
        "dup_para_char_frac": repetition(dup_para_char_frac=0.2),
        **{f"top_{n}_gram": repetition(top_n_grams=((n, f),)) for n, f in ((2, 0.2), (3, 0.18), (4, 0.16))},
        **{
            f"dup_{n}_gram": repetition(dup_n_grams=((n, f),))
            for n, f in ((5, 0.15), (6, 0.14), (7, 0.13), (8, 0.12), (9, 0.11), (10, 0.10))
        },
        "c4_lorem_ipsum": c4(filter_lorem_ipsum=True),
        "c4_curly_bracket": c4(filter_curly_bracket=True),
        "c4_min_sentences": c4(min_num_sentences=5),
        "fineweb_line_punct_ratio": fineweb(line_punct_thr=0.12),
        "fineweb_short_line_ratio": fineweb(short_line_thr=0.67),
        "fineweb_char_dup_ratio": fineweb(char_duplicates_ratio=0.01),
        "fineweb_newline_ratio": fineweb(new_line_ratio=0.3),
    }
    return rules


def quality_run(docs_path: str, out: str) -> None:
    from datatrove.data import Document

    texts = [json.loads(line)["text"] for line in open(docs_path, encoding="utf-8")]
    kept = {}
    for rule, filt in quality_filters().items():
        decisions = []
        for i, text in enumerate(texts):
            result = filt.filter(Document(text=text, id=str(i)))
            decisions.append(bool(result if isinstance(result, bool) else result[0]))
        kept[rule] = decisions
    json.dump(kept, open(out, "w"))


if __name__ == "__main__":
    if sys.argv[1] == "datasketch":
        datasketch_run(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "quality":
        quality_run(sys.argv[2], sys.argv[3])
    else:
        datatrove_run(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
