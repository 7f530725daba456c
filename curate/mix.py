"""Mix: duplicate examples, review exclusions, blocked terms in responses, near-duplicate prompts within a
kind, then per-kind ratios and caps. Every dropped example is a reject envelope with its reason.

Which examples a cap keeps is decided by a hash of (seed, example id), never by position, so adding documents
does not reshuffle every choice.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from curate.errors import RecipeError
from curate.review.apply import AppliedReview
from curate.rows import EDITED_BY_REVIEW, reject_envelope, short_hash

MIX_STAGE = "mix"


def example_reject(example: dict[str, Any], reason: str, detail: str) -> dict[str, Any]:
    return reject_envelope(
        stage=MIX_STAGE,
        reason=reason,
        detail=detail,
        row=example,
        id=example["id"],
        doc_id=example["group"],
        source=",".join(example["source_ids"]),
    )


def load_exclude_ids(exclude: list[str] | str) -> set[str]:
    """A list of ids, or a file of ids (one per line, '#' comments) or a JSONL file of objects with ``id``."""
    if isinstance(exclude, list):
        return set(exclude)
    path = Path(exclude)
    if not path.is_file():
        raise RecipeError(f"mix.exclude_ids: file {exclude!r} does not exist; give a list of ids or an existing file")
    ids = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("{"):
            line = str(json.loads(line).get("id", ""))
        if line:
            ids.add(line)
    return ids


def _ratio_targets(counts: Counter, ratios: dict[str, float]) -> dict[str, int]:
    """Largest per-kind counts whose proportions among the ratio'd kinds match ``ratios``."""
    present = {k: r for k, r in ratios.items() if counts.get(k)}
    if not present:
        return {}
    total_ratio = sum(present.values())
    # The scarcest kind relative to its share bounds the total.
    total = min(counts[k] / (r / total_ratio) for k, r in present.items())
    return {k: min(counts[k], math.floor(total * r / total_ratio + 1e-9)) for k, r in present.items()}


PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]*)>")  # what pii.redact leaves: <EMAIL>, <PHONE>, <NAME>, ...


def public_contacts(allow: list[str]) -> dict[str, str]:
    """{"EMAIL": ..., "PHONE": ...}: the first address and number among the strings pii.redact allows (the
    company's public support contacts), which an answer may give where its document had a redacted one."""
    out: dict[str, str] = {}
    for value in allow:
        if "@" in value:
            out.setdefault("EMAIL", value)
        elif re.fullmatch(r"\+?[\d][\d ().-]{5,}\d", value):
            out.setdefault("PHONE", value)
    return out


def natural_response(example: dict[str, Any], contacts: dict[str, str]) -> tuple[dict[str, Any], str | None]:
    """(the example with assistant turns that teach no placeholder, None), or (the example, why) when that cannot
    be: an <EMAIL> or <PHONE> becomes the public contact, other sentences naming a placeholder are removed. A JSON
    answer keeps a placeholder its prompt holds (extraction copies its input) and is refused for any other."""
    from curate.text import drop_sentences, strip_fence

    turns = [m for m in example["messages"] if m["role"] == "assistant" and PLACEHOLDER.search(m["content"])]
    if not turns:
        return example, None
    prompt = "\n".join(m["content"] for m in example["messages"] if m["role"] != "assistant")
    edits, messages = [], []
    for m in example["messages"]:
        if m not in turns:
            messages.append(m)
            continue
        named = sorted({p.group(0) for p in PLACEHOLDER.finditer(m["content"])})
        try:
            json.loads(strip_fence(m["content"]))
        except ValueError:
            pass
        else:
            unseen = [p for p in named if p not in prompt]
            if unseen:
                return example, f"the JSON answer writes {', '.join(unseen)}, which its prompt does not hold"
            messages.append(m)
            continue
        text = PLACEHOLDER.sub(lambda p: contacts.get(p.group(1), p.group(0)), m["content"])
        edits += [f"{p} -> {contacts[p[1:-1]]}" for p in named if p[1:-1] in contacts]
        fixed = drop_sentences(text, PLACEHOLDER)
        if fixed != text:
            edits.append(f"sentences with {', '.join(p for p in named if p[1:-1] not in contacts)} removed")
        if not fixed.strip():
            return example, f"every sentence of the answer names {', '.join(named)}; none reads without it"
        messages.append({**m, "content": fixed})
    if not edits:  # JSON answers that copy their input's placeholders
        return example, None
    meta = {**json.loads(example.get("meta") or "{}"), "response_edited": edits}
    return {**example, "messages": messages, "meta": json.dumps(meta, ensure_ascii=False)}, None


def response_of(example: dict[str, Any]) -> str:
    return "\n".join(m["content"] for m in example["messages"] if m["role"] == "assistant")


def distinct_prompts(
    examples: list[dict[str, Any]], keep: set[str] = frozenset()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Within each kind, drop every example whose prompt is a near duplicate (Jaccard >= 0.8 on word 3-grams)
    of an earlier kept one: 500 refusals must not be 500 copies of 5 sentences. Ids in ``keep`` (rescued by a
    reviewer) stay."""
    from curate.near_dup import greedy_distinct, prompt_of

    by_kind: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_kind[ex["kind"]].append(i)
    dropped: dict[int, tuple[int, float]] = {}
    for indices in by_kind.values():
        for j, (i, score) in greedy_distinct([prompt_of(examples[k]) for k in indices]).items():
            if examples[indices[j]]["id"] not in keep:
                dropped[indices[j]] = (indices[i], score)
    rejects = [
        example_reject(
            ex,
            "near_duplicate_prompt",
            f"prompt repeats {examples[dropped[k][0]]['id']} (Jaccard {dropped[k][1]:.2f})",
        )
        for k, ex in enumerate(examples)
        if k in dropped
    ]
    return [ex for k, ex in enumerate(examples) if k not in dropped], rejects


def _held_for_test(example: dict[str, Any]) -> bool:
    return bool(json.loads(example.get("meta") or "{}").get("holdout"))


def mix_examples(
    examples: list[dict[str, Any]],
    mix,
    seed: int,
    blocklist=None,
    contacts: dict[str, str] | None = None,
    review: AppliedReview | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept examples in their original order, reject envelopes): exact duplicates, review decisions and
    exclusions, responses naming a blocked term or teaching a placeholder (``natural_response``, with the public
    ``contacts``), near-duplicate prompts within a kind, then ratios and caps on the examples that may train (a
    generator's held-out test examples are never capped).

    ``review`` (mix.review): a rejected example leaves as ``excluded_by_review``; an edited one trains as edited and
    its original goes to the rejects as ``edited_by_review`` (kept for audit, not a drop); a rescued one passes the
    blocklist, near-duplicate and cap checks; with ``only_accepted`` an unaccepted one leaves."""
    rejects: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    first: dict[str, str] = {}
    rescued: set[str] = set()
    excluded = load_exclude_ids(mix.exclude_ids)
    for ex in examples:
        ex, placeholder = natural_response(ex, contacts or {})
        if ex["id"] in first:
            rejects.append(
                example_reject(ex, "duplicate_example", f"same messages as an earlier {first[ex['id']]} example")
            )
            continue
        first[ex["id"]] = ex["kind"]
        decided = None
        if review is not None:
            ex, decided, original = review.apply(ex)
            if original is not None:
                detail = f"the original, replaced by the edit of {decided.who or 'a reviewer'} at {decided.when}"
                rejects.append(example_reject(original, EDITED_BY_REVIEW, detail))
                ex, placeholder = natural_response(ex, contacts or {})
        if decided is not None and decided.rescued:
            rescued.add(ex["id"])
        blocked = blocklist.find(response_of(ex)) if blocklist else []
        if decided is not None and decided.status == "rejected":
            who = f"{decided.who or 'a reviewer'} at {decided.when}"
            rejects.append(example_reject(ex, "excluded_by_review", f"rejected by {who}: {decided.reason}"))
        elif ex["id"] in excluded:
            rejects.append(example_reject(ex, "excluded_by_review", "listed in mix.exclude_ids"))
        elif placeholder:
            rejects.append(example_reject(ex, "placeholder_in_response", placeholder))
        elif blocked and ex["id"] not in rescued:
            rejects.append(
                example_reject(ex, "blocked_term", f"the response mentions {', '.join(map(repr, blocked))}")
            )
        elif review is not None and review.only_accepted and (decided is None or decided.status != "accepted"):
            rejects.append(example_reject(ex, "not_accepted_in_review", "mix.review.only_accepted: not accepted"))
        else:
            kept.append(ex)
    kept, near = distinct_prompts(kept, rescued)
    rejects += near

    # Ratios and caps shape what trains: examples their generator held out for test are never limited.
    limited = [ex for ex in kept if not _held_for_test(ex) and ex["id"] not in rescued]
    counts = Counter(ex["kind"] for ex in limited)
    limits = _ratio_targets(counts, mix.ratios)
    for kind, cap in mix.caps.items():
        limits[kind] = min(cap, limits.get(kind, cap))
    chosen: set[str] = set()
    for kind, limit in limits.items():
        ids = sorted((ex["id"] for ex in limited if ex["kind"] == kind), key=lambda i: short_hash(str(seed), "mix", i))
        chosen.update(ids[:limit])
    out = []
    for ex in kept:
        if ex["kind"] in limits and ex["id"] not in chosen and not _held_for_test(ex) and ex["id"] not in rescued:
            why = "mix.caps" if ex["kind"] in mix.caps and limits[ex["kind"]] == mix.caps[ex["kind"]] else "mix.ratios"
            rejects.append(
                example_reject(ex, "over_kind_limit", f"{ex['kind']} limited to {limits[ex['kind']]} by {why}")
            )
        else:
            out.append(ex)
    return out, rejects
