"""``gristmill eval``: answer the held-out items with each model, score them, compare, and write eval.json.

Models (``tag``: what it is):

- ``trained``: the fine-tuned model, in process;
- ``base``: the model training started from, untouched (``eval.baselines``);
- ``prompted``: the same base with the policy in a system prompt and ``eval.prompted.shots`` training examples
  before each item (items.py): what a team would try before fine-tuning;
- ``<name>`` and ``<name> (prompted)``: a served model (``--endpoint`` or ``eval.endpoints``), without and with
  the policy prompt, through the project's LLM client.

Generations are cached: the trained model's in ``<run>/eval/cache``, the base's and prompted base's in the user
cache (every run on that base shares them), an endpoint's in the LLM client's request cache. The trained model is
compared with every other model (compare.py); each kind's verdict, every regression and every target go to
``<run>/eval/eval.json``, and every generation with its scores and the detector's label to
``generations.jsonl``, both written atomically.

Integrity checks run on every eval, so a broken eval cannot pass as a good result: the detector must label
the references of the held-out split as their kinds demand (refusals refused, abstentions abstained, answers
answered), and no model may give empty answers to more than 5% of the items.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputError, OutputError
from curate.layout import RunLayout, user_cache, write_atomic
from curate.output import check_dataset_dir
from train.eval.compare import check_targets, judge
from train.eval.detector import Detector
from train.eval.items import (
    Item,
    prompt_items,
    prompted_shots,
    prompted_system,
    retrieved_items,
    test_items,
    with_policy_prompt,
)
from train.eval.metrics import DEFAULT_TARGETS, METRICS, score, summarize

MAX_EMPTY = 0.05  # share of empty answers above which a model's outputs are not an evaluation
MIN_DETECTOR_AGREEMENT = 0.95  # on the references: below it, the detector cannot read this dataset's phrasings
REFERENCE_OUTCOME = {"refusal": "refused", "abstain": "abstained", "grounded_abstain": "abstained",
                     "qa": "answered", "benign_near_miss": "answered", "grounded_qa": "answered"}  # fmt: skip


@dataclass
class Contender:
    """One model to evaluate: in process (``model_dir``) or behind an endpoint (``endpoint``: llm settings)."""

    tag: str
    model_dir: Path | None = None
    endpoint: Any = None
    prompted: bool = False  # the policy system prompt and shots go before every item
    cache_dir: Path | None = None
    prefix: str = ""

    def describe(self) -> dict[str, Any]:
        from curate.llm.client import redact_url

        where = (
            {"model": str(self.model_dir)}
            if self.model_dir
            else {"endpoint": redact_url(self.endpoint.base_url), "model": self.endpoint.model}
        )
        return {**where, "prompted": self.prompted}


@dataclass
class EvalResult:
    eval_dir: Path
    report: dict[str, Any]


@dataclass
class EvalSettings:
    max_new_tokens: int = 128
    budgets: dict[str, int] = field(default_factory=dict)
    batch_size: int = 8
    targets: dict[str, float] = field(default_factory=dict)
    tolerance: float = 0.05
    shots: int = 4
    threads: int = 1


def resolve_paths(path: Path | None, model: Path | None, dataset: Path | None) -> tuple[Path, Path, Path]:
    """(model dir, dataset dir, eval dir) from a run directory, or from --model and --dataset."""
    if path is not None:
        dataset_dir = check_dataset_dir(dataset or path)
        layout = RunLayout.of(dataset_dir)
        trained = model or layout.trained_model()
        if trained is None:
            raise OutputError(
                f"{layout.root} has no trained model ({layout.final}); run `gristmill train {layout.root}` first"
            )
        return Path(trained), dataset_dir, layout.eval
    if model is None or dataset is None:
        raise InputError("give a run directory, or both --model DIR and --dataset DIR")
    dataset_dir = check_dataset_dir(dataset)
    return Path(model), dataset_dir, RunLayout.of(dataset_dir).eval


def default_baseline(model_dir: Path) -> Path | str | None:
    """The untrained starting model of a trained model folder: the run's base-tiny, or the model training started
    from (as training_summary.json names it)."""
    layout = RunLayout.create(model_dir.parent.parent, model_dir.parent)
    if layout.base_tiny.is_dir():
        return layout.base_tiny
    if layout.training_summary.is_file():
        summary = json.loads(layout.training_summary.read_text())
        return summary.get("base") or summary.get("model")
    return None


def contenders(
    model_dir: Path,
    eval_dir: Path,
    baseline: Path | str | None,
    baselines: list[str],
    endpoints: list[tuple[str, Any]],
) -> tuple[list[Contender], list[str]]:
    """(the models to evaluate, notes): trained, the base and the prompted base as ``baselines`` asks (when the
    base is a local folder), and each endpoint ((name, llm settings[, prompted])) without and with the policy
    prompt."""
    out = [Contender("trained", Path(model_dir), cache_dir=eval_dir / "cache", prefix="trained-")]
    notes = []
    if baseline and baselines:
        if Path(baseline).is_dir():
            shared = user_cache() / "generations"
            out += [Contender(tag, Path(baseline), prompted=tag == "prompted", cache_dir=shared) for tag in baselines]
        else:
            notes.append(f"baseline {baseline!r} is not a local model folder; evaluated without a baseline")
    for name, settings, *prompted in endpoints:  # (name, llm settings[, also with the policy prompt])
        out.append(Contender(name, endpoint=settings))
        if not prompted or prompted[0]:
            out.append(Contender(f"{name} (prompted)", endpoint=settings, prompted=True))
    return out, notes


def evaluate(
    model_dir: Path,
    dataset_dir: Path,
    eval_dir: Path,
    *,
    baseline: Path | str | None,
    settings: EvalSettings | None = None,
    baselines: tuple[str, ...] | list[str] = ("base", "prompted"),
    endpoints: list[tuple[str, Any]] | None = None,
    prompts: list[Path] | None = None,
    on_phase: Callable[[str, int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    retrieve: Callable[[str], Any] | None = None,
    answer_judge: Callable[[list[tuple[str, str]]], list[Any]] | None = None,
) -> EvalResult:
    """Generate, score and compare (module docstring). ``answer_judge`` labels (request, answer) pairs instead of the
    rule detector (``eval.judge: llm``): it returns {outcome, partial} per pair, or an exception for a pair it
    could not judge (the rules decide that one)."""
    from train.eval.endpoint import generate_via_endpoint
    from train.eval.generation import generate

    settings = settings or EvalSettings()
    start = time.perf_counter()
    behaviours = json.loads((dataset_dir / "behaviours.json").read_text(encoding="utf-8"))
    schemas = {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((dataset_dir / "schemas").glob("*.json"))
    }
    persona = (behaviours.get("persona") or {}).get("system")
    items = test_items(dataset_dir) + [it for path in prompts or [] for it in prompt_items(Path(path), persona)]
    if retrieve is not None:
        items += retrieved_items(items, retrieve)
    if not items:
        raise InputError(f"{dataset_dir} has no test examples and no --prompts were given: nothing to evaluate")
    detector = Detector.from_behaviours(behaviours)
    categories = behaviours.get("policy_categories") or []
    models, notes = contenders(model_dir, eval_dir, baseline, list(baselines), endpoints or [])
    budget = {kind: min(settings.max_new_tokens, n) for kind, n in settings.budgets.items()}
    system, shots = prompted_system(behaviours, schemas), prompted_shots(dataset_dir, settings.shots)

    outputs: dict[str, dict[str, str]] = {}
    seconds: dict[str, float] = {}
    for m in models:
        began = time.perf_counter()
        requests = {
            it.id: (with_policy_prompt(it, system, shots) if m.prompted else it.messages,
                    budget.get(it.kind, settings.max_new_tokens))
            for it in items
        }  # fmt: skip
        if on_phase:
            on_phase(m.tag, len(items))
        if m.endpoint is not None:
            outputs[m.tag] = generate_via_endpoint(m.endpoint, requests, on_batch=on_batch)
        else:
            outputs[m.tag] = generate(
                m.model_dir, requests, batch_size=settings.batch_size, cache_dir=m.cache_dir, prefix=m.prefix,
                on_batch=on_batch, threads=settings.threads,
            )  # fmt: skip
        seconds[m.tag] = round(time.perf_counter() - began, 2)

    judged = {"judge": "rules"}
    if answer_judge is not None:
        detector, judged = judged_detector(answer_judge, detector, items, outputs)

    scored: dict[str, dict[str, dict[str, float]]] = {}
    labels: dict[str, dict[str, str]] = {}
    for tag, out in outputs.items():
        scored[tag], labels[tag] = {}, {}
        for it in items:
            scores, label = score(it.kind, out[it.id], it.reference, detector, schemas.get(it.schema), it.context,
                                  it.category, categories)  # fmt: skip
            scored[tag][it.id], labels[tag][it.id] = {**scores, **it.extra}, label
    tables = {tag: summarize([it.label for it in items], [scored[tag][it.id] for it in items]) for tag in outputs}
    trained = tables["trained"]
    keyed = [(it.id, it.label, it.kind) for it in items]
    comparisons = {tag: judge(keyed, scored[tag], scored["trained"], settings.tolerance) for tag in outputs}
    comparisons.pop("trained")
    regressions = [
        {"versus": tag, "label": row["label"], **change, **_values(tables, tag, row["label"], change["metric"])}
        for tag, rows in comparisons.items()
        for row in rows
        for change in row["changes"]
        if change["metric"] in row["regressed_on"]
    ]
    goals = {**DEFAULT_TARGETS, **settings.targets}
    checks = check_targets(goals, trained)
    integrity = integrity_checks(items, outputs, detector)
    report = {
        "models": {m.tag: m.describe() for m in models},
        "dataset": str(dataset_dir),
        "prompts": [str(p) for p in prompts or []],
        "max_new_tokens": settings.max_new_tokens,
        "budgets": dict(sorted(budget.items())),
        "tolerance": settings.tolerance,
        "prompted": {"shots": settings.shots, "system": system},
        "kinds": {
            label: {
                "n": trained[label]["n"],
                "kind": _kind_of(items, label),
                **{tag: _metrics(tables[tag][label]) for tag in tables},
            }
            for label in trained
        },
        "labels": {tag: _label_counts(items, labels[tag]) for tag in labels},
        "comparisons": comparisons,
        "regressions": regressions,
        "targets": checks,
        "passed": all(c["passed"] for c in checks),
        "integrity": integrity,
        **judged,
        "metrics_by_kind": {kind: [m for m, _ in metrics] for kind, metrics in METRICS.items()},
        "notes": notes,
        "wall_seconds": round(time.perf_counter() - start, 2),
        "seconds": seconds,  # per model: generating (nothing when its cache had every output) and loading it
    }
    rows = [
        {"id": it.id, "kind": it.kind, "origin": it.origin, "model": tag, "prompt": it.messages[-1]["content"],
         "reference": it.reference, "output": outputs[tag][it.id], "label": labels[tag][it.id],
         "scores": scored[tag][it.id]}
        for tag in outputs for it in items
    ]  # fmt: skip
    write_atomic(eval_dir / "eval.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(eval_dir / "generations.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return EvalResult(eval_dir, report)


def judged_detector(answer_judge, rules: Detector, items: list[Item], outputs: dict[str, dict[str, str]]):
    """(a detector answering with ``answer_judge``'s verdicts, {judge, judged, judge_failures}). The held-out
    references are judged too, so the integrity check reads the judge actually used."""
    from train.eval.detector import JudgedDetector, Verdict

    pairs: dict[str, str] = {}  # answer text -> the request it answered (one is enough: the label is the text's)
    for it in items:
        for text in [*(out[it.id] for out in outputs.values()), *([it.reference] if it.origin == "test" else [])]:
            pairs.setdefault(text, it.messages[-1]["content"])
    texts = sorted(pairs)
    verdicts, failures = {}, 0
    for text, got in zip(texts, answer_judge([(pairs[t], t) for t in texts]), strict=True):
        if isinstance(got, dict):
            verdicts[text] = Verdict(got["outcome"], partial=bool(got.get("partial")), cue="llm judge")
        else:
            failures += 1
    return JudgedDetector(rules, verdicts), {"judge": "llm", "judged": len(texts), "judge_failures": failures}


def integrity_checks(items: list[Item], outputs: dict[str, dict[str, str]], detector: Detector) -> dict[str, Any]:
    """{detector_agreement: on the held-out references, empty: per model share of empty answers, problems: [..]}."""
    problems = []
    refs = [(it, REFERENCE_OUTCOME[it.kind]) for it in items if it.origin == "test" and it.kind in REFERENCE_OUTCOME]
    agree = sum(detector(it.reference).label == want for it, want in refs)
    agreement = agree / len(refs) if refs else 1.0
    if agreement < MIN_DETECTOR_AGREEMENT:
        wrong = next(it for it, want in refs if detector(it.reference).label != want)
        problems.append(
            f"the detector labels {agreement:.0%} of the held-out references as their kinds demand (at least "
            f"{MIN_DETECTOR_AGREEMENT:.0%} needed); first wrong: {wrong.kind} {wrong.reference[:80]!r}"
        )
    empty = {tag: round(sum(not o.strip() for o in out.values()) / len(out), 4) for tag, out in outputs.items()}
    problems += [f"{tag}: {share:.0%} of the answers are empty" for tag, share in empty.items() if share > MAX_EMPTY]
    return {"detector_agreement": round(agreement, 4), "references": len(refs), "empty": empty, "problems": problems}


def _values(tables: dict[str, Any], tag: str, label: str, metric: str) -> dict[str, float]:
    return {"baseline": tables[tag][label][metric]["value"], "trained": tables["trained"][label][metric]["value"]}


def _kind_of(items: list[Item], label: str) -> str:
    return next(it.kind for it in items if it.label == label)


def _label_counts(items: list[Item], labels: dict[str, str]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter] = {}
    for it in items:
        out.setdefault(it.label, Counter())[labels[it.id]] += 1
    return {label: dict(sorted(c.items())) for label, c in sorted(out.items())}


def _metrics(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != "n"}


def gate_failures(report: dict[str, Any]) -> list[str]:
    """What ``--strict`` fails on: missed targets, regressions against any baseline, integrity problems."""
    out = [f"target {t['metric']} missed ({t['value']} against {t['target']})" for t in report["targets"]
           if not t["passed"]]  # fmt: skip
    out += [f"{r['label']} regressed versus {r['versus']} on {r['metric']} ({r['baseline']:.2f} -> {r['trained']:.2f})"
            for r in report["regressions"]]  # fmt: skip
    return out + [f"integrity: {p}" for p in report["integrity"]["problems"]]
