"""A review's decisions applied by mix (``mix.review``): which examples a reviewer rejected, edited, accepted or
rescued, checked against each example's content hash, with counts per kind for stats.json and the dataset card.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from curate.errors import RecipeError
from curate.review.decisions import Review, check_edit, check_json_answer, content_hash, read_decisions

COUNTED = ("examples", "reviewed", "accepted", "edited", "rejected", "rescued", "stale")


class AppliedReview:
    """``apply`` each example once, in mix's loop; ``summary`` afterwards. ``schemas``: the recipe's JSON schemas by
    name, against which an edited extract_json answer must still validate."""

    def __init__(self, section, schemas: dict[str, Any] | None = None):
        path = Path(section.file)
        if not path.is_file():
            raise RecipeError(
                f"mix.review: decisions file {section.file!r} does not exist; run `gristmill review RUN` to write "
                "<run>/review/decisions.jsonl, or remove mix.review"
            )
        self.decisions = read_decisions(path)
        self.only_accepted = section.only_accepted
        self.schemas = schemas or {}
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.problems = list(self.decisions.problems)
        self.seen: set[str] = set()

    def apply(self, example: dict[str, Any]) -> tuple[dict[str, Any], Review | None, dict[str, Any] | None]:
        """(the example as it trains, its review or None, the original when an edit replaced its turns)."""
        digest = content_hash(example)
        kind, counts = example["kind"], self.counts[example["kind"]]
        self.seen.add(example["id"])
        counts["examples"] += 1
        review = self.decisions.of(example["id"], digest)
        if review is None:
            if self.decisions.hashes_of(example["id"]):
                counts["stale"] += 1
                self.problems.append(
                    f"{example['id']} ({kind}) changed since it was reviewed (content hash now {digest}): its "
                    "decision is not applied; review it again"
                )
            return example, None, None
        if not review.reviewed:
            return example, None, None
        counts["reviewed"] += 1
        counts[review.status] += 1
        counts["rescued"] += review.rescued
        if not review.edit or review.status != "accepted":
            return example, review, None
        why = check_edit(example["messages"], review.edit)
        if not why and kind == "extract_json":
            schema = self.schemas.get(json.loads(example.get("meta") or "{}").get("schema"))
            why = check_json_answer(review.edit, schema)
        if why:
            self.problems.append(f"{example['id']} ({kind}): the edit is not applied: {why}")
            return example, review, None
        counts["edited"] += 1
        meta = json.loads(example.get("meta") or "{}")
        meta["edited_by_review"] = {"hash": digest, "who": review.who, "when": review.when}
        edited = {**example, "messages": review.edit, "meta": json.dumps(meta, ensure_ascii=False, sort_keys=True)}
        return edited, review, example

    def summary(self) -> dict[str, Any]:
        """stats.json's ``review``: the file, its lines, counts per kind, decisions for ids this curate did not
        make, and every problem (bad lines, stale hashes, refused edits)."""
        missing = sorted(set(self.decisions.hashes) - self.seen)
        problems = list(self.problems)
        if missing:
            problems.append(
                f"{len(missing)} reviewed ids were not generated this time (their template or document changed): "
                f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
            )
        return {
            "file": str(self.decisions.path),
            "lines": self.decisions.lines,
            "only_accepted": self.only_accepted,
            "by_kind": {k: {c: n[c] for c in COUNTED} for k, n in sorted(self.counts.items())},
            "not_generated": len(missing),
            "problems": problems,
        }
