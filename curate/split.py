"""The seeded train/test split: one table for every kind.

Before generation, a seeded share of whole documents is held out (``split.holdout_documents``, drawn apart for
documents and for records such as tickets): nothing of them trains, neither as an answer nor as a quote, and
the kinds whose prompt carries the document (summary, extract_json, grounded) test on them. Generators then mark
each example's side in ``meta.holdout``:

| kind | test | train |
| --- | --- | --- |
| qa (closed book) | held-out question templates, on sections of the other documents | the other templates |
| summary | sections of held-out documents | the other documents |
| extract_json | held-out request families, on records of held-out documents | other families and records |
| refusal, benign_near_miss, abstain | held-out request families and slot values | the others |
| persona | (no flag) whole template groups, drawn below | |

Examples without a flag are split by group (a source document, or a template family), so no group is on both
sides. Last, test prompts that near-duplicate a train prompt are dropped: evaluation measures learning, not
recall.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from typing import Any

from curate.mix import example_reject
from curate.rows import doc_of, short_hash


def held_out_documents(documents: list[dict[str, Any]], fraction: float, seed: int) -> frozenset[str]:
    """A seeded ``fraction`` of the documents' ids (rounded), drawn apart among records (rows of a .jsonl/.csv/.mbox
    file: tickets) and among the other documents, so both have test documents when there are enough of them; a
    corpus of two documents holds none out."""
    strata: dict[bool, set[str]] = defaultdict(set)
    for row in documents:
        strata["record" in json.loads(row["meta"] or "{}")].add(row["doc_id"])
    held: set[str] = set()
    for ids in strata.values():
        ranked = sorted(ids, key=lambda d: short_hash(str(seed), "held-out-documents", d))
        held.update(ranked[: min(len(ids) - 1, math.floor(fraction * len(ids) + 0.5))])
    return frozenset(held)


def holdout_of(example: dict[str, Any]) -> bool | None:
    """The generator's held-out flag (True: test, False: train), or None when the split decides."""
    meta = example.get("meta")
    return json.loads(meta).get("holdout") if meta else None


def split_examples(
    examples: list[dict[str, Any]], split, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str], list[dict[str, Any]]]:
    """(train, test, notes, rejects). An example with ``meta.holdout`` goes to the side its generator chose. The
    others are split by group, drawn in a seeded order: first until every kind has its minimum test examples (at
    most half of its groups' examples), then until the test fraction is reached; a document that answers a
    training example never goes to test. Last, test examples whose prompt near-duplicates a train prompt are
    dropped, so evaluation measures learning, not recall."""
    flags = [holdout_of(ex) for ex in examples]
    decided = {ex["group"] for ex, flag in zip(examples, flags, strict=True) if flag is not None}
    # A document whose text answers a training example is no test document: its questions would be graded on an
    # answer the model trained on.
    answers_train = {
        doc_of(s) for ex, flag in zip(examples, flags, strict=True) if flag is False for s in ex["source_ids"]
    }
    free = [ex for ex, flag in zip(examples, flags, strict=True) if flag is None]
    test_groups = _draw_test_groups(free, split, seed, answers_train | decided)
    is_test = [
        bool(flag) if flag is not None else ex["group"] in test_groups
        for ex, flag in zip(examples, flags, strict=True)
    ]
    train = [ex for ex, t in zip(examples, is_test, strict=True) if not t]
    test, rejects = _drop_seen_in_train(train, [ex for ex, t in zip(examples, is_test, strict=True) if t])
    test, untrained = _drop_closed_book_untrained(train, test)
    rejects += untrained
    if split.max_test_per_kind is not None:
        test, over = _limit_test(test, split.max_test_per_kind, seed)
        rejects += over
    in_test = Counter(ex["kind"] for ex in test)
    held_kinds = {ex["kind"] for ex, flag in zip(examples, flags, strict=True) if flag is not None}
    notes = []
    for kind in sorted({ex["kind"] for ex in examples}):
        if in_test[kind] >= split.min_test_per_kind:
            continue
        why = (
            "its generator held out only that many (policy kinds: add request templates or slot values, or raise "
            "per_category; document kinds: raise split.holdout_documents or add documents)"
            if kind in held_kinds
            else "too few source groups: a test group's examples never train, and at most half of a kind is test"
        )
        short = f"{in_test[kind]} test examples, fewer than split.min_test_per_kind={split.min_test_per_kind}"
        notes.append(f"{kind}: {short}; {why}")
    return train, test, notes, rejects


def _limit_test(test: list[dict[str, Any]], limit: int, seed: int):
    """At most ``limit`` test examples per kind, a seeded choice (evaluation time grows with the test set)."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for ex in test:
        by_kind[ex["kind"]].append(ex["id"])
    chosen = {
        i for ids in by_kind.values() for i in sorted(ids, key=lambda i: short_hash(str(seed), "test", i))[:limit]
    }
    over = [
        example_reject(ex, "over_test_limit", f"split.max_test_per_kind={limit}")
        for ex in test
        if ex["id"] not in chosen
    ]
    return [ex for ex in test if ex["id"] in chosen], over


def _drop_closed_book_untrained(train: list[dict[str, Any]], test: list[dict[str, Any]]):
    """A closed-book test question (``meta.closed_book``) about a section no training example of its kind answers
    could only be answered by inventing (mixing may have dropped that section's training questions as near
    duplicates): it is dropped, with the reason."""
    trained = {(ex["kind"], s) for ex in train for s in ex["source_ids"]}
    kept, rejects = [], []
    for ex in test:
        closed = json.loads(ex.get("meta") or "{}").get("closed_book")
        if closed and not all((ex["kind"], s) in trained for s in ex["source_ids"]):
            detail = f"no training {ex['kind']} example answers from {', '.join(ex['source_ids'])}"
            rejects.append(example_reject(ex, "closed_book_untrained", detail))
        else:
            kept.append(ex)
    return kept, rejects


def prompt_views(example: dict[str, Any]) -> list[str]:
    """What a test prompt must not share with a training prompt: its whole user turn, and the question in it
    when the turn wraps one in excerpts (a grounded prompt's ``meta.question``): a closed-book test question
    asked word for word inside a training grounded prompt is a leak the whole turns would hide."""
    user = "\n".join(m["content"] for m in example["messages"] if m["role"] == "user")
    question = json.loads(example.get("meta") or "{}").get("question")
    return [user, question] if question and question != user else [user]


def _drop_seen_in_train(train: list[dict[str, Any]], test: list[dict[str, Any]]):
    """Test examples that repeat a training prompt: any view of the test prompt (prompt_views) near-duplicating
    any view of a training prompt (word 3-gram Jaccard >= 0.8), or a test excerpt that a training prompt shows."""
    from curate.near_dup import similar_pairs

    owner: list[int] = []  # the example each text belongs to: train 0..len(train)-1, then test
    texts: list[str] = []
    for k, ex in enumerate([*train, *test]):
        for view in prompt_views(ex):
            owner.append(k)
            texts.append(view)
    seen: dict[int, tuple[str, str]] = {}  # test index -> (train id, why)
    for i, j, score in similar_pairs(texts):
        a, b = sorted((owner[i], owner[j]))
        if a < len(train) <= b and b not in seen:
            seen[b] = (train[a]["id"], f"Jaccard {score:.2f}")
    shown = {e: ex["id"] for ex in train for e in json.loads(ex.get("meta") or "{}").get("excerpts", [])}
    for k, ex in enumerate(test, start=len(train)):
        shared = [e for e in json.loads(ex.get("meta") or "{}").get("excerpts", []) if e in shown]
        if shared and k not in seen:
            seen[k] = (shown[shared[0]], f"shares excerpt {shared[0]}")
    rejects = [
        example_reject(ex, "test_prompt_seen_in_train", f"prompt repeats train {seen[k][0]} ({seen[k][1]})")
        for k, ex in enumerate(test, start=len(train))
        if k in seen
    ]
    return [ex for k, ex in enumerate(test, start=len(train)) if k not in seen], rejects


def _draw_test_groups(examples: list[dict[str, Any]], split, seed: int, pinned: set[str]) -> set[str]:
    """Test groups drawn from ``examples``' groups, never one in ``pinned`` (those train)."""
    by_group: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ex in examples:
        by_group[ex["group"]].append(ex)
    order = sorted((g for g in by_group if g not in pinned), key=lambda g: short_hash(str(seed), "split", g))
    kind_total = Counter(ex["kind"] for ex in examples)
    kind_groups: dict[str, set[str]] = defaultdict(set)
    for ex in examples:
        kind_groups[ex["kind"]].add(ex["group"])
    # A kind from a single group cannot be in both splits; otherwise keep at least half of it for training.
    wanted = {
        k: 0 if len(kind_groups[k]) < 2 else min(split.min_test_per_kind, kind_total[k] // 2) for k in kind_total
    }
    test_groups: set[str] = set()
    in_test: Counter = Counter()

    def take(group: str) -> None:
        test_groups.add(group)
        in_test.update(ex["kind"] for ex in by_group[group])

    for kind in sorted(wanted):
        # Smallest groups first: they meet this kind's minimum while pulling fewer other examples into test.
        for group in sorted(order, key=lambda g: len(by_group[g])):
            if in_test[kind] >= wanted[kind]:
                break
            kinds_here = Counter(ex["kind"] for ex in by_group[group])
            if group in test_groups or kind not in kinds_here:
                continue
            # Do not push any kind in this group past half of its examples.
            if all(in_test[k] + n <= max(wanted[k], kind_total[k] // 2) for k, n in kinds_here.items()):
                take(group)
    target = math.ceil(split.test_fraction * len(examples))
    for group in order:
        if sum(in_test.values()) >= target:
            break
        kinds_here = Counter(ex["kind"] for ex in by_group[group])
        if group not in test_groups and all(in_test[k] + n <= kind_total[k] // 2 for k, n in kinds_here.items()):
            take(group)
    return test_groups
