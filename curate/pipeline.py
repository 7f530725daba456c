"""Runs a recipe's curation: read → stages → generate → mix and split → the dataset directory.

Every step's output is a checkpoint under ``<run>/work/steps/NN-<step>/<key>/``, written to a temporary
folder and renamed when complete, so a killed run resumes at the first unfinished step. The key chains the
input fingerprint (content of every file), the step's name, version and config, the upstream key, the seed,
``--limit`` and the package version: change one stage's config and that stage and everything after it re-run.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate import __version__
from curate.generate.base import GENERATORS_VERSION
from curate.layout import RunLayout, check_apart
from curate.llm.client import LLM_RETRIED
from curate.output import dataset_card, iter_rows, read_jsonl, write_dataset
from curate.preference import build_pairs, pair_counts
from curate.readers import READ_STAGE, READ_VERSION, discover, fingerprint_files
from curate.review.apply import AppliedReview
from curate.rows import AUDIT_REASONS
from curate.shortcuts import audit_recipe
from curate.stats import build_stats, llm_stats
from curate.steps import (
    Checkpoints,
    PlannedStep,
    Reporter,
    StageContext,
    StepStat,
    cached_stat,
    checkpoint_key,
    generate_step,
    read_step,
    reason_slug,
    scrub_earlier_steps,
    stage_step,
)

__all__ = ["CurateResult", "Reporter", "StepStat", "curate", "plan"]


@dataclass
class CurateResult:
    run_dir: Path
    dataset_dir: Path
    stats: dict[str, Any]
    steps: list[StepStat]


def plan(
    recipe, limit: int | None = None, steps: Checkpoints | None = None
) -> tuple[list, list[PlannedStep], dict[str, Any]]:
    """(input files, planned steps, loaded templates), without running anything: what --dry-run shows."""
    from curate.templating import load_templates

    files = discover(recipe.input.paths)
    templates = load_templates(recipe.templates.dirs)
    steps = steps or Checkpoints(recipe.layout.steps)
    key = checkpoint_key(
        "read", fingerprint_files(files), recipe.input.model_dump(exclude={"paths"}), limit, READ_VERSION, __version__
    )
    planned = [steps.plan(0, READ_STAGE, key)]
    for i, (stage, config) in enumerate(recipe.resolved_stages, start=1):
        llm = _llm_key(recipe) if stage.uses_llm else None
        key = checkpoint_key(key, stage.ref, config.model_dump(mode="json"), llm, recipe.seed, __version__)
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
        inputs = sorted({f for _, config in recipe.resolved_generators for f in config.input_files()})
        contents = [[f, hashlib.sha256(Path(f).read_bytes()).hexdigest()] for f in inputs]
        llm = _llm_key(recipe) if any(c.uses_llm() for _, c in recipe.resolved_generators) else None
        held = recipe.split.holdout_documents  # which documents generation holds out
        key = checkpoint_key(
            key, "generate", generators, persona, contents, llm, held, recipe.seed, __version__, GENERATORS_VERSION
        )
        planned.append(steps.plan(len(planned), "generate", key))
    return files, planned, templates


def _llm_key(recipe) -> dict[str, Any]:
    """What an LLM step's output depends on: the endpoint, model and sampling (not limits, prices or the key)."""
    return recipe.llm.model_dump(
        include={"base_url", "model", "temperature", "max_tokens", "json_mode", "json_repair_attempts"}
    )


def uses_llm(recipe) -> bool:
    return any(s.uses_llm for s, _ in recipe.resolved_stages) or any(
        c.uses_llm() for _, c in recipe.resolved_generators
    )


def curate(
    recipe,
    *,
    limit: int | None = None,
    reporter: Reporter | None = None,
    layout: RunLayout | None = None,
    runtime=None,
    reuse: Path | None = None,
) -> CurateResult:
    """Run the whole curation of ``recipe`` and write the dataset directory; resumes from checkpoints.

    ``layout`` is where it writes (default: the recipe's run directory). LLM stages and generators share one
    runtime for the whole run: ``runtime`` when given (the dry run's), else one opened on the run's request
    cache. ``reuse`` is another steps folder whose finished checkpoints count as done (read, never written)."""
    layout = layout or recipe.layout
    check_apart(layout, recipe.input.paths)
    if runtime is not None or not uses_llm(recipe):
        return _curate(recipe, limit, reporter or Reporter(), layout, runtime, reuse)
    from curate.llm.runtime import open_runtime
    from curate.templating import load_templates

    templates = load_templates(recipe.templates.dirs)
    with open_runtime(recipe.llm, layout.llm_cache, recipe.seed, templates) as runtime:
        return _curate(recipe, limit, reporter or Reporter(), layout, runtime, reuse)


def _curate(recipe, limit, reporter: Reporter, layout: RunLayout, runtime, reuse) -> CurateResult:
    import datasets

    from curate.executors import executor_for

    datasets.disable_progress_bars()  # progress is the reporter's job
    wall = time.perf_counter()
    steps = Checkpoints(layout.steps, reuse)
    files, planned, templates = plan(recipe, limit, steps)
    context = StageContext(executor_for(recipe.executor, recipe.num_proc), runtime)
    stats: list[StepStat] = []
    doc_steps = planned[: len(recipe.resolved_stages) + 1]
    # A finished step with llm_failed or budget_exhausted rejects runs again (the endpoint may be back, the budget
    # raised; answered requests come from the request cache), and so does every step after it: its rows change.
    retried = [has_llm_failures(step) for step in planned]
    first_retry = next((i for i, r in enumerate(retried) if r), len(planned))
    must_run = [not step.done or i >= first_retry for i, step in enumerate(doc_steps)]
    for i in range(len(doc_steps) - 1, 0, -1):  # a step to run needs its upstream rows; a scrub may have removed them
        if must_run[i] and not (doc_steps[i - 1].path / "rows").is_dir():
            must_run[i - 1] = True
    for index, step in enumerate(doc_steps):
        stage_info = recipe.resolved_stages[index - 1] if index else None
        label = stage_info[0].ref if stage_info else READ_STAGE
        if not must_run[index]:
            stat = cached_stat(step)
            reporter.step_started(label, 0)
        else:
            reporter.step_started(label, len(files) if index == 0 else _rows_in(doc_steps[index - 1]))
            if index == 0:
                stat = read_step(recipe, files, step, steps, reporter, limit)
            else:
                stat = stage_step(recipe, *stage_info, context, doc_steps[index - 1].path, step, steps, reporter)
        stats.append(stat)
        reporter.step_finished(stat)
        if stage_info and stage_info[0].scrubs:
            scrub_earlier_steps(doc_steps[:index], stage_info, steps)
    last_docs = doc_steps[-1].path
    examples: list[dict[str, Any]] = []
    if recipe.resolved_generators:
        step = planned[-1]
        reporter.step_started("generate", len(recipe.resolved_generators))
        stat = (
            cached_stat(step)
            if step.done and first_retry == len(planned)
            else generate_step(recipe, templates, last_docs, step, steps, reporter, runtime)
        )
        stats.append(stat)
        reporter.step_finished(stat)
        examples = read_jsonl(step.path / "examples.jsonl")
    return _finish(recipe, layout, files, planned, stats, examples, last_docs, reporter, wall, runtime)


def _pseudonym_notes(recipe) -> list[str]:
    """A pii.redact with no pseudonym key hashes identifiers with a salt anyone can read in the source: say so."""
    import os

    for stage, config in recipe.resolved_stages:
        if stage.name == "pii.redact" and not os.environ.get(config.pseudonym_key_env or ""):
            where = f"{config.pseudonym_key_env} is not set" if config.pseudonym_key_env else "none is set"
            return [
                f"pii.redact: no pseudonym key ({where}), so the hashes that replace identifiers holding PII use a "
                "public salt: anyone can test a guessed e-mail address or id against them; set "
                "pseudonym_key_env to a variable holding a secret key"
            ]
    return []


def has_llm_failures(step: PlannedStep) -> bool:
    """Whether a finished step left rows as llm_failed rejects (an endpoint down, a timeout) or budget_exhausted
    ones (never sent: the budget was spent)."""
    if not step.done:
        return False
    rejected = json.loads((step.path / "stat.json").read_text())["rejected"]
    return any(rejected.get(reason, 0) > 0 for reason in LLM_RETRIED)


def _rows_in(step: PlannedStep) -> int:
    return json.loads((step.path / "stat.json").read_text())["rows_out"]


def _finish(recipe, layout, files, planned, stats, examples, last_docs, reporter, wall, runtime) -> CurateResult:

    from curate.mix import mix_examples, public_contacts
    from curate.split import split_examples

    start = time.perf_counter()
    reporter.step_started("mix+split", None)
    generated = Counter(ex["kind"] for ex in examples)
    allowed = [a for stage, config in recipe.resolved_stages if stage.name == "pii.redact" for a in config.allow]
    review = None
    if recipe.mix.review is not None:
        schemas = {n: s for _, config in recipe.resolved_generators for n, s in config.json_schemas().items()}
        review = AppliedReview(recipe.mix.review, schemas)
    mixed, mix_rejects = mix_examples(
        examples, recipe.mix, recipe.seed, recipe.blocklist, public_contacts(allowed), review
    )
    train, test, notes, split_rejects = split_examples(mixed, recipe.split, recipe.seed)
    mix_rejects += split_rejects
    reasons = Counter(reason_slug(r["reason"]) for r in mix_rejects)
    mix_stat = StepStat(
        "mix",
        rows_in=len(examples),
        rows_out=len(train) + len(test),
        rejected={k: n for k, n in reasons.items() if k not in AUDIT_REASONS},
        counters={k: n for k, n in reasons.items() if k in AUDIT_REASONS},  # originals of edits: kept, not drops
        seconds=round(time.perf_counter() - start, 3),
    )
    stats.append(mix_stat)
    reporter.step_finished(mix_stat)

    for i, (generator, _) in enumerate(recipe.resolved_generators):
        if not generated.get(generator.kind):
            notes.append(
                f"generate.{i} ({generator.kind}) made no examples: check its sources and min_words, and the rejects"
            )
    notes += _pseudonym_notes(recipe)
    held = planned[-1].path / "held_out.json" if recipe.resolved_generators else None
    split_info = json.loads(held.read_text()) if held is not None and held.is_file() else {"documents": []}
    notes += split_info.get("notes", [])
    stats_doc, sources = build_stats(recipe, files, stats, generated, train, test, notes, last_docs / "rows", wall)
    if review is not None:
        stats_doc["review"] = review.summary()
        problems = stats_doc["review"]["problems"]
        notes += [f"mix.review: {p}" for p in problems[:10]]
        if len(problems) > 10:
            notes.append(f"mix.review: {len(problems) - 10} more problems, in stats.json review.problems")
    stats_doc["split"] = {
        "seed": recipe.seed,
        "holdout_documents": recipe.split.holdout_documents,
        "held_out_documents": split_info["documents"],
    }
    if runtime is not None:
        stats_doc["llm"] = llm_stats(recipe, stats, runtime)
        if unsent := stats_doc["llm"]["unsent_rows"]:
            notes.append(
                f"{unsent} LLM rows were never sent: llm.budget_usd={recipe.llm.budget_usd} was spent; raise it and "
                "run again to send them (answered requests come from the cache)"
            )
    stats_doc["shortcuts"] = audit_recipe(recipe, train, _cited_texts(last_docs / "rows", train))
    behaviours, schemas = _behaviours(recipe, train + test)
    pairs = build_pairs(train, behaviours)
    stats_doc["preference"] = pair_counts(pairs)
    dataset_dir = write_dataset(
        layout.dataset,
        documents_rows=last_docs / "rows",
        train=train,
        test=test,
        rejects=[step.path / "rejects.jsonl" for step in planned],
        preference=pairs,
        extra_rejects=mix_rejects,
        stats=stats_doc,
        resolved_recipe=recipe.resolved(),
        behaviours=behaviours,
        schemas=schemas,
        card=dataset_card(recipe, stats_doc, dict(sources)),
    )
    result = CurateResult(layout.root.resolve(), dataset_dir.resolve(), stats_doc, stats)
    _check_outcome(recipe, layout, stats_doc, stats)
    return result


def _cited_texts(rows: Path, examples: list[dict[str, Any]]) -> dict[str, str]:
    """The title, section and text of every document row an example cites, by id."""
    from curate.shortcuts import cited as cited_by

    cited = {i for ex in examples for i in cited_by(ex)}
    out: dict[str, str] = {}
    for batch in iter_rows(rows, ["id", "title", "section", "text"]):
        for row in batch.to_pylist():
            if row["id"] in cited:
                out[row["id"]] = f"{row['title']}\n{row['section']}\n{row['text']}"
    return out


def _check_outcome(recipe, layout: RunLayout, stats_doc: dict[str, Any], stats: list[StepStat]) -> None:
    """After the dataset is written: an empty result, or too many failed LLM rows, is an error."""
    from curate.errors import StageError

    documents = stats_doc["input"]["documents"]
    total = stats_doc["examples"]["total"]["train"] + stats_doc["examples"]["total"]["test"]
    if recipe.resolved_generators and documents and not total:
        culprit = next((s for s in stats if s.rows_in and not s.rows_out), None)
        where = f"{culprit.step} dropped all {culprit.rows_in} rows it got" if culprit else "no step emptied it"
        reasons = ", ".join(f"{k}: {v}" for k, v in (culprit.rejected if culprit else {}).items()) or "see notes"
        raise StageError(
            f"0 examples from {documents} documents: {where} ({reasons}); see {layout.dataset} "
            "rejects/rejects.jsonl and stats.json"
        )
    llm = stats_doc.get("llm")
    if llm and llm["llm_rows"] and llm["failed_rows"] / llm["llm_rows"] > recipe.llm.max_failure_ratio:
        raise StageError(
            f"{llm['failed_rows']} of {llm['llm_rows']} LLM rows failed after retries, more than "
            f"llm.max_failure_ratio={recipe.llm.max_failure_ratio} ({llm['unsent_rows']} never sent: the budget was "
            "spent); the dataset was written, the failures are in rejects (reasons llm_failed, budget_exhausted); "
            "run again to retry them"
        )


def _behaviours(recipe, examples: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """behaviours.json (persona, refusal and abstention phrasings, policy categories, blocklist) and the schemas
    examples name: what evaluation needs, so it reads nothing from curate."""
    behaviours: dict[str, Any] = {
        "persona": recipe.persona.model_dump() if recipe.persona else None,
        "refusal_phrasings": [],
        "abstention_phrasings": [],
        "policy_categories": [],
        "blocklist": list(recipe.blocklist.terms),
    }
    named = {json.loads(ex["meta"] or "{}").get("schema") for ex in examples}
    schemas: dict[str, Any] = {}
    for _, config in recipe.resolved_generators:
        for key, values in config.behaviours().items():
            behaviours[key] += [v for v in values if v not in behaviours[key]]
        schemas.update({name: s for name, s in config.json_schemas().items() if name in named})
    return behaviours, schemas
