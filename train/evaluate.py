"""``gristmill eval``: generate answers for the held-out split (and red-team prompt files), score them per
behaviour kind, and compare with the untrained base model.

Everything evaluation needs is in the dataset directory: ``test.jsonl``, ``behaviours.json`` (phrasings) and
``schemas/``. Generation (generation.py) is greedy and batched with a budget per kind, and cached per model: an
interrupted eval resumes, a re-run generates nothing, and the base model's outputs are shared by every run on
that base. Results go to ``<run>/eval/eval.json`` and every generation, with its scores, to
``<run>/eval/generations.jsonl``, both written atomically.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputError, OutputError
from curate.layout import RunLayout, user_cache, write_atomic
from curate.output import check_dataset_dir, read_jsonl
from train.behaviour import DEFAULT_TARGETS, HIGHER_IS_BETTER, IMPROVES_ON, METRICS, Classifier, score
from train.generation import generate

MIN_COMPARED = 10  # held-out examples a kind needs before "better than the base" is judged on it
EXPECTED_KINDS = {"refusal": "refusal", "abstain": "abstain", "json": "extract_json", "answer": "answer"}


@dataclass
class Item:
    id: str
    kind: str
    messages: list[dict[str, str]]  # the prompt: every turn before the last assistant turn
    reference: str
    schema: str | None = None
    origin: str = "test"  # or "prompts", or "retrieved" (a qa question asked through --retrieve)
    context: dict[str, Any] | None = None  # a grounded item's excerpts and answering excerpt number
    source: str | None = None  # the row the answer comes from (a qa item's section)
    extra: dict[str, float] = field(default_factory=dict)  # scores known before generating (retrieval hits)

    @property
    def label(self) -> str:
        if self.origin == "retrieved":
            return "qa (retrieved)"
        return self.kind if self.origin == "test" else f"{self.kind} ({self.origin})"


def test_items(dataset_dir: Path) -> list[Item]:
    items = []
    for row in read_jsonl(dataset_dir / "test.jsonl"):
        messages = row["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        meta = json.loads(row.get("meta") or "{}")
        context = None
        if "excerpts" in meta:  # grounded: the user turn without its question is what the answer may draw on
            user = messages[last - 1]["content"]
            context = {
                "excerpts": user.replace(meta.get("question", ""), ""),
                "answer_excerpt": meta.get("answer_excerpt"),
            }
        sources = row.get("source_ids") or []
        items.append(
            Item(
                row["id"],
                row["kind"],
                messages[:last],
                messages[last]["content"],
                meta.get("schema"),
                context=context,
                source=sources[0] if sources else None,
            )
        )
    return items


def retrieved_items(items: list[Item], retrieve: Callable[[str], Any]) -> list[Item]:
    """The held-out qa questions again, asked through retrieval (``--retrieve``): the user turn becomes the top
    excerpts of the dataset's documents and the question, as grounded examples are written, and each item
    records whether its answering section was retrieved at 1, 3 and 5 (``hit_at_k``). ``retrieve(question)``
    returns the user turn (``user``), the ids of the excerpts shown (``shown``) and the ranked ids (``ranked``)."""
    out = []
    for it in items:
        if it.kind != "qa" or it.origin != "test" or it.source is None:
            continue
        question = it.messages[-1]["content"]
        found = retrieve(question)
        shown = found.shown.index(it.source) + 1 if it.source in found.shown else None
        out.append(
            Item(
                f"{it.id}:retrieved",
                "grounded_qa",
                [*it.messages[:-1], {"role": "user", "content": found.user}],
                it.reference,
                origin="retrieved",
                context={"excerpts": found.user.replace(question, ""), "answer_excerpt": shown},
                source=it.source,
                extra={f"hit_at_{k}": float(it.source in found.ranked[:k]) for k in (1, 3, 5)},
            )
        )
    return out


def prompt_items(path: Path, system: str | None) -> list[Item]:
    """``--prompts``: JSONL of {"prompt", "expected": refusal|abstain|json|answer, "schema"?, "system"?, "id"?}."""
    if not path.is_file():
        raise InputError(f"--prompts {path}: no such file; give a JSONL file of {{prompt, expected}} objects")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: not valid JSON ({err.msg}); write one object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise InputError(f'{where}: needs a non-empty "prompt" string, got {line[:80]!r}')
        expected = row.get("expected")
        if expected not in EXPECTED_KINDS:
            raise InputError(
                f"{where}: expected {expected!r} is not one of {', '.join(EXPECTED_KINDS)}; say what the model "
                "should do with this prompt"
            )
        if expected == "json" and not row.get("schema"):
            raise InputError(f'{where}: expected json needs "schema", the name of a file in the dataset\'s schemas/')
        sys_prompt = row.get("system", system)
        messages = ([{"role": "system", "content": sys_prompt}] if sys_prompt else []) + [
            {"role": "user", "content": row["prompt"]}
        ]
        items.append(
            Item(
                str(row.get("id", f"{path.stem}-{n}")),
                EXPECTED_KINDS[expected],
                messages,
                "",
                row.get("schema"),
                "prompts",
            )
        )
    return items


def summarize(items: list[Item], outputs: dict[str, str], classifier: Classifier, schemas: dict[str, Any]):
    """(per label {n, metric: mean over the items the metric applies to}, per item scores)."""
    per_item = {
        it.id: {
            **score(it.kind, outputs[it.id], it.reference, classifier, schemas.get(it.schema), it.context),
            **it.extra,
        }
        for it in items
    }
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    applied: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    counts: dict[str, int] = defaultdict(int)
    for it in items:
        counts[it.label] += 1
        for metric, value in per_item[it.id].items():
            sums[it.label][metric] += value
            applied[it.label][metric] += 1
    table = {
        label: {
            "n": counts[label],
            **{m: round(v / applied[label][m], 4) for m, v in sorted(sums[label].items())},
        }
        for label in sorted(counts)
    }
    return table, per_item


@dataclass
class EvalResult:
    eval_dir: Path
    report: dict[str, Any]


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


def evaluate(
    model_dir: Path,
    dataset_dir: Path,
    eval_dir: Path,
    *,
    baseline: Path | str | None,
    prompts: list[Path] | None = None,
    max_new_tokens: int = 128,
    budgets: dict[str, int] | None = None,
    batch_size: int = 8,
    targets: dict[str, float] | None = None,
    on_phase: Callable[[str, int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    threads: int = 1,
    retrieve: Callable[[str], Any] | None = None,
) -> EvalResult:
    """Generate and score the held-out split (and ``prompts`` files) with the trained model and the baseline;
    with ``retrieve``, the held-out qa questions are also asked through retrieval (``retrieved_items``)."""
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
    classifier = Classifier.from_behaviours(behaviours)
    models = {"trained": Path(model_dir)}
    notes = []
    if baseline:
        if Path(baseline).is_dir():
            models["baseline"] = Path(baseline)
        else:
            notes.append(f"baseline {baseline!r} is not a local model folder; evaluated without a baseline")
    budget = {kind: min(max_new_tokens, n) for kind, n in (budgets or {}).items()}
    requests = {it.id: (it.messages, budget.get(it.kind, max_new_tokens)) for it in items}
    caches = {"trained": eval_dir / "cache", "baseline": user_cache() / "generations"}
    tables, scored, outputs = {}, {}, {}
    for tag, directory in models.items():
        if on_phase:
            on_phase(tag, len(items))
        outputs[tag] = generate(
            directory,
            requests,
            batch_size=batch_size,
            cache_dir=caches[tag],
            prefix="trained-" if tag == "trained" else "",
            on_batch=on_batch,
            threads=threads,
        )
        tables[tag], scored[tag] = summarize(items, outputs[tag], classifier, schemas)
    goals = {**DEFAULT_TARGETS, **(targets or {})}
    checks = []
    for metric, goal in goals.items():
        label, name = metric.split(".", 1)
        value = tables["trained"].get(label, {}).get(name)
        if value is None:
            continue
        up = HIGHER_IS_BETTER.get(metric, True)
        checks.append({"metric": metric, "target": goal, "higher_is_better": up, "value": value,
                       "passed": value >= goal if up else value <= goal})  # fmt: skip
    versus = [
        {"kind": kind, "metric": metric, "n": tables["trained"][kind]["n"],
         "baseline": tables["baseline"][kind].get(metric), "trained": tables["trained"][kind].get(metric)}
        for kind, metric in IMPROVES_ON.items()
        if "baseline" in tables and kind in tables["trained"] and kind in tables["baseline"]
    ]  # fmt: skip
    for row in versus:
        row["better"] = row["trained"] is not None and (row["baseline"] is None or row["trained"] > row["baseline"])
        row["counted"] = row["n"] >= MIN_COMPARED  # a handful of examples cannot tell two models apart
    report = {
        "model": str(model_dir),
        "baseline": str(models.get("baseline", "")) or None,
        "dataset": str(dataset_dir),
        "prompts": [str(p) for p in prompts or []],
        "max_new_tokens": max_new_tokens,
        "budgets": dict(sorted(budget.items())),
        "kinds": {
            label: {"n": tables["trained"][label]["n"], **{tag: _metrics(tables[tag][label]) for tag in tables}}
            for label in tables["trained"]
        },
        "targets": checks,
        "passed": all(c["passed"] for c in checks),
        "versus_baseline": versus,  # each held-out kind's IMPROVES_ON metric, trained against the base
        "better_than_baseline": any(r["counted"] for r in versus) and all(r["better"] for r in versus if r["counted"]),
        "metrics_by_kind": {kind: [m for m, _ in metrics] for kind, metrics in METRICS.items()},
        "notes": notes,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    rows = [
        {
            "id": it.id,
            "kind": it.kind,
            "origin": it.origin,
            "model": tag,
            "prompt": it.messages[-1]["content"],
            "reference": it.reference,
            "output": outputs[tag][it.id],
            "scores": scored[tag][it.id],
        }
        for tag in models
        for it in items
    ]
    write_atomic(eval_dir / "eval.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    write_atomic(eval_dir / "generations.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return EvalResult(eval_dir, report)


def _metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "n"}
