"""The steps of a curation run and their checkpoints: read, one per stage, generate; and the one stage contract
runner (``apply_stage``) that real runs, previews and tests all go through, whatever the executor.

Each step writes ``<run>/work/steps/NN-<step>/<key>/`` (rows as a saved dataset, ``rejects.jsonl``,
``stat.json``, or ``examples.jsonl``) into a ``.tmp-*`` folder renamed when complete. Rows move in batches of
1,000, so no step builds a Python list of the corpus (generation excepted: see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curate.output import read_jsonl, save_dataset, write_jsonl
from curate.readers import READ_STAGE, iter_documents
from curate.rows import DOC_COLUMNS, REJECT_DETAIL, REJECT_REASON, SCRATCH_PREFIX, reject_envelope


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
    reused: bool = False  # a finished checkpoint of another run directory (the dry run's), read and never written

    @property
    def done(self) -> bool:
        return self.path.is_dir()


def checkpoint_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def reason_slug(reason: str) -> str:
    return reason.split(":", 1)[0]


class Checkpoints:
    """Checkpoint folders of one run (``RunLayout.steps``). With ``reuse``, another run's steps folder whose
    finished checkpoints count as done: they are read from there, and nothing is written there."""

    def __init__(self, root: Path, reuse: Path | None = None):
        self.root, self.reuse = root, reuse

    def plan(self, index: int, name: str, key: str) -> PlannedStep:
        relative = Path(f"{index:02d}-{name}") / key[:20]
        if self.reuse is not None and not (self.root / relative).is_dir() and (self.reuse / relative).is_dir():
            return PlannedStep(f"{index:02d}-{name}", key, self.reuse / relative, reused=True)
        return PlannedStep(f"{index:02d}-{name}", key, self.root / relative)

    def own(self, step: PlannedStep) -> None:
        """Copy a reused checkpoint into this run before it is changed (a scrubbing stage rewrites it)."""
        if step.reused:
            target = self.root / step.path.relative_to(self.reuse)
            shutil.copytree(step.path, target)
            step.path, step.reused = target, False

    def begin(self, step: PlannedStep) -> Path:
        if step.reused:  # a step that must run again writes into this run
            step.path, step.reused = self.root / step.path.relative_to(self.reuse), False
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


def _write_step_meta(tmp: Path, stat: StepStat, rejects: Iterable[dict[str, Any]]) -> None:
    write_jsonl(tmp / "rejects.jsonl", rejects)
    (tmp / "stat.json").write_text(json.dumps(asdict(stat), sort_keys=True))


def cached_stat(step: PlannedStep) -> StepStat:
    stat = StepStat(**json.loads((step.path / "stat.json").read_text()))
    stat.cached = True
    return stat


def read_step(recipe, files, step: PlannedStep, steps: Checkpoints, reporter: Reporter, limit: int | None) -> StepStat:
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
        for kind, item in iter_documents(
            files, recipe.input.fields, limit, on_file=on_file, options=recipe.input.options
        ):
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


@dataclass
class StageContext:
    """What global and LLM stages receive: the executor, the run's LLM runtime, and (in a decide phase) a way to
    read the text of chosen rows again."""

    executor: Any
    llm: Any = None
    fetch_text: Callable[[list[int]], list[str]] | None = None


def _call_stage(fn: Callable, config: Any, batch: dict[str, list]) -> dict[str, list]:
    return fn(dict(batch), config)


def _call_llm_stage(fn: Callable, config: Any, context: StageContext, batch: dict[str, list]) -> dict[str, list]:
    return fn(dict(batch), config, context)


def apply_stage(
    dataset,
    stage,
    config,
    context: StageContext,
    *,
    batch_size: int,
    scratch_dir: Path | None = None,
    fingerprint: str = "",
    on_batch: Callable[[int], None] | None = None,
):
    """The stage contract, the same on every executor: ``dataset``'s rows through the stage, as a pyarrow Table
    of rows with ``_reject_reason`` and ``_reject_detail`` filled ("" for kept rows), in input order.

    A plain stage's batch function maps rows to rows. A global stage's batch phase adds scratch columns beside
    the unchanged rows, and its decide phase then sees them for all rows at once and decides each row. LLM stages
    run in the driver (the run's one client) and get the context."""
    import pyarrow as pa

    if stage.uses_llm:
        executor, fn = context.executor.in_driver(), functools.partial(_call_llm_stage, stage.batch, config, context)
    else:
        executor, fn = context.executor, functools.partial(_call_stage, stage.batch, config)
    if not len(dataset):
        table = dataset.data.table
    else:
        mapped = executor.map_batches(
            dataset, fn, batch_size=batch_size, scratch_dir=scratch_dir, fingerprint=fingerprint, on_batch=on_batch
        )
        if stage.decide is None:
            table = mapped
        else:  # the batch phase added scratch columns beside the unchanged rows
            table = dataset.data.table
            for name in mapped.column_names:
                table = table.append_column(name, mapped.column(name))
    if stage.decide is not None:
        columns = {
            c: table.column(c) for c in table.column_names if c in ("id", "ordinal") or c.startswith(SCRATCH_PREFIX)
        }
        decide_context = dataclasses.replace(context, fetch_text=_text_fetcher(table.column("text")))
        decisions = stage.decide(columns, config, decide_context) if table.num_rows else []
        table = table.drop_columns([c for c in (REJECT_REASON, REJECT_DETAIL) if c in table.column_names])
        table = table.append_column(REJECT_REASON, pa.array([d[0] if d else "" for d in decisions], pa.string()))
        table = table.append_column(REJECT_DETAIL, pa.array([d[1] if d else "" for d in decisions], pa.string()))
    if REJECT_REASON not in table.column_names:
        table = table.append_column(REJECT_REASON, pa.array([""] * table.num_rows, pa.string()))
        table = table.append_column(REJECT_DETAIL, pa.array([""] * table.num_rows, pa.string()))
    return table


def stage_step(
    recipe, stage, config, context: StageContext, upstream: Path, step: PlannedStep, steps: Checkpoints, reporter
) -> StepStat:
    """One stage over the upstream checkpoint's rows: kept rows and reject envelopes into this step's checkpoint."""
    import pyarrow.compute as pc
    from datasets import load_from_disk

    start = time.perf_counter()
    dataset = load_from_disk(str(upstream / "rows"))
    tmp = steps.begin(step)
    rows_in = len(dataset)
    table = apply_stage(
        dataset,
        stage,
        config,
        context,
        batch_size=recipe.batch_size,
        scratch_dir=tmp / "_scratch",
        fingerprint=step.key[:32],
        on_batch=reporter.advance,
    )
    del dataset  # a changed stage reads only its output from here on (the input is unmapped)
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


def generate_step(
    recipe, templates, upstream: Path, step: PlannedStep, steps: Checkpoints, reporter: Reporter, llm=None
) -> StepStat:
    from datasets import load_from_disk

    from curate.generate import GenerateContext
    from curate.split import held_out_documents
    from curate.templating import Renderer

    start = time.perf_counter()
    documents = load_from_disk(str(upstream / "rows")).data.table.to_pylist()
    held = held_out_documents(documents, recipe.split.holdout_documents, recipe.seed)
    qa = [config for generator, config in recipe.resolved_generators if generator.kind == "qa"]
    ctx = GenerateContext(documents, templates, recipe.seed, recipe.persona, Renderer(), llm=llm, held_out=held)
    if qa:
        ctx.question_holdout = qa[0].holdout
    for generator, config in recipe.resolved_generators:
        if generator.kind in ("refusal", "abstain"):
            ctx.policy_holdout.setdefault(generator.kind, config.holdout)
    examples: list[dict[str, Any]] = []
    for generator, config in recipe.resolved_generators:
        examples += generator.run(ctx, config)
        reporter.advance(1)
    tmp = steps.begin(step)
    write_jsonl(tmp / "examples.jsonl", examples)
    (tmp / "held_out.json").write_text(json.dumps({"documents": sorted(held), "notes": ctx.notes}, indent=1))
    stat = StepStat(
        "generate",
        rows_in=len(documents),
        rows_out=len(examples),
        rejected=dict(Counter(reason_slug(r["reason"]) for r in ctx.rejects)),
        counters={"held_out_documents": len(held), **({"llm_rows": ctx.llm_rows} if ctx.llm is not None else {})},
        expands=True,
    )
    stat.seconds = round(time.perf_counter() - start, 3)
    _write_step_meta(tmp, stat, ctx.rejects)
    steps.commit(step, tmp)
    return stat


def scrub_earlier_steps(earlier: list[PlannedStep], stage_info, steps: Checkpoints) -> None:
    """After a scrubbing stage: rewrite earlier rejects through it and delete earlier rows (the originals)."""
    stage, config = stage_info
    for step in earlier:
        marker = step.path / "scrubbed_by"
        if marker.is_file() and marker.read_text() == stage.ref:
            continue
        steps.own(step)
        marker = step.path / "scrubbed_by"
        rejects = [stage.scrubs(r, config) for r in read_jsonl(step.path / "rejects.jsonl")]
        write_jsonl(step.path / "rejects.jsonl.tmp", rejects)
        os.replace(step.path / "rejects.jsonl.tmp", step.path / "rejects.jsonl")
        shutil.rmtree(step.path / "rows", ignore_errors=True)
        marker.write_text(stage.ref)
