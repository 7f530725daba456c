"""The LLM path against a real OpenAI-compatible server that nobody here wrote: llama.cpp's, through
llama-cpp-python, serving the SmolLM2-135M GGUF of the base models (train.base_models) on 2 threads.

Marked ``llama_server``: the README's test command leaves it out; ``.ci/run`` installs the server and runs it
(``pytest -m llama_server``). It asserts the protocol, not the quality of a 135M writer: requests succeed,
``json_mode: schema`` falls back to the form the server takes with a note, usage is counted, rejects carry
their reasons, a re-run sends nothing, and a server killed mid-run leaves ``llm_failed`` rejects that the
next run, with the server back, tries again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require, write
from tests.llama_server import LlamaServer

pytestmark = pytest.mark.llama_server
KEY_ENV = "GRISTMILL_LLAMA_KEY"  # the server checks no key; the client needs one to send


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    require("llama_cpp")
    from train.base_models import base_gguf

    srv = LlamaServer(base_gguf("smollm2-135m"), tmp_path_factory.mktemp("llama") / "server.log")
    srv.start()
    yield srv
    srv.kill()


DOCS = {
    "returns.md": "# Returns\n\n## Window\n\nYou can return most items within 60 days of delivery. Items must be "
    "clean and unused, with their tags. Refunds go back to the original payment method within ten days of the "
    "parcel reaching our warehouse. Sale items can be returned too, but shipping costs are not refunded.\n",
    "tents.md": "# Tents\n\n## Pitching\n\nStake the four corners first and pull each corner taut before you push "
    "the stake in. Then clip the inner tent to the poles and throw the rain fly over the top before the rain "
    "starts. In strong wind, point the narrow end into the wind and add the extra guylines.\n",
}
TICKETS = [
    {"id": "T-1", "title": "Late parcel", "text": "Order 1001 has not arrived after two weeks.", "priority": "high"},
    {"id": "T-2", "title": "Broken zip", "text": "The zip of my tent broke on the first trip.", "priority": "low"},
]
SCHEMA = {
    "title": "ticket", "type": "object", "additionalProperties": False, "required": ["ticket_id", "priority"],
    "properties": {"ticket_id": {"type": "string", "x-from": ["id"]}, "priority": {"enum": ["low", "high"]}},
}  # fmt: skip
# What a generated or labelled row may be rejected for on the LLM path.
LLM_REASONS = {"judge_rejected", "llm_failed", "schema_invalid", "not_grounded", "near_duplicate_prompt"}


def _recipe(root: Path, srv: LlamaServer, **llm) -> Path:
    for name, text in DOCS.items():
        write(root / "docs" / name, text)
    write(root / "tickets" / "tickets.jsonl", "".join(json.dumps(t) + "\n" for t in TICKETS))
    write(root / "schemas" / "ticket.json", json.dumps(SCHEMA))
    recipe = {
        "name": "llama",
        "input": {"paths": [str(root / "docs"), str(root / "tickets")]},
        "stages": [
            {"use": "chunk.sections"},
            {"use": "label.llm", "with": {"topics": ["returns", "tents", "orders"]}},
        ],
        "generate": [
            {"kind": "qa", "backend": "llm", "per_doc": 1, "min_words": 5, "sources": ["*.md"]},
            {"kind": "summary", "backend": "llm", "min_words": 20, "sources": ["*.md"]},
            {
                "kind": "extract_json",
                "backend": "llm",
                "schemas": [str(root / "schemas" / "ticket.json")],
                "sources": ["*.jsonl"],
            },
            {"kind": "qa", "backend": "template", "per_doc": 2, "min_words": 5, "sources": ["*.md"]},
        ],
        "split": {"min_test_per_kind": 0},
        "llm": {
            "base_url": srv.base_url,
            "model": "smollm2",
            "api_key_env": KEY_ENV,
            "max_concurrency": 2,
            "max_tokens": 160,
            "timeout_s": 120,
            "max_retries": 1,
            "backoff_base_s": 0.2,
            "backoff_max_s": 1,
            "max_failure_ratio": 1,
            "json_mode": "schema",
            **llm,
        },
        "output": {"dir": str(root / "run")},
    }
    return write(root / "recipe.yaml", json.dumps(recipe))


def _curate(recipe: Path, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, KEY_ENV: "not-checked"}
    cmd = [sys.executable, "-m", "curate.cli", "curate", str(recipe)]
    return subprocess.run(cmd, cwd=recipe.parent, env=env, capture_output=True, text=True, timeout=480, **kwargs)


def _stats(root: Path) -> dict:
    return json.loads((root / "run" / "dataset" / "stats.json").read_text())


def _rejects(root: Path) -> list[dict]:
    path = root / "run" / "dataset" / "rejects" / "rejects.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_llm_check_finds_the_json_form_the_server_honours(server, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "not-checked")
    out = subprocess.run(
        [sys.executable, "-m", "curate.cli", "llm", "check", "--base-url", server.base_url, "--model", "smollm2",
         "--api-key-env", KEY_ENV, "--max-concurrency", "2", "--json"],
        capture_output=True, text=True, timeout=300, env={**os.environ, KEY_ENV: "not-checked"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["chat"]["ok"]
    assert not report["json_schema"]["accepted"]  # llama.cpp's request validation knows text and json_object
    assert report["json_object_schema"]["ok"]  # ...and constrains json_object to the schema it carries
    assert report["recommended_json_mode"] == "object_schema"


def test_a_run_on_the_real_server_then_a_rerun_sends_nothing(server, tmp_path):
    recipe = _recipe(tmp_path, server)
    first = _curate(recipe)
    assert first.returncode == 0, first.stderr[-3000:]
    llm = _stats(tmp_path)["llm"]
    usage = llm["usage"]
    assert usage["requests"] > 0 and usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    # json_mode schema is refused (HTTP 500, a validation error: never retried) and falls back once, with a note.
    assert usage["json_mode"] == "object_schema" and usage["retries"] == 0
    assert any("refused json_mode 'schema'" in note for note in usage["notes"])
    examples = [json.loads(x) for x in (tmp_path / "run" / "dataset" / "train.jsonl").read_text().splitlines()]
    examples += [json.loads(x) for x in (tmp_path / "run" / "dataset" / "test.jsonl").read_text().splitlines()]
    assert any(e["generator"] == "llm" or e["kind"] == "extract_json" for e in examples) or llm["failed_rows"]
    assert any(e["generator"] == "template" for e in examples)  # the template kind always makes examples
    for reject in _rejects(tmp_path):
        if reject["stage"] in ("generate", "label.llm"):
            assert reject["reason"].split(":")[0] in LLM_REASONS and reject["detail"], reject
    again = _curate(recipe)
    assert again.returncode == 0, again.stderr[-3000:]
    usage = _stats(tmp_path)["llm"]["usage"]
    if not llm["failed_rows"]:  # every LLM step is checkpointed: no client is even opened (rows that failed
        assert usage.get("requests", 0) == 0  # would be tried again, everything answered from the cache)


def _answers_cached(root: Path) -> int:
    path = root / "run" / "work" / "llm_cache.sqlite"
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1) as db:
            return db.execute("select count(*) from responses").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_the_served_base_scores_like_the_same_model_in_process(server, sample_run, tmp_path, monkeypatch):
    """`gristmill eval --endpoint` on llama.cpp's server against the same GGUF converted and run in process: the
    same items, greedy, the same budgets. Both read one file's weights (llama.cpp in its quantized kernels, the
    in-process model dequantized to float32), so the detector's labels should mostly agree."""
    import shutil

    from curate.recipe import LLMSection
    from train.base_models import resolve_model
    from train.eval.run import EvalSettings, evaluate

    monkeypatch.setenv(KEY_ENV, "not-checked")
    result, _ = sample_run
    dataset = shutil.copytree(result.dataset_dir, tmp_path / "dataset")
    test = [json.loads(line) for line in (dataset / "test.jsonl").read_text().splitlines()]
    kinds = ("refusal", "abstain", "benign_near_miss", "qa")
    kept = [e for k in kinds for e in [e for e in test if e["kind"] == k][:8]]
    write(dataset / "test.jsonl", "".join(json.dumps(e) + "\n" for e in kept))
    served = LLMSection(base_url=server.base_url, model="smollm2", api_key_env=KEY_ENV, max_concurrency=1)
    report = evaluate(Path(resolve_model("smollm2-135m")), dataset, tmp_path / "eval", baseline=None,
                      settings=EvalSettings(max_new_tokens=32, batch_size=16, shots=0, threads=2),
                      endpoints=[("llama.cpp", served)]).report  # fmt: skip
    assert list(report["models"]) == ["trained", "llama.cpp", "llama.cpp (prompted)"]
    rows = [json.loads(line) for line in (tmp_path / "eval" / "generations.jsonl").read_text().splitlines()]
    by = {(r["model"], r["id"]): r for r in rows}
    pairs = [(by[("trained", e["id"])], by[("llama.cpp", e["id"])]) for e in kept]
    assert all(b["output"] for _, b in pairs)  # the server answered every item
    agree = sum(a["label"] == b["label"] for a, b in pairs) / len(pairs)
    assert agree >= 0.75, [(a["output"][:60], b["output"][:60]) for a, b in pairs if a["label"] != b["label"]]


def test_a_server_killed_mid_run_leaves_llm_failed_rows_that_the_next_run_retries(server, tmp_path):
    recipe = _recipe(tmp_path, server, json_mode="object_schema")
    env = {**os.environ, KEY_ENV: "not-checked"}
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "curate", str(recipe)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 300
    while _answers_cached(tmp_path) < 2:
        assert proc.poll() is None, f"the run ended before the server was killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "no answers within 300s"
        time.sleep(0.2)
    server.kill()
    try:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]  # max_failure_ratio: 1, so the run finishes with its rejects
        failed = [r for r in _rejects(tmp_path) if r["reason"] == "llm_failed"]
        assert failed and all("connection error" in r["detail"] or "attempts" in r["detail"] for r in failed)
        answered = _answers_cached(tmp_path)
    finally:
        server.start()
    again = _curate(recipe)
    assert again.returncode == 0, again.stderr[-3000:]
    usage = _stats(tmp_path)["llm"]["usage"]
    assert usage["cache_hits"] >= answered  # nothing answered before the kill is sent again
    assert len([r for r in _rejects(tmp_path) if r["reason"] == "llm_failed"]) < len(failed)
