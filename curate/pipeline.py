"""Runs a recipe's curation: read → stages → generate → mix and split → the dataset directory.

Every step's output is a checkpoint under ``<run>/work/steps/NN-<step>/<key>/``, written to a temporary
folder and renamed when complete, so a killed run resumes at the first unfinished step. The key chains the
input fingerprint (content of every file), the step's name, version and config, the upstream key, the seed,
``--limit`` and the package version: change one stage's config and that stage and everything after it re-run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curate import __version__
from curate.output import dataset_card, iter_rows, read_jsonl, save_dataset, write_dataset, write_jsonl
from curate.readers import READ_STAGE, discover, fingerprint_files, iter_documents
from curate.rows import DOC_COLUMNS, REJECT_DETAIL, REJECT_REASON, SCRATCH_PREFIX, reject_envelope
from curate.text import count_words


class Reporter:
    """Progress hooks; the CLI passes a rich implementation, library callers get silence."""

    def step_started(self, step: str, total: int | None) -> None: ...

    def advance(self, n: int) -> None: ...

    def step_finished(self, stat: StepStat) -> None: ...


@dataclass
class StepStat:
    step: str
    rows_in: int
    rows_out: int
    rejected: dict[str, int] = field(default_factory=dict)  # reason slug (before any ':') -> count
    counters: dict[str, int] = field(default_factory=dict)  # sums of a stage's _count_<name> columns
    seconds: float = 0.0
    cached: bool = False
    expands: bool = False


@dataclass
class PlannedStep:
    label: str
    key: str
    path: Path

    @property
    def done(self) -> bool:
        return self.path.is_dir()


@dataclass
class CurateResult:
    run_dir: Path
    dataset_dir: Path
    stats: dict[str, Any]
    steps: list[StepStat]


def checkpoint_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def reason_slug(reason: str) -> str:
    return reason.split(":", 1)[0]


class _Steps:
    """Checkpoint folders of one run."""

    def __init__(self, run_dir: Path):
        self.root = run_dir / "work" / "steps"

    def plan(self, index: int, name: str, key: str) -> PlannedStep:
        return PlannedStep(f"{index:02d}-{name}", key, self.root / f"{index:02d}-{name}" / key[:20])

    def begin(self, step: PlannedStep) -> Path:
        step.path.parent.mkdir(parents=True, exist_ok=True)
        for stale in step.path.parent.glob(".tmp-*"):  # left by a killed run
            shutil.rmtree(stale, ignore_errors=True)
        tmp = step.path.parent / f".tmp-{step.path.name}-{os.getpid()}"
        tmp.mkdir()
        return tmp

    def commit(self, step: PlannedStep, tmp: Path) -> None:
        shutil.rmtree(tmp / "_scratch", ignore_errors=True)
        if step.path.exists():  # re-run of a step whose rows a scrubbing stage removed
            stale = step.path.parent / f".tmp-stale-{os.getpid()}"
            os.replace(step.path, stale)
        os.replace(tmp, step.path)
        for sibling in step.path.parent.iterdir():  # stale keys of this step: a changed recipe replaced them
            if sibling != step.path:
                shutil.rmtree(sibling, ignore_errors=True)


def _save_rows(batches, path: Path, key: str) -> int:
    """Write record batches of document rows (extra columns dropped) as a saved dataset at ``path`` in one
    streaming pass, one batch in memory at a time. datasets' own save_to_disk would read everything back
    through a memory map; instead an empty dataset of the same features and fingerprint is saved (state.json,
    dataset_info.json) and its one shard is replaced by the stream written here."""
    import pyarrow as pa
    from datasets import Dataset, DatasetInfo

    from curate.rows import doc_features

    features = doc_features()
    schema = features.arrow_schema
    empty = pa.Table.from_pylist([], schema=schema)
    save_dataset(Dataset(empty, info=DatasetInfo(features=features), fingerprint=key[:32]), path)
    shard = path / "data-00000-of-00001.arrow"
    rows = 0
    with pa.OSFile(str(shard) + ".tmp", "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            part = pa.Table.from_batches([batch]).select(list(DOC_COLUMNS)).cast(schema)
            writer.write_table(part)
            rows += part.num_rows
    os.replace(str(shard) + ".tmp", shard)
    return rows


def _write_step_meta(tmp: Path, stat: StepStat, rejects: list[dict[str, Any]]) -> None:
    write_jsonl(tmp / "rejects.jsonl", rejects)
    (tmp / "stat.json").write_text(json.dumps(asdict(stat), sort_keys=True))


def _cached_stat(step: PlannedStep) -> StepStat:
    stat = StepStat(**json.loads((step.path / "stat.json").read_text()))
    stat.cached = True
    return stat


def _read_step(recipe, files, step: PlannedStep, steps: _Steps, reporter: Reporter, limit: int | None) -> StepStat:
    """Stream documents into the checkpoint in batches: no list of the whole corpus is ever in memory."""
    import pyarrow as pa

    from curate.rows import doc_features

    start = time.perf_counter()
    tmp = steps.begin(step)
    schema = doc_features().arrow_schema
    rejects: list[dict[str, Any]] = []
    n_files = 0

    def on_file(_):
        nonlocal n_files
        n_files += 1
        reporter.advance(1)

    def batches():
        rows: list[dict[str, Any]] = []
        for kind, item in iter_documents(files, recipe.input.fields, limit, on_file=on_file):
            if kind == "reject":
                rejects.append(item)
                continue
            rows.append(item)
            if len(rows) >= 1000:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)
                rows = []
        yield pa.RecordBatch.from_pylist(rows, schema=schema)

    n_rows = _save_rows(batches(), tmp / "rows", step.key)
    stat = StepStat(
        READ_STAGE,
        rows_in=n_files,
        rows_out=n_rows,
        rejected=dict(Counter(reason_slug(r["reason"]) for r in rejects)),
        seconds=round(time.perf_counter() - start, 3),
        expands=True,
    )
    _write_step_meta(tmp, stat, rejects)
    steps.commit(step, tmp)
    return stat


def _stage_step(
    recipe, stage, config, upstream: Path, step: PlannedStep, steps: _Steps, reporter: Reporter
) -> StepStat:
    import pyarrow as pa
    import pyarrow.compute as pc
    from datasets import load_from_disk

    start = time.perf_counter()
    dataset = load_from_disk(str(upstream / "rows"))
    tmp = steps.begin(step)
    rows_in = len(dataset)
    if rows_in and stage.decide is not None:  # the batch phase adds scratch columns beside the unchanged rows
        table = dataset.data.table
        added = _run_executor(recipe, dataset, stage, config, tmp / "_scratch", step.key, reporter)
        for name in added.column_names:
            table = table.append_column(name, added.column(name))
    elif rows_in:
        table = _run_executor(recipe, dataset, stage, config, tmp / "_scratch", step.key, reporter)
    else:
        table = dataset.data.table.append_column(REJECT_REASON, pa.array([], pa.string()))
        table = table.append_column(REJECT_DETAIL, pa.array([], pa.string()))
    del dataset  # a changed stage reads only its output from here on (the input is unmapped)
    if stage.decide is not None:
        columns = {
            c: table.column(c) for c in table.column_names if c in ("id", "ordinal") or c.startswith(SCRATCH_PREFIX)
        }
        decisions = stage.decide(columns, config, _text_fetcher(table.column("text"))) if table.num_rows else []
        for name in (REJECT_REASON, REJECT_DETAIL):
            if name in table.column_names:
                table = table.drop_columns([name])
        table = table.append_column(REJECT_REASON, pa.array([d[0] if d else "" for d in decisions], pa.string()))
        table = table.append_column(REJECT_DETAIL, pa.array([d[1] if d else "" for d in decisions], pa.string()))
    if REJECT_REASON not in table.column_names:
        table = table.append_column(REJECT_REASON, pa.array([""] * table.num_rows, pa.string()))
        table = table.append_column(REJECT_DETAIL, pa.array([""] * table.num_rows, pa.string()))
    counters = {
        c[len("_count_") :]: int(pc.sum(table.column(c)).as_py() or 0)
        for c in table.column_names
        if c.startswith("_count_")
    }
    kept_batches = (b.filter(pc.equal(b.column(REJECT_REASON), "")) for b in table.to_batches(max_chunksize=1000))
    kept_rows = _save_rows(kept_batches, tmp / "rows", step.key)
    reasons = table.column(REJECT_REASON)

    def envelopes():  # batch by batch: a stage that drops half a large corpus holds none of it in memory
        for batch in table.select([*DOC_COLUMNS, REJECT_REASON, REJECT_DETAIL]).to_batches(max_chunksize=1000):
            for row in batch.filter(pc.not_equal(batch.column(REJECT_REASON), "")).to_pylist():
                reason, detail = row.pop(REJECT_REASON), row.pop(REJECT_DETAIL)
                yield reject_envelope(stage=stage.ref, reason=reason, detail=detail, row=row)

    stat = StepStat(
        stage.ref,
        rows_in=rows_in,
        rows_out=kept_rows,
        rejected=dict(Counter(reason_slug(r) for r in reasons.filter(pc.not_equal(reasons, "")).to_pylist())),
        seconds=round(time.perf_counter() - start, 3),
        expands=stage.expands,
        counters=counters,
    )
    rejects = envelopes()
    _write_step_meta(tmp, stat, rejects)
    steps.commit(step, tmp)
    return stat


def _text_fetcher(texts):
    """fetch(row indices) -> texts, taking from each Arrow chunk separately (a take on the whole chunked
    column would copy every chunk on every call)."""
    import numpy as np

    bounds = np.cumsum([0] + [len(c) for c in texts.chunks])

    def fetch(indices: list[int]) -> list[str]:
        idx = np.asarray(indices, dtype=np.int64)
        which = np.searchsorted(bounds, idx, side="right") - 1
        out: list[str] = [""] * len(idx)
        for c in np.unique(which):
            positions = np.flatnonzero(which == c)
            values = texts.chunks[c].take(idx[positions] - bounds[c]).to_pylist()
            for p, v in zip(positions, values, strict=True):
                out[p] = v
        return out

    return fetch


def _run_executor(recipe, dataset, stage, config, scratch: Path, key: str, reporter: Reporter):
    from curate.executors import run_batch_function

    return run_batch_function(
        dataset,
        stage.batch,
        config,
        batch_size=recipe.batch_size,
        num_proc=recipe.num_proc,
        scratch_dir=scratch,
        fingerprint=key[:32],
        on_batch=reporter.advance,
    )


def _generate_step(
    recipe, templates, upstream: Path, step: PlannedStep, steps: _Steps, reporter: Reporter
) -> StepStat:
    from datasets import load_from_disk

    from curate.generate import GenerateContext
    from curate.templating import Renderer

    start = time.perf_counter()
    documents = load_from_disk(str(upstream / "rows")).data.table.to_pylist()
    ctx = GenerateContext(documents, templates, recipe.seed, recipe.persona, Renderer())
    examples: list[dict[str, Any]] = []
    for generator, config in recipe.resolved_generators:
        examples += generator.run(ctx, config)
        reporter.advance(1)
    tmp = steps.begin(step)
    write_jsonl(tmp / "examples.jsonl", examples)
    stat = StepStat("generate", rows_in=len(documents), rows_out=len(examples), expands=True)
    stat.seconds = round(time.perf_counter() - start, 3)
    _write_step_meta(tmp, stat, [])
    steps.commit(step, tmp)
    return stat


def plan(recipe, limit: int | None = None) -> tuple[list, list[PlannedStep], dict[str, Any]]:
    """(input files, planned steps, loaded templates), without running anything: what --dry-run shows."""
    from curate.templating import load_templates

    files = discover(recipe.input.paths)
    templates = load_templates(recipe.templates.dirs)
    steps = _Steps(recipe.run_dir)
    key = checkpoint_key("read", fingerprint_files(files), recipe.input.fields.model_dump(), limit, __version__)
    planned = [steps.plan(0, READ_STAGE, key)]
    for i, (stage, config) in enumerate(recipe.resolved_stages, start=1):
        key = checkpoint_key(key, stage.ref, config.model_dump(mode="json"), recipe.seed, __version__)
        planned.append(steps.plan(i, stage.name, key))
    if recipe.resolved_generators:
        generators = []
        for generator, config in recipe.resolved_generators:
            used = config.templates or sorted(n for n, t in templates.items() if t.kind == generator.kind)
            generators.append(
                [
                    generator.kind,
                    config.model_dump(mode="json"),
                    [[templates[n].ref, templates[n].body] for n in used if n in templates],
                ]
            )
        persona = recipe.persona.model_dump() if recipe.persona else None
        key = checkpoint_key(key, "generate", generators, persona, recipe.seed, __version__)
        planned.append(steps.plan(len(planned), "generate", key))
    return files, planned, templates


def curate(recipe, *, limit: int | None = None, reporter: Reporter | None = None) -> CurateResult:
    """Run the whole curation of ``recipe`` and write ``<run>/dataset``; resumes from checkpoints."""
    import datasets

    datasets.disable_progress_bars()  # progress is the reporter's job
    reporter = reporter or Reporter()
    wall = time.perf_counter()
    files, planned, templates = plan(recipe, limit)
    steps = _Steps(recipe.run_dir)
    stats: list[StepStat] = []
    doc_steps = planned[: len(recipe.resolved_stages) + 1]
    must_run = [not step.done for step in doc_steps]
    for i in range(len(doc_steps) - 1, 0, -1):  # a step to run needs its upstream rows; a scrub may have removed them
        if must_run[i] and not (doc_steps[i - 1].path / "rows").is_dir():
            must_run[i - 1] = True
    for index, step in enumerate(doc_steps):
        stage_info = recipe.resolved_stages[index - 1] if index else None
        label = stage_info[0].ref if stage_info else READ_STAGE
        if not must_run[index]:
            stat = _cached_stat(step)
            reporter.step_started(label, 0)
        else:
            reporter.step_started(label, len(files) if index == 0 else _rows_in(doc_steps[index - 1]))
            if index == 0:
                stat = _read_step(recipe, files, step, steps, reporter, limit)
            else:
                stat = _stage_step(recipe, *stage_info, doc_steps[index - 1].path, step, steps, reporter)
        stats.append(stat)
        reporter.step_finished(stat)
        if stage_info and stage_info[0].scrubs:
            _scrub_earlier_steps(doc_steps[:index], stage_info)
    last_docs = doc_steps[-1].path
    examples: list[dict[str, Any]] = []
    if recipe.resolved_generators:
        step = planned[-1]
        reporter.step_started("generate", len(recipe.resolved_generators))
        stat = _cached_stat(step) if step.done else _generate_step(recipe, templates, last_docs, step, steps, reporter)
        stats.append(stat)
        reporter.step_finished(stat)
        examples = read_jsonl(step.path / "examples.jsonl")
    return _finish(recipe, files, planned, stats, examples, last_docs, reporter, wall)


def _scrub_earlier_steps(earlier: list[PlannedStep], stage_info) -> None:
    """After a scrubbing stage: rewrite earlier rejects through it and delete earlier rows (the originals)."""
    stage, config = stage_info
    for step in earlier:
        marker = step.path / "scrubbed_by"
        if marker.is_file() and marker.read_text() == stage.ref:
            continue
        rejects = read_jsonl(step.path / "rejects.jsonl")
        for r in rejects:
            r["detail"] = stage.scrubs(r["detail"], config)
            if r["row"] is not None:
                r["row"] = stage.scrubs(r["row"], config)
        write_jsonl(step.path / "rejects.jsonl.tmp", rejects)
        os.replace(step.path / "rejects.jsonl.tmp", step.path / "rejects.jsonl")
        shutil.rmtree(step.path / "rows", ignore_errors=True)
        marker.write_text(stage.ref)


def _rows_in(step: PlannedStep) -> int:
    return json.loads((step.path / "stat.json").read_text())["rows_out"]


def _finish(recipe, files, planned, stats, examples, last_docs: Path, reporter: Reporter, wall: float) -> CurateResult:

    from curate.generate.mix import mix_examples, split_examples

    start = time.perf_counter()
    reporter.step_started("mix+split", None)
    generated = Counter(ex["kind"] for ex in examples)
    mixed, mix_rejects = mix_examples(examples, recipe.mix, recipe.seed)
    train, test, notes = split_examples(mixed, recipe.split, recipe.seed)
    mix_stat = StepStat(
        "mix",
        rows_in=len(examples),
        rows_out=len(mixed),
        rejected=dict(Counter(reason_slug(r["reason"]) for r in mix_rejects)),
        seconds=round(time.perf_counter() - start, 3),
    )
    stats.append(mix_stat)
    reporter.step_finished(mix_stat)

    sources: Counter = Counter()
    words = rows = 0
    for batch in iter_rows(last_docs / "rows", ["source", "text"]):
        sources.update(batch.column(0).to_pylist())
        words += sum(count_words(t) for t in batch.column(1).to_pylist())
        rows += batch.num_rows
    by_reason: Counter = Counter()
    for s in stats:
        by_reason.update(s.rejected)
    for i, (generator, _) in enumerate(recipe.resolved_generators):
        if not generated.get(generator.kind):
            notes.append(
                f"generate.{i} ({generator.kind}) made no examples: check its sources and min_words, and the rejects"
            )
    stats_doc = {
        "gristmill_version": __version__,
        "recipe": recipe.name,
        "input": {"files": len(files), "documents": stats[0].rows_out},
        "steps": [asdict(s) for s in stats],
        "rejects": {"total": sum(by_reason.values()), "by_reason": dict(sorted(by_reason.items()))},
        "examples": {
            "generated": dict(sorted(generated.items())),
            "train": dict(sorted(Counter(ex["kind"] for ex in train).items())),
            "test": dict(sorted(Counter(ex["kind"] for ex in test).items())),
            "total": {"train": len(train), "test": len(test)},
        },
        "documents": {"rows": rows, "words": words},
        "chunking": [
            {"stage": stage.ref, "budget": config.budget()[0], "unit": config.unit}
            for stage, config in recipe.resolved_stages
            if stage.name == "chunk.sections"
        ],
        "tokens": {
            "counter": "whitespace words (no tokenizer configured)",
            "train": sum(count_words(m["content"]) for ex in train for m in ex["messages"]),
            "test": sum(count_words(m["content"]) for ex in test for m in ex["messages"]),
        },
        "notes": notes,
        "wall_seconds": round(time.perf_counter() - wall, 3),
    }
    behaviours = {
        "persona": recipe.persona.model_dump() if recipe.persona else None,
        "refusal_phrasings": [],
        "abstention_phrasings": [],
        "policy_categories": [],
        "blocklist": [],
    }
    dataset_dir = write_dataset(
        recipe.run_dir / "dataset",
        documents_rows=last_docs / "rows",
        train=train,
        test=test,
        rejects=[step.path / "rejects.jsonl" for step in planned],
        extra_rejects=mix_rejects,
        stats=stats_doc,
        resolved_recipe=recipe.resolved(),
        behaviours=behaviours,
        card=dataset_card(recipe, stats_doc, dict(sources)),
    )
    return CurateResult(recipe.run_dir.resolve(), dataset_dir.resolve(), stats_doc, stats)
