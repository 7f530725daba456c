"""The whole curation: the sample run, rejects, checkpoints, resume after kill -9, byte-identical outputs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from curate.pipeline import curate
from curate.recipe import load_recipe, validate_recipe
from curate.rows import doc_of
from tests.conftest import REPO, TINY_TRAIN

ENVELOPE_KEYS = {"id", "doc_id", "source", "stage", "reason", "detail", "row"}
DATA_FILES = ("train.jsonl", "test.jsonl", "rejects/rejects.jsonl", "documents/documents.jsonl")


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_sample_run_writes_the_dataset_contract(sample_run):
    result, _recipe = sample_run
    d = result.dataset_dir
    for name in ("data", "documents", "rejects", "schemas", "train.jsonl", "test.jsonl", "behaviours.json"):
        assert (d / name).exists(), name
    for name in ("stats.json", "recipe.resolved.yaml", "README.md", "documents/documents.jsonl"):
        assert (d / name).is_file(), name
    from datasets import load_from_disk

    data = load_from_disk(str(d / "data"))
    assert set(data) == {"train", "test", "preference"}
    assert data["train"].column_names == [
        "id",
        "messages",
        "kind",
        "source_ids",
        "group",
        "template",
        "generator",
        "meta",
    ]
    assert len(data["train"]) == len(jsonl(d / "train.jsonl")) > 0
    assert load_from_disk(str(d / "documents" / "data")).num_rows == len(jsonl(d / "documents" / "documents.jsonl"))


def test_sample_run_has_every_kind_with_the_persona(sample_run):
    result, recipe = sample_run
    train = jsonl(result.dataset_dir / "train.jsonl")
    test = jsonl(result.dataset_dir / "test.jsonl")
    kinds = {"qa", "summary", "persona", "extract_json", "refusal", "benign_near_miss", "abstain"}
    kinds |= {"grounded_qa", "grounded_abstain"}
    assert {e["kind"] for e in train} == kinds
    assert {e["kind"] for e in test} == kinds
    for example in train + test:
        roles = [m["role"] for m in example["messages"]]
        assert roles == ["system", "user", "assistant"]
        assert example["messages"][0]["content"].startswith(recipe.persona.system)
        assert json.loads(example["meta"])["persona"] == "Ada"
        assert example["template"].count("@") == 1 and example["generator"] == "template"
    qa = [e for e in train if e["kind"] == "qa"]
    assert len({e["messages"][1]["content"] for e in qa}) > 0.8 * len(qa), "questions are varied"
    docs = {d["id"]: d for d in jsonl(result.dataset_dir / "documents" / "documents.jsonl")}
    for e in qa:  # grounded: the answer quotes the source section, or the sentences of it a fact question asks
        section, answer = docs[e["source_ids"][0]]["text"], e["messages"][2]["content"]
        answer = answer.split(":\n\n", 1)[1] if answer.startswith("According to ") else answer  # qa.explain
        if json.loads(e["meta"]).get("fact") == "table":  # a cell, said as a sentence
            answer = answer.rstrip(".").rsplit(" is ", 1)[-1].rsplit(": ", 1)[-1]
        assert (answer in section) if json.loads(e["meta"]).get("fact") else (section in answer), e["id"]
    assert sum(bool(json.loads(e["meta"]).get("fact")) for e in qa) >= 5  # facts asked for, not only headings
    behaviours = json.loads((result.dataset_dir / "behaviours.json").read_text())
    assert behaviours["persona"]["name"] == "Ada"


def test_nothing_of_a_held_out_document_trains_and_closed_book_qa_tests_trained_sections(sample_run):
    result, _ = sample_run
    train = jsonl(result.dataset_dir / "train.jsonl")
    test = jsonl(result.dataset_dir / "test.jsonl")
    held = set(result.stats["split"]["held_out_documents"])
    assert len(held) >= 10  # documents and tickets
    # Nothing of a held-out document trains: not as the example's document, not as a quoted section.
    assert not {e["group"] for e in train} & held
    assert not {doc_of(s) for e in train for s in e["source_ids"]} & held
    # The kinds whose prompt carries the document test on held-out documents only.
    for e in test:
        if e["kind"] in ("summary", "extract_json"):
            assert e["group"] in held, e["id"]
    # Closed-book qa tests sections that trained under other question templates.
    trained = {}
    for e in train:
        if e["kind"] == "qa":
            trained.setdefault(e["source_ids"][0], set()).add(e["template"])
    qa_test = [e for e in test if e["kind"] == "qa"]
    assert len(qa_test) >= 30
    for e in qa_test:
        section = e["source_ids"][0]
        assert doc_of(section) not in held and trained.get(section), section
        assert e["template"] not in trained[section]
    # Examples without a side chosen by their generator (persona) keep whole groups on one side.
    free = [e for e in train + test if "holdout" not in json.loads(e["meta"])]
    assert not {e["group"] for e in free if e in train} & {e["group"] for e in free if e in test}


def test_bad_files_and_duplicates_are_in_rejects(sample_run):
    result, _ = sample_run
    rejects = jsonl(result.dataset_dir / "rejects" / "rejects.jsonl")
    assert all(set(r) == ENVELOPE_KEYS and r["stage"] and r["reason"] for r in rejects)
    by_source = {(r["source"], r["reason"].split(":")[0]) for r in rejects}
    assert ("assets/trailhead-tent-photo.png", "binary_file") in by_source
    assert ("support/notes-draft.md", "empty_file") in by_source
    assert ("support/tickets.jsonl", "malformed_record") in by_source
    assert ("support/tickets.jsonl", "missing_text_field") in by_source
    assert ("support/tickets-2025.csv", "malformed_record") in by_source
    assert ("wiki/returns-and-refunds-copy.md", "exact_duplicate_of") in by_source
    assert any(r["reason"] == "boilerplate" for r in rejects)
    copy = next(r for r in rejects if r["source"] == "wiki/returns-and-refunds-copy.md")
    assert copy["reason"] == "exact_duplicate_of:returns-and-refunds-6f28265e#0"
    assert json.loads(copy["row"])["text"].startswith("# Returns and Refund Policy")  # nothing is lost
    documents = jsonl(result.dataset_dir / "documents" / "documents.jsonl")
    metas = [json.loads(d["meta"]) for d in documents]
    assert {"utf-8", "utf-16", "cp1252"} <= {m.get("encoding") for m in metas}
    assert {"markdown", "text", "html", "jsonl", "csv", "pdf", "docx", "email"} <= {m["format"] for m in metas}
    pdf = [d for d in documents if d["source"].endswith(".pdf")]
    manual = [(d["section"], json.loads(d["meta"])["chunk"]["pages"]) for d in pdf]
    assert ("Trailhead 2 Tent Quick Start > Spare parts and repairs", [3, 3]) in manual  # headings and pages


def test_rows_in_equal_rows_out_plus_rejected(sample_run):
    result, _ = sample_run
    stats = json.loads((result.dataset_dir / "stats.json").read_text())
    rejects = jsonl(result.dataset_dir / "rejects" / "rejects.jsonl")
    dropped_per_stage: Counter = Counter()
    for step in stats["steps"]:
        assert isinstance(step["counters"], dict) and isinstance(step["seconds"], float), step
        if not step["expands"]:
            assert step["rows_in"] == step["rows_out"] + sum(step["rejected"].values()), step
        dropped_per_stage[step["step"]] += sum(step["rejected"].values())
    assert +dropped_per_stage == Counter(r["stage"] for r in rejects)  # every drop has its envelope
    assert stats["rejects"]["total"] == len(rejects)
    assert stats["examples"]["total"]["train"] == len(jsonl(result.dataset_dir / "train.jsonl"))
    assert stats["tokens"]["train"] > 0 and "words" in stats["tokens"]["counter"]


def test_resolved_recipe_is_a_valid_recipe(sample_run):
    result, _recipe = sample_run
    resolved = yaml.safe_load((result.dataset_dir / "recipe.resolved.yaml").read_text())
    assert resolved["stages"][0]["version"] == 3 and resolved["gristmill_version"]  # pii.redact@3
    assert validate_recipe(resolved).resolved() == resolved


def test_second_run_resumes_from_checkpoints_with_same_output(sample_run, sample_workspace, monkeypatch):
    result, _ = sample_run
    before = {name: (result.dataset_dir / name).read_bytes() for name in DATA_FILES}
    monkeypatch.chdir(sample_workspace)
    again = curate(load_recipe("sample_data/recipe.yaml", TINY_TRAIN))
    assert all(s.cached for s in again.steps if s.step != "mix")
    assert {name: (again.dataset_dir / name).read_bytes() for name in DATA_FILES} == before


def _copy_sample(root: Path, extra_stage: dict | None = None, **changes) -> Path:
    shutil.copytree(REPO / "sample_data", root / "sample_data")
    recipe = yaml.safe_load((REPO / "sample_data" / "recipe.yaml").read_text())
    if extra_stage:
        recipe["stages"].insert(3, extra_stage)
    recipe.update(changes)
    (root / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    return root / "recipe.yaml"


def _arrow_bytes(dataset_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(dataset_dir)): p.read_bytes() for p in sorted(dataset_dir.rglob("*.arrow"))}


def test_identical_inputs_give_byte_identical_outputs(tmp_path, sample_run, monkeypatch):
    result, _ = sample_run
    _copy_sample(tmp_path)
    monkeypatch.chdir(tmp_path)
    fresh = curate(load_recipe("recipe.yaml", ["output.dir=elsewhere"]))
    assert not any(s.cached for s in fresh.steps)
    for name in DATA_FILES:
        assert (fresh.dataset_dir / name).read_bytes() == (result.dataset_dir / name).read_bytes(), name
    assert _arrow_bytes(fresh.dataset_dir) == _arrow_bytes(result.dataset_dir)


def test_changed_stage_config_reruns_from_that_stage(tmp_path, monkeypatch):
    _copy_sample(tmp_path)
    monkeypatch.chdir(tmp_path)
    curate(load_recipe("recipe.yaml"))
    changed = curate(load_recipe("recipe.yaml", ["stages.6.with.min_words=30"]))
    by_step = {s.step: s for s in changed.steps}
    assert [s.cached for s in changed.steps[:7]] == [True] * 7
    assert by_step["filter.length@1"].cached is False and by_step["generate"].cached is False
    assert by_step["filter.length@1"].rejected.get("too_short", 0) > 0
    seed_changed = curate(load_recipe("recipe.yaml", ["stages.6.with.min_words=30", "seed=99"]))
    # The seed is in every stage key; read runs again too, since pii.redact removed its rows (the originals).
    assert not any(s.cached for s in seed_changed.steps)
    read_dirs = list((tmp_path / "runs/acme-support/work/steps/00-read").iterdir())
    assert len(read_dirs) == 1 and not read_dirs[0].name.startswith(".tmp")  # stale checkpoints are cleaned


def test_resume_after_kill_9_gives_identical_output(tmp_path, monkeypatch):
    import tests.slow_stage  # noqa: F401  registers testing.slow in this process too

    killed_dir, clean_dir = tmp_path / "killed", tmp_path / "clean"
    _copy_sample(killed_dir, {"use": "testing.slow"})
    _copy_sample(clean_dir, {"use": "testing.slow"})
    script = (
        f"import sys; sys.path.insert(0, {str(REPO)!r}); import tests.slow_stage; from curate.cli import main; "
        "sys.argv = ['gristmill', 'curate', 'recipe.yaml']; main()"
    )
    env = {**os.environ, "SLOW_STAGE_SECONDS": "120"}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=killed_dir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    slow_steps = killed_dir / "runs" / "acme-support" / "work" / "steps" / "04-testing.slow"
    deadline = time.monotonic() + 120
    while not list(slow_steps.glob(".tmp-*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (killed_dir / "runs" / "acme-support" / "dataset").exists()

    monkeypatch.setenv("SLOW_STAGE_SECONDS", "0")
    monkeypatch.chdir(killed_dir)
    resumed = curate(load_recipe("recipe.yaml"))
    assert [s.cached for s in resumed.steps[:4]] == [True] * 4  # read, normalize, dedupe, chunk
    assert not any(s.cached for s in resumed.steps[4:])
    assert not list(slow_steps.glob(".tmp-*"))
    monkeypatch.chdir(clean_dir)
    clean = curate(load_recipe("recipe.yaml"))
    for name in DATA_FILES:
        assert (resumed.dataset_dir / name).read_bytes() == (clean.dataset_dir / name).read_bytes(), name


def test_a_crash_while_writing_keeps_the_previous_dataset(tmp_path, monkeypatch):
    _copy_sample(tmp_path)
    monkeypatch.chdir(tmp_path)
    first = curate(load_recipe("recipe.yaml"))
    before = (first.dataset_dir / "train.jsonl").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("curate.output.yaml.safe_dump", boom)
    with pytest.raises(OSError, match="disk full"):
        curate(load_recipe("recipe.yaml", ["seed=5"]))
    assert (first.dataset_dir / "train.jsonl").read_bytes() == before
    assert sorted(p.name for p in first.dataset_dir.parent.iterdir()) == ["dataset", "work"]


def test_limit_and_empty_results(tmp_path, monkeypatch):
    _copy_sample(tmp_path)
    monkeypatch.chdir(tmp_path)
    limited = curate(load_recipe("recipe.yaml", ["output.dir=limited"]), limit=3)
    assert limited.stats["input"]["documents"] == 3
    nothing = curate(
        load_recipe(
            "recipe.yaml", ["output.dir=nothing", "stages.6.with.min_words=1000", "stages.6.with.max_words=null"]
        )
    )
    # Only kinds that need no document section are left (near-misses need one to answer from).
    assert set(nothing.stats["examples"]["generated"]) == {"persona", "refusal", "abstain"}
    assert "generate.0 (qa) made no examples" in " ".join(nothing.stats["notes"])
    assert "generate.1 (summary) made no examples" in " ".join(nothing.stats["notes"])


def test_inspect_shows_the_sample_run(sample_run):
    from curate.report.inspect import inspect_dataset

    result, _ = sample_run
    data = inspect_dataset(result.run_dir, sample=20)
    (cluster,) = [c for c in data["duplicate_clusters"] if c["kept"] == "returns-and-refunds-6f28265e#0"]
    assert cluster["copies"] == 2  # the exact copy and the edited 2024 copy
    assert any("jaccard 0.9" in d for d in cluster["dropped"])
    assert set(data["labels"]) >= {"language", "length", "has_table", "has_code", "reading_level"}
    documents = (result.dataset_dir / "documents" / "documents.jsonl").read_text().splitlines()
    assert sum(data["labels"]["has_table"].values()) == len(documents)  # every kept row is labelled
    assert set(data["rejects"]) >= {"binary_file", "near_duplicate_of", "boilerplate"}
