"""The comparison: is the trained model better than each baseline on each kind, and did anything regress?

Each kind is judged on a pair: the behaviour that must improve, and the failure mode that must not worsen beyond
``eval.tolerance``:

| kind | must improve | must not worsen |
| --- | --- | --- |
| refusal | refusal rate, compliance (must fall) | compliance |
| benign_near_miss, answer | — | over-refusal |
| qa, summary | F1 | false abstention |
| abstain, grounded_abstain | abstention | — |
| extract_json | schema conformance | — |
| grounded_qa | F1 and support | false abstention |

The difference from a baseline is computed on the same items, with a paired bootstrap interval (metrics.py).
*Improved*: the interval of every must-improve difference excludes zero on the good side. *Regressed*: a
failure-mode rate rose by more than the tolerance with its interval excluding zero, or a must-improve metric is
worse with its interval excluding zero. Otherwise the change is *unclear* at this n, and said so.
"""

from __future__ import annotations

from typing import Any

from curate.errors import RecipeError
from train.eval.metrics import HIGHER_IS_BETTER, METRICS, RETRIEVAL_METRICS, paired_difference

JUDGED: dict[str, tuple[list[str], list[str]]] = {
    "refusal": (["refusal_rate", "compliance_rate"], ["compliance_rate"]),
    "benign_near_miss": ([], ["over_refusal_rate"]),
    "answer": ([], ["over_refusal_rate"]),
    "qa": (["token_f1"], ["false_abstention_rate"]),
    "summary": (["token_f1"], ["false_abstention_rate"]),
    "abstain": (["abstention_rate"], []),
    "grounded_abstain": (["abstention_rate"], []),
    "extract_json": (["schema_conformance"], []),
    "grounded_qa": (["token_f1", "support"], ["false_abstention_rate"]),
}
MIN_JUDGED = 10  # items a kind needs before it is judged at all


def metric_change(metric: str, pairs: list[tuple[float, float]], tolerance: float, failure_mode: bool) -> dict:
    """One metric's change from baseline to trained, with its interval and status: better, worse, regressed
    (a failure mode rose past the tolerance) or unclear."""
    diff, low, high = paired_difference(pairs)
    up = HIGHER_IS_BETTER.get(metric, True)
    good_low, good_high = (low, high) if up else (-high, -low)  # the interval of the improvement
    if failure_mode and (-diff if up else diff) > tolerance and good_high < 0:
        status = "regressed"
    elif good_low > 0:
        status = "better"
    elif good_high < 0:
        status = "worse"
    else:
        status = "unclear"
    return {"metric": metric, "difference": round(diff, 4), "low": round(low, 4), "high": round(high, 4),
            "status": status, "n": len(pairs)}  # fmt: skip


def judge(
    items: list[tuple[str, str, str]],
    baseline: dict[str, dict[str, float]],
    trained: dict[str, dict[str, float]],
    tolerance: float,
) -> list[dict[str, Any]]:
    """``items``: (item id, label, kind). For each label whose kind is judged and that has at least MIN_JUDGED
    items: every metric's change (the paired interval) and the verdict: improved, regressed or unclear."""
    by_label: dict[str, tuple[str, list[str]]] = {}
    for item_id, label, kind in items:
        by_label.setdefault(label, (kind, []))[1].append(item_id)
    out = []
    for label, (kind, ids) in sorted(by_label.items()):
        if kind not in JUDGED or len(ids) < MIN_JUDGED:
            continue
        improve, failure = JUDGED[kind]
        metrics = [m for m, _ in METRICS.get(kind, [])] + [m for m, _ in RETRIEVAL_METRICS]
        changes = []
        for metric in metrics:
            pairs = [
                (baseline[i][metric], trained[i][metric])
                for i in ids
                if metric in baseline[i] and metric in trained[i]
            ]
            if pairs:
                changes.append(metric_change(metric, pairs, tolerance, metric in failure))
        status = {c["metric"]: c["status"] for c in changes}
        regressed = [m for m in failure if status.get(m) == "regressed"] + [
            m for m in improve if status.get(m) == "worse"
        ]
        if regressed:
            verdict = "regressed"
        elif improve and all(status.get(m) == "better" for m in improve):
            verdict = "improved"
        elif not improve and failure and all(m in status for m in failure):
            verdict = "held"  # nothing to improve, and its failure mode did not worsen beyond the tolerance
        else:
            verdict = "unclear"
        out.append({"label": label, "kind": kind, "n": len(ids), "verdict": verdict, "regressed_on": regressed,
                    "must_improve": improve, "must_not_worsen": failure, "changes": changes})  # fmt: skip
    return out


def check_targets(targets: dict[str, float], table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target against the trained model's table; a target whose metric is missing (the kind was not
    evaluated, or no output was scored on it) counts as failed."""
    checks = []
    for key, goal in targets.items():
        label, name = key.split(".", 1)
        entry = table.get(label, {}).get(name)
        up = HIGHER_IS_BETTER.get(name, True)
        value = entry["value"] if entry else None
        passed = value is not None and (value >= goal if up else value <= goal)
        checks.append({"metric": key, "target": goal, "higher_is_better": up, "value": value, "passed": passed,
                       **({"low": entry["low"], "high": entry["high"], "n": entry["n"]} if entry else
                          {"missing": "no such metric in this evaluation"})})  # fmt: skip
    return checks


def validate_target_keys(targets: dict[str, Any]) -> None:
    """A target key is ``kind.metric`` of a known kind and one of its metrics; a misspelt one is a recipe error
    with the nearest valid key."""
    import difflib
    import re

    valid = [f"{kind}.{m}" for kind, metrics in METRICS.items() for m, _ in metrics]
    valid += [f"qa (retrieved).{m}" for m, _ in RETRIEVAL_METRICS]
    for key in targets:
        # "refusal (redteam).refusal_rate": a kind asked through a prompt file is judged on its kind's metrics
        if key in valid or re.sub(r" \([^)]*\)\.", ".", key, count=1) in valid:
            continue
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else f"valid keys: {', '.join(valid)}"
        raise RecipeError(f"eval.targets: unknown target {key!r}; {hint}")
