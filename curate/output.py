"""The dataset directory, the contract between curate and train (docs/architecture.md), written atomically.

Everything is written into a temporary sibling folder first and then renamed over ``<run>/dataset``, so a
crash leaves either the previous dataset or the new one, never half of one. The same inputs give the same
bytes in every data file: Arrow files carry a content-derived fingerprint and JSON is canonical.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from curate.errors import OutputError
from curate.layout import MARKER
from curate.rows import dumps, pair_features, short_hash

DATASET_FILES = (
    "data", "train.jsonl", "test.jsonl", "preference.jsonl", "documents", "rejects", "behaviours.json", "stats.json",
)  # fmt: skip


# The preference pairs' kinds (preference.jsonl, written by curate/preference.py): where the rejected answer of
# each comes from, the policy's phrasing or the base model's own answer at train time.
POLICY_REJECTED = {"benign_near_miss": "refusal", "qa": "abstention", "grounded_qa": "grounded_abstention"}
BASE_REJECTED = ("refusal", "abstain", "grounded_abstain")
PAIR_KINDS = (*POLICY_REJECTED, *BASE_REJECTED)


def write_jsonl(path: Path, rows: list[dict[str, Any]] | Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def save_dataset(dataset, path: Path) -> None:
    """save_to_disk, with one (empty) shard for an empty dataset: with none, load_from_disk fails."""
    dataset.save_to_disk(str(path), num_shards=1 if len(dataset) == 0 else None)


def iter_rows(saved: Path, columns: list[str] | None = None):
    """Record batches of a dataset saved with save_to_disk, read with plain file reads (not a memory map, whose
    pages would count as resident memory for as long as the mapping lives)."""
    import pyarrow as pa

    for shard in sorted(Path(saved).glob("data-*.arrow")):
        with pa.OSFile(str(shard)) as f, pa.ipc.open_stream(f) as reader:
            for batch in reader:
                yield batch.select(columns) if columns else batch


def _example_split(rows: list[dict[str, Any]], features=None, name: str = "examples"):
    import pyarrow as pa
    from datasets import Dataset, DatasetInfo

    from curate.rows import example_features

    features = features or example_features()
    table = pa.Table.from_pylist(rows, schema=features.arrow_schema)
    return Dataset(table, info=DatasetInfo(features=features), fingerprint=short_hash(*(r["id"] for r in rows), name))


def write_dataset(
    dataset_dir: Path,
    *,
    documents_rows: Path,
    train: list[dict[str, Any]],
    test: list[dict[str, Any]],
    rejects: list[Path],
    preference: list[dict[str, Any]] | None = None,
    extra_rejects: list[dict[str, Any]],
    stats: dict[str, Any],
    resolved_recipe: dict[str, Any],
    behaviours: dict[str, Any],
    card: str,
    schemas: dict[str, Any] | None = None,
) -> Path:
    from datasets import DatasetDict

    dataset_dir = Path(dataset_dir)
    parent = dataset_dir.parent
    if dataset_dir.exists() and not (dataset_dir / MARKER).is_file():
        raise OutputError(
            f"{dataset_dir} exists and was not written by gristmill (no {MARKER} in it), so it is not replaced; "
            "move it away, or choose another output.dir"
        )
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the run directory {parent}: {err}; choose another output.dir") from None
    tmp = parent / f".{dataset_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        splits = DatasetDict({
            "train": _example_split(train),
            "test": _example_split(test),
            "preference": _example_split(preference or [], pair_features(), "preference"),
        })  # fmt: skip
        splits.save_to_disk(
            str(tmp / "data"), num_shards={name: 1 if len(ds) == 0 else None for name, ds in splits.items()}
        )
        write_jsonl(tmp / "train.jsonl", train)
        write_jsonl(tmp / "test.jsonl", test)
        write_jsonl(tmp / "preference.jsonl", preference or [])

        shutil.copytree(documents_rows, tmp / "documents" / "data")  # the last step's saved rows, as they are
        batches = iter_rows(documents_rows)
        write_jsonl(tmp / "documents" / "documents.jsonl", (row for b in batches for row in b.to_pylist()))

        (tmp / "rejects").mkdir()
        with open(tmp / "rejects" / "rejects.jsonl", "wb") as out:  # the steps' envelopes, in step order
            for path in rejects:
                if path.exists():
                    with open(path, "rb") as f:
                        shutil.copyfileobj(f, out)
        with open(tmp / "rejects" / "rejects.jsonl", "a", encoding="utf-8") as out:
            out.writelines(dumps(r) + "\n" for r in extra_rejects)
        (tmp / "schemas").mkdir()
        for name, schema in sorted((schemas or {}).items()):
            (tmp / "schemas" / f"{name}.json").write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        (tmp / "behaviours.json").write_text(
            json.dumps(behaviours, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        (tmp / "recipe.resolved.yaml").write_text(yaml.safe_dump(resolved_recipe, sort_keys=False, allow_unicode=True))
        (tmp / "README.md").write_text(card, encoding="utf-8")
        (tmp / MARKER).write_text("written by gristmill; only a folder with this file is ever replaced\n")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = parent / f".{dataset_dir.name}.old-{os.getpid()}"
    if dataset_dir.exists():
        os.replace(dataset_dir, old)
    os.replace(tmp, dataset_dir)
    shutil.rmtree(old, ignore_errors=True)
    return dataset_dir


def dataset_key(dataset_dir: Path) -> str:
    """A fingerprint of a dataset directory's examples (train.jsonl and test.jsonl): what a model trained on it,
    or a tokenizer built from it, depends on."""
    import hashlib

    h = hashlib.sha256()
    for name in ("train.jsonl", "test.jsonl"):
        h.update(hashlib.sha256((Path(dataset_dir) / name).read_bytes()).digest())
    return h.hexdigest()[:20]


def check_dataset_dir(path: Path) -> Path:
    """``path`` or ``path/dataset`` if it is a curated dataset directory, else an OutputError saying what to run."""
    path = Path(path)
    for candidate in (path, path / "dataset"):
        if (candidate / "stats.json").is_file() and (candidate / "train.jsonl").is_file():
            return candidate
    raise OutputError(
        f"{path} is not a curated dataset directory (no stats.json and train.jsonl); "
        "run `gristmill curate RECIPE` first and pass the run directory or its dataset/ folder"
    )


def dataset_card(recipe, stats: dict[str, Any], sources: dict[str, int]) -> str:
    """The dataset card (README.md): sources, method, counts, kinds, licence and known limits."""
    ex = stats["examples"]
    lines = [
        "---",
        f"license: {recipe.license}",
        "task_categories: [text-generation]",
        "tags: [gristmill, instruction-tuning, sft]",
        "---",
        f"# {recipe.name}",
        "",
        "An instruction-tuning dataset curated by gristmill from company documents. Rows are in TRL's",
        "conversational format (`messages`), with `kind`, `source_ids`, `group`, `template` and `generator`",
        "recording where each example came from.",
        "",
        "## Sources",
        f"{stats['input']['files']} input files, {stats['input']['documents']} documents read.",
        "",
        "| source | document rows kept |",
        "| --- | --- |",
        *[f"| {src} | {n} |" for src, n in sorted(sources.items())],
        "",
        "## Method",
        "| step | rows in | rows out | dropped | reasons |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in stats["steps"]:
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(s["rejected"].items())) or "-"
        lines.append(f"| {s['step']} | {s['rows_in']} | {s['rows_out']} | {sum(s['rejected'].values())} | {reasons} |")
    lines += ["", "## Examples", "| kind | train | test |", "| --- | --- | --- |"]
    for kind in sorted(set(ex["train"]) | set(ex["test"])):
        lines.append(f"| {kind} | {ex['train'].get(kind, 0)} | {ex['test'].get(kind, 0)} |")
    if stats.get("review"):
        review = stats["review"]
        lines += [
            "",
            "## Review",
            f"A person reviewed examples in `gristmill review`; {review['lines']} lines of {review['file']} were",
            "applied by mix: rejected examples left (`excluded_by_review`), edited ones train as edited (their",
            "originals are in the rejects as `edited_by_review`), rescued ones came back"
            + (", and only accepted examples were kept." if review["only_accepted"] else "."),
            "",
            "| kind | examples | reviewed | accepted | edited | rejected | rescued | changed since review |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *[
                f"| {kind} | {n['examples']} | {n['reviewed']} | {n['accepted']} | {n['edited']} | {n['rejected']} "
                f"| {n['rescued']} | {n['stale']} |"
                for kind, n in review["by_kind"].items()
            ],
        ]
    if stats.get("coverage"):
        lines += ["", "## Coverage", "| kind | category or schema | train | test |", "| --- | --- | --- | --- |"]
        for kind, facets in stats["coverage"].items():
            lines += [f"| {kind} | {facet} | {n['train']} | {n['test']} |" for facet, n in facets.items()]
    if stats.get("preference"):
        lines += [
            "",
            "## Preference pairs",
            "`preference.jsonl` and the `preference` split: the training split's behaviour examples as `prompt`,",
            "`chosen` (the reference answer) and `rejected` (the behaviour to avoid), for DPO after SFT. A pair",
            "rejected from `base` gets the base model's own answer at train time; none is stored here.",
            "",
            "| kind | rejected from | pairs |",
            "| --- | --- | --- |",
            *[f"| {kind} | {src} | {n} |" for kind, by in stats["preference"].items() for src, n in by.items()],
        ]
    lines += [
        "",
        "## Split",
        f"Seed {recipe.seed}. {len((stats.get('split') or {}).get('held_out_documents', []))} whole documents (a "
        f"share of {recipe.split.holdout_documents} of the documents, and of the records) are held out: nothing of",
        "them trains, neither as an answer nor as a quoted section. Per kind, test is:",
        "",
        "| kind | test | train |",
        "| --- | --- | --- |",
        "| qa (closed book) | held-out question templates, on sections of the other documents | the other templates |",
        "| summary | sections of held-out documents | the other documents |",
        "| extract_json | held-out request families, on records of held-out documents | other families and records |",
        "| refusal, benign_near_miss, abstain | held-out request families and slot values | the others |",
        "| persona | whole template groups | the other groups |",
        "",
        "Test prompts that near-duplicate a train prompt are dropped: test measures learning, not recall.",
        f"Length: {stats['tokens']['train']} train and {stats['tokens']['test']} test {stats['tokens']['counter']}.",
        "",
        "## Known limits",
        "- Template-generated answers are extractive: they quote the source section rather than paraphrase it.",
        "- Questions are built from headings and titles, so sections with vague headings get vague questions.",
        "- Every dropped document or example is listed with its reason in `rejects/rejects.jsonl`.",
    ]
    for note in stats.get("notes", []):
        lines.append(f"- {note}")
    return "\n".join(lines) + "\n"
