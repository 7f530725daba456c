"""``gristmill eval``: generate answers for the held-out split (and ``--prompts``), score them per behaviour kind,
and compare with the untrained starting model.

Everything evaluation needs is in the dataset directory: ``test.jsonl``, ``behaviours.json`` (phrasings) and
``schemas/``. Generation is greedy and batched (prompts sorted by length, left padding), bounded by
``max_new_tokens``. Each batch's outputs are appended to a cache file keyed by the model's files and the
generation settings, so an interrupted eval resumes where it stopped and a re-run generates nothing. Results go
to ``<run>/eval/eval.json`` and every generation, with its scores, to ``<run>/eval/generations.jsonl``, both
written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import InputError, OutputError, TrainError
from curate.layout import RunLayout
from curate.output import check_dataset_dir, read_jsonl
from train.behaviour import DEFAULT_TARGETS, HIGHER_IS_BETTER, METRICS, Classifier, score

EXPECTED_KINDS = {"refusal": "refusal", "abstain": "abstain", "json": "extract_json", "answer": "answer"}


@dataclass
class Item:
    id: str
    kind: str
    messages: list[dict[str, str]]  # the prompt: every turn before the last assistant turn
    reference: str
    schema: str | None = None
    origin: str = "test"  # or "prompts"

    @property
    def label(self) -> str:
        return self.kind if self.origin == "test" else f"{self.kind} (prompts)"


def test_items(dataset_dir: Path) -> list[Item]:
    items = []
    for row in read_jsonl(dataset_dir / "test.jsonl"):
        messages = row["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        meta = json.loads(row.get("meta") or "{}")
        items.append(Item(row["id"], row["kind"], messages[:last], messages[last]["content"], meta.get("schema")))
    return items


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
                str(row.get("id", f"prompt-{n}")), EXPECTED_KINDS[expected], messages, "", row.get("schema"), "prompts"
            )
        )
    return items


def _model_key(model_dir: Path, max_new_tokens: int) -> str:
    h = hashlib.sha256(str(max_new_tokens).encode())
    for f in sorted(model_dir.iterdir()):
        if f.is_file():
            stat = f.stat()
            h.update(f"{f.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load_model(model_dir: Path, threads: int = 1):
    """(model in eval mode, tokenizer padding on the left) from a folder, through from_pretrained."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise TrainError(f"cannot load the model in {model_dir} ({err}); train first or give a model folder") from None
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not torch.cuda.is_available():
        torch.set_num_threads(threads)
    return model, tokenizer


def generate(
    model_dir: Path,
    items: list[Item],
    *,
    max_new_tokens: int,
    batch_size: int,
    cache: Path,
    on_batch: Callable[[int], None] | None = None,
    threads: int = 1,
) -> dict[str, str]:
    """{item id: generated text}, greedy; resumes from ``cache`` (JSONL appended per batch)."""
    import torch

    done = read_cache(cache)
    todo = [it for it in items if it.id not in done]
    if on_batch:
        on_batch(len(items) - len(todo))
    if not todo:
        return done
    model, tokenizer = load_model(model_dir, threads)
    texts = {
        it.id: tokenizer.apply_chat_template(it.messages, tokenize=False, add_generation_prompt=True) for it in todo
    }
    todo.sort(key=lambda it: (len(texts[it.id]), it.id))  # similar lengths together: less padding
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache, "a", encoding="utf-8") as out, torch.inference_mode():
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            enc = tokenizer(
                [texts[it.id] for it in batch], return_tensors="pt", padding=True, add_special_tokens=False
            )
            generated = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = generated[:, enc["input_ids"].shape[1] :]
            for it, ids in zip(batch, new, strict=True):
                done[it.id] = tokenizer.decode(ids, skip_special_tokens=True).strip()
                out.write(json.dumps({"id": it.id, "output": done[it.id]}, ensure_ascii=False) + "\n")
            out.flush()
            if on_batch:
                on_batch(len(batch))
    return done


def read_cache(cache: Path) -> dict[str, str]:
    """{item id: output} already generated. A line torn by a kill mid-write is dropped (it is generated again)
    and the file rewritten without it, so the next append starts on a line of its own."""
    if not cache.exists():
        return {}
    text = cache.read_text(encoding="utf-8")
    rows, torn = [], not text.endswith("\n") and bool(text)
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            torn = True
    if torn:
        _write_atomic(cache, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {r["id"]: r["output"] for r in rows}


def summarize(items: list[Item], outputs: dict[str, str], classifier: Classifier, schemas: dict[str, Any]):
    """(per label {n, metric: mean}, per item scores)."""
    per_item = {
        it.id: score(it.kind, outputs[it.id], it.reference, classifier, schemas.get(it.schema)) for it in items
    }
    sums: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    counts: dict[str, int] = defaultdict(int)
    for it in items:
        counts[it.label] += 1
        for metric, value in per_item[it.id].items():
            sums[it.label][metric] += value
    table = {
        label: {"n": counts[label], **{m: round(v / counts[label], 4) for m, v in sorted(sums[label].items())}}
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
        return json.loads(layout.training_summary.read_text()).get("model")
    return None


def evaluate(
    model_dir: Path,
    dataset_dir: Path,
    eval_dir: Path,
    *,
    baseline: Path | str | None,
    prompts: Path | None = None,
    max_new_tokens: int = 128,
    batch_size: int = 8,
    targets: dict[str, float] | None = None,
    on_phase: Callable[[str, int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    threads: int = 1,
) -> EvalResult:
    start = time.perf_counter()
    behaviours = json.loads((dataset_dir / "behaviours.json").read_text(encoding="utf-8"))
    schemas = {
        p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted((dataset_dir / "schemas").glob("*.json"))
    }
    persona = (behaviours.get("persona") or {}).get("system")
    items = test_items(dataset_dir) + (prompt_items(prompts, persona) if prompts else [])
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
    tables, scored, outputs = {}, {}, {}
    for tag, directory in models.items():
        if on_phase:
            on_phase(tag, len(items))
        key = _model_key(directory, max_new_tokens)
        outputs[tag] = generate(
            directory,
            items,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            cache=eval_dir / "cache" / f"{tag}-{key}.jsonl",
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
    report = {
        "model": str(model_dir),
        "baseline": str(models.get("baseline", "")) or None,
        "dataset": str(dataset_dir),
        "prompts": str(prompts) if prompts else None,
        "max_new_tokens": max_new_tokens,
        "kinds": {
            label: {"n": tables["trained"][label]["n"], **{tag: _metrics(tables[tag][label]) for tag in tables}}
            for label in tables["trained"]
        },
        "targets": checks,
        "passed": all(c["passed"] for c in checks),
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
    _write_atomic(eval_dir / "eval.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _write_atomic(eval_dir / "generations.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return EvalResult(eval_dir, report)


def _metrics(row: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in row.items() if k != "n"}


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
