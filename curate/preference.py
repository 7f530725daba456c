"""Preference pairs for DPO after SFT: the training split's behaviour examples as (prompt, chosen, rejected), in
TRL's conversational format.

The chosen turn is always the example's own reference answer. The rejected turn is the behaviour the example
must not show:

| kind | chosen | rejected |
| --- | --- | --- |
| benign_near_miss | the answer from the docs | a refusal in the policy's phrasing, for the look-alike category |
| qa | the answer | the policy's abstention, about the question's topic |
| grounded_qa | the cited answer | "the documentation does not cover it" |
| refusal | the refusal | the base model's compliant answer |
| abstain, grounded_abstain | the abstention | the base model's invented answer |

The base model's answers are generated at train time (train/preference.py) and cached in the user cache like the
baseline's generations, so no compliant answer to a harmful request is ever written into the repository or the
dataset folder: here such a pair has an empty ``rejected`` and ``rejected_from: base``.

Only the training split makes pairs: a test prompt never trains, in SFT or in DPO.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from curate.output import BASE_REJECTED, PAIR_KINDS, POLICY_REJECTED


def _pick(options: list[str], key: str) -> str:
    return options[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(options)]


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else text + "."


def _topic(meta: dict[str, Any]) -> str | None:
    section = (meta.get("section") or "").split(" > ")[-1].strip()
    return section or None


def _rejected_text(example: dict[str, Any], meta: dict[str, Any], behaviours: dict[str, Any]) -> str | None:
    """The policy-phrased wrong behaviour for a near-miss or a question; None when the policy gives no phrasing."""
    kind, key = example["kind"], example["id"]
    if kind == "benign_near_miss":
        categories = {c["name"]: c for c in behaviours.get("policy_categories", [])}
        category = categories.get(meta.get("category"))
        openers = behaviours.get("refusal_phrasings") or []
        if category is None or not openers:
            return None
        parts = [_pick(openers, key), category.get("refusal"), category.get("alternative")]
        return " ".join(_sentence(p) for p in parts if p)
    phrasings = behaviours.get("abstention_phrasings") or []
    topic = _topic(meta)
    if not phrasings or topic is None:
        return None
    # the recipe's abstention first, the grounded "does not cover" phrasing last (their order in behaviours.json)
    phrasing = phrasings[0] if kind == "qa" else phrasings[-1]
    return _sentence(phrasing.replace("{entity}", topic))


def build_pairs(train: list[dict[str, Any]], behaviours: dict[str, Any]) -> list[dict[str, Any]]:
    """One pair per training example of a paired kind whose rejected turn can be written (or is the base's)."""
    pairs = []
    for example in train:
        kind = example["kind"]
        if kind not in PAIR_KINDS or example["messages"][-1]["role"] != "assistant":
            continue
        meta = json.loads(example.get("meta") or "{}")
        if kind in BASE_REJECTED:
            rejected, source = [], "base"
        else:
            text = _rejected_text(example, meta, behaviours)
            if text is None:
                continue
            rejected, source = [{"role": "assistant", "content": text}], POLICY_REJECTED[kind]
        pairs.append({
            "id": example["id"],
            "kind": kind,
            "prompt": example["messages"][:-1],
            "chosen": example["messages"][-1:],
            "rejected": rejected,
            "rejected_from": source,
        })  # fmt: skip
    return pairs


def pair_counts(pairs: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """{kind: {rejected_from: n}} for stats.json and the card."""
    out: dict[str, dict[str, int]] = {}
    for pair in pairs:
        by = out.setdefault(pair["kind"], {})
        by[pair["rejected_from"]] = by.get(pair["rejected_from"], 0) + 1
    return dict(sorted(out.items()))
