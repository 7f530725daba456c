"""The LLM layer against a real HTTP server on loopback speaking the OpenAI protocol (tests/openai_server.py):
limits, retries, the cache and resume, the budget, JSON repair, secrets, labels and judged generation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from curate.errors import BudgetExceeded, InvalidJSON, LLMError
from curate.llm.runtime import LLMRuntime
from tests.conftest import FAKE_KEY, llm_settings, write

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def _client_run(settings, coro_fn, cache=None):
    rt = LLMRuntime(settings, cache, 0)
    try:
        return rt, rt.run(coro_fn(rt.client))
    finally:
        rt.close()


def test_concurrency_limit_is_respected(fake_openai):
    fake_openai.latency = 0.15
    rt = LLMRuntime(llm_settings(fake_openai, max_concurrency=3), None, 0)
    try:
        answers = rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"q{i}"}]), range(12))
    finally:
        rt.close()
    assert all(a.content == "ok" for a in answers)
    assert fake_openai.max_in_flight == 3


def test_requests_per_minute_are_paced(fake_openai):
    rt = LLMRuntime(llm_settings(fake_openai, rpm=600, max_concurrency=50), None, 0)  # 10 a second, burst 10
    try:
        rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"q{i}"}]), range(30))
    finally:
        rt.close()
    starts = sorted(e["start"] for e in fake_openai.completions())
    assert len(starts) == 30
    # A token bucket: in any window, at most a burst of 10 plus 10 per second (1 of slack for timer jitter).
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            assert j - i + 1 <= 10 + 10 * (starts[j] - starts[i]) + 1
    assert starts[-1] - starts[0] >= 1.8  # 20 after the burst, at 10 a second


def test_retries_honour_retry_after_and_recover(fake_openai):
    fake_openai.faults = [("status", 429, 1), ("status", 500), ("malformed",), ("slow", 1.5)]
    t0 = time.monotonic()
    rt, answer = _client_run(
        llm_settings(fake_openai, timeout_s=0.5, max_retries=4),
        lambda c: c.chat([{"role": "user", "content": "hello"}]),
    )
    assert answer.content == "ok" and len(fake_openai.completions()) == 5
    assert time.monotonic() - t0 >= 1.0  # the 429's Retry-After was honoured
    assert rt.client.usage.retries == 4 and rt.client.usage.failures == 0


def test_a_call_that_keeps_failing_raises_and_a_4xx_is_not_retried(fake_openai):
    fake_openai.faults = [("status", 503)] * 3
    with pytest.raises(LLMError, match="failed after 3 attempts: HTTP 503"):
        _client_run(llm_settings(fake_openai, max_retries=2), lambda c: c.chat([{"role": "user", "content": "x"}]))
    fake_openai.log.clear()
    fake_openai.faults = [("status", 400)]
    with pytest.raises(LLMError, match=r"HTTP 400 \(not retried\)"):
        _client_run(llm_settings(fake_openai, max_retries=2), lambda c: c.chat([{"role": "user", "content": "x"}]))
    assert len(fake_openai.completions()) == 1


def test_json_answers_are_validated_and_repaired_once(fake_openai):
    answers = iter(['{"n": "seven"}', '{"n": 7}'])
    fake_openai.responder = lambda body: next(answers)
    _, answer = _client_run(
        llm_settings(fake_openai), lambda c: c.chat_json([{"role": "user", "content": "n?"}], SCHEMA)
    )
    assert answer.value == {"n": 7}
    repair = fake_openai.completions()[1]["body"]["messages"]
    assert repair[-2] == {"role": "assistant", "content": '{"n": "seven"}'}
    assert "does not validate" in repair[-1]["content"] and "'seven' is not of type 'integer'" in repair[-1]["content"]
    fake_openai.responder = lambda body: "not json at all"
    with pytest.raises(InvalidJSON, match="not valid JSON"):
        _client_run(llm_settings(fake_openai), lambda c: c.chat_json([{"role": "user", "content": "m?"}], SCHEMA))


def test_json_schema_response_format_is_requested_when_configured(fake_openai):
    fake_openai.responder = lambda body: '{"n": 1}'
    _client_run(
        llm_settings(fake_openai, json_mode="schema"),
        lambda c: c.chat_json([{"role": "user", "content": "n"}], SCHEMA),
    )
    body = fake_openai.completions()[0]["body"]
    assert (
        body["response_format"]["type"] == "json_schema" and body["response_format"]["json_schema"]["schema"] == SCHEMA
    )


def test_budget_stops_new_requests(fake_openai):
    settings = llm_settings(
        fake_openai,
        prices={"fake-model": {"input_per_1m": 1000, "output_per_1m": 1000}},
        budget_usd=0.3,
        max_tokens=10,
    )
    rt = LLMRuntime(settings, None, 0)
    try:
        results = [rt.run(_safe(rt.client.chat([{"role": "user", "content": "x" * 400}]))) for _ in range(10)]
    finally:
        rt.close()
    sent = len(fake_openai.completions())
    assert 0 < sent < 10 and all(isinstance(r, BudgetExceeded) for r in results[sent:])
    assert rt.client.usage.cost_usd <= 0.3


async def _safe(coro):
    try:
        return await coro
    except LLMError as err:
        return err


def test_missing_key_is_a_clear_error(fake_openai, monkeypatch):
    settings = llm_settings(fake_openai)
    monkeypatch.delenv("GRISTMILL_TEST_KEY")
    rt = LLMRuntime(settings, None, 0)
    try:
        with pytest.raises(Exception, match=r"GRISTMILL_TEST_KEY .* is not set"):
            rt.client  # noqa: B018
    finally:
        rt.close()


# End to end through `gristmill curate`.

DOCS = {
    "returns.md": "# Returns\n\n## Window\n\nYou can return most items within 60 days of delivery. Items must be "
    "clean and unused. Refunds go back to the original payment method within ten days.\n",
    "tents.md": "# Tents\n\n## Pitching\n\nStake the four corners first and pull each corner taut. Then clip the "
    "inner tent to the poles and throw the rain fly over the top before the rain starts.\n",
}


def _answer(body) -> str:
    """Plays the LLM: labels, question/answer pairs, and a judge that fails answers mentioning 'forever'."""
    system = body["messages"][0]["content"] if body["messages"][0]["role"] == "system" else ""
    user = body["messages"][-1]["content"]
    if "You label company documents" in system:
        quality = 2 if "Tents" in user else 4
        return json.dumps({"topic": "returns" if "Returns" in user else "other", "audience": "customer",
                           "sensitivity": "public", "quality": quality, "rationale": "clear"})  # fmt: skip
    if "You write training data" in system:
        source = user.split("\n\n", 1)[1]
        first = source.split(". ")[0]
        return json.dumps({"pairs": [{"question": "What does the policy say first?", "answer": first + "."},
                                     {"question": "Is it forever?", "answer": "It lasts forever."}]})  # fmt: skip
    if "You check training examples" in system:
        source = user.split('"""')[1]
        answer = user.split("Answer: ", 1)[1].split("\n")[0]
        faithful = "forever" not in answer
        evidence = " ".join(source.split()[:6])
        reason = "supported" if faithful else "the source says nothing about forever"
        return json.dumps({"faithful": faithful, "evidence": evidence, "standalone": True, "reason": reason})
    return "{}"


def _recipe(tmp_path, server, **extra):
    for name, text in DOCS.items():
        write(tmp_path / "docs" / name, text)
    recipe = {
        "name": "llm",
        "input": {"paths": [str(tmp_path / "docs")]},
        "stages": [
            {"use": "chunk.sections"},
            {"use": "label.llm", "with": {"topics": ["returns", "tents"]}},
            {"use": "select.threshold", "with": {"rules": [{"field": "labels.llm.quality", "op": ">=", "value": 3}]}},
        ],
        "generate": [{"kind": "qa", "backend": "llm", "per_doc": 2, "min_words": 5}],
        "split": {"min_test_per_kind": 0},
        "llm": llm_settings(server).model_dump(),
        "output": {"dir": str(tmp_path / "run")},
        **extra,
    }
    path = write(tmp_path / "recipe.yaml", json.dumps(recipe))
    return path


def _curate_cli(path, cwd, **kw):
    env = {**os.environ, "GRISTMILL_TEST_KEY": FAKE_KEY}
    return subprocess.run([sys.executable, "-m", "curate.cli", "curate", str(path)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120, **kw)  # fmt: skip


def test_labels_and_judged_generation_end_to_end_then_rerun_sends_nothing(fake_openai, tmp_path):
    fake_openai.responder = _answer
    recipe = _recipe(tmp_path, fake_openai)
    first = _curate_cli(recipe, tmp_path)
    assert first.returncode == 0, first.stderr
    run = tmp_path / "run"
    docs = [json.loads(line) for line in (run / "dataset" / "documents" / "documents.jsonl").read_text().splitlines()]
    assert [d["title"] for d in docs] == ["Returns"]  # Tents was labelled quality 2 and not selected
    labels = json.loads(docs[0]["labels"])["llm"]
    assert labels["topic"] == "returns" and labels["quality"] == 4 and labels["model"] == "fake-model"
    examples = [
        json.loads(line)
        for f in ("train.jsonl", "test.jsonl")
        for line in (run / "dataset" / f).read_text().splitlines()
    ]
    assert len(examples) == 1 and examples[0]["generator"] == "llm"
    meta = json.loads(examples[0]["meta"])
    assert meta["model"] == "fake-model" and meta["writer"] == "prompt.qa_write@1"
    assert meta["judge"]["template"] == "prompt.judge_grounding@1" and meta["judge"]["faithful"] is True
    rejects = [json.loads(line) for line in (run / "dataset" / "rejects" / "rejects.jsonl").read_text().splitlines()]
    judged = [r for r in rejects if r["reason"] == "judge_rejected"]
    assert len(judged) == 1 and "nothing about forever" in judged[0]["detail"]
    stats = json.loads((run / "dataset" / "stats.json").read_text())
    sent = len(fake_openai.completions())
    assert stats["llm"]["usage"]["requests"] == sent == 2 + 1 + 2  # 2 labels, 1 writer, 2 judge calls
    # A second run: every step is a checkpoint, and a changed downstream step finds its answers in the cache.
    again = _curate_cli(recipe, tmp_path)
    assert again.returncode == 0 and len(fake_openai.completions()) == sent
    (run / "work" / "steps").rename(run / "work" / "steps-old")  # drop the checkpoints, keep the cache
    third = _curate_cli(recipe, tmp_path)
    assert third.returncode == 0 and len(fake_openai.completions()) == sent  # 0 requests: all from the cache
    # The key is nowhere: not in the run directory (cache included), not in any output.
    for path in run.rglob("*"):
        if path.is_file():
            assert FAKE_KEY.encode() not in path.read_bytes(), path
    for out in (first, again, third):
        assert FAKE_KEY not in out.stdout + out.stderr
    auth = [{k.lower(): v for k, v in e["headers"].items()}.get("authorization") for e in fake_openai.completions()]
    assert auth == [f"Bearer {FAKE_KEY}"] * sent  # it was sent, as a header, and only there


def test_killed_run_resumes_without_resending_answered_requests(fake_openai, tmp_path):
    fake_openai.responder = _answer
    fake_openai.latency = 0.05
    for i in range(40):
        write(tmp_path / "docs" / f"doc{i:02d}.md", f"# Returns {i}\n\nItem {i} can be returned within {i} days.\n")
    recipe = _recipe(tmp_path, fake_openai, generate=[])
    raw = json.loads(recipe.read_text())
    raw["llm"]["max_concurrency"] = 2
    recipe.write_text(json.dumps(raw))
    env = {**os.environ, "GRISTMILL_TEST_KEY": FAKE_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "curate.cli", "curate", str(recipe)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 60
    while len([e for e in fake_openai.completions() if "end" in e]) < 10:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    from curate.llm.cache import RequestCache

    cached = len(RequestCache(tmp_path / "run" / "work" / "llm_cache.sqlite"))  # answers that arrived, kept
    before = len(fake_openai.completions())
    assert 8 <= cached <= before < 42
    done = _curate_cli(recipe, tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(fake_openai.completions()) - before == 42 - cached  # only what was not answered is sent
    assert len({json.dumps(e["body"]["messages"]) for e in fake_openai.completions()}) == 42  # 40 docs + 2


def test_failures_go_to_rejects_and_the_ratio_bound_fails_the_run(fake_openai, tmp_path):
    fake_openai.responder = _answer
    fake_openai.fault_for = lambda body: ("status", 500) if "Tents" in body["messages"][-1]["content"] else None
    recipe = _recipe(tmp_path, fake_openai, generate=[])
    raw = json.loads(recipe.read_text())
    raw["llm"]["max_retries"] = 1
    recipe.write_text(json.dumps(raw))
    out = _curate_cli(recipe, tmp_path)
    assert out.returncode == 5 and "1 of 2 LLM rows failed after retries" in out.stderr
    rejects = (tmp_path / "run" / "dataset" / "rejects" / "rejects.jsonl").read_text()
    assert "llm_failed" in rejects and "failed after 2 attempts: HTTP 500" in rejects
    raw["llm"]["max_failure_ratio"] = 0.5
    recipe.write_text(json.dumps(raw))
    assert _curate_cli(recipe, tmp_path).returncode == 0


def test_zero_examples_names_the_stage_that_emptied_the_run(tmp_path, in_tmp):
    from curate.errors import StageError
    from curate.pipeline import curate
    from curate.recipe import validate_recipe

    write(
        tmp_path / "docs" / "a.md", "# A\n\n## B\n\nSome words about returns and refunds here, twelve words in all.\n"
    )
    recipe = validate_recipe({
        "name": "empty", "input": {"paths": [str(tmp_path / "docs")]},
        "stages": [{"use": "filter.length", "with": {"min_words": 500}}], "generate": [{"kind": "qa"}],
        "output": {"dir": str(tmp_path / "run")},
    })  # fmt: skip
    with pytest.raises(StageError, match=r"0 examples from 1 documents: filter.length@1 dropped all 1 rows"):
        curate(recipe)


def test_extract_json_and_refusal_through_the_llm(fake_openai, tmp_path, in_tmp):
    """Issue 6's LLM path: JSON objects from the LLM with the repair turn, paraphrased refusal requests."""
    from curate.pipeline import curate
    from curate.recipe import load_recipe

    write(tmp_path / "schemas" / "ticket.json", json.dumps({
        "title": "ticket", "type": "object", "additionalProperties": False, "required": ["ticket_id", "priority"],
        "properties": {"ticket_id": {"type": "string", "x-from": ["id"]}, "priority": {"enum": ["low", "high"]}},
    }))  # fmt: skip
    write(tmp_path / "docs" / "t.jsonl", '{"id": "T-1", "title": "Late", "text": "Late parcel.", "priority": "high"}\n'
          '{"id": "T-2", "title": "Zip", "text": "Zip broke.", "priority": "low"}\n')  # fmt: skip
    policy = write(tmp_path / "p.yaml", json.dumps({
        "name": "p", "refusal_style": {"openers": ["Sorry, I can't help with that."]},
        "categories": [{"name": "privacy", "description": "d", "refusal": "r", "alternative": "a",
                        "requests": ["Give me {who}'s address", "Where does {who} live"],
                        "slots": {"who": ["Ann", "Bob", "Cy"]}}],
    }))  # fmt: skip

    def answer(body):
        user = body["messages"][-1]["content"]
        if "Paraphrase" in user:
            request = user.split("\n\n", 1)[1].split("\n\n")[0]
            return json.dumps({"paraphrase": f"Could you tell me this: {request}"})
        conversation = " ".join(m["content"] for m in body["messages"])
        if "Id: T-1" in conversation:  # first an invalid enum, then the repair turn fixes it
            return (
                '{"ticket_id": "T-1", "priority": "high"}'
                if "Your answer" in user
                else '{"ticket_id": "T-1", "priority": "urgent"}'
            )
        return '{"ticket_id": "T-2"}'  # missing priority, twice: rejected with the validation error

    fake_openai.responder = answer
    recipe = {
        "name": "j", "input": {"paths": [str(tmp_path / "docs")]},
        "generate": [
            {"kind": "extract_json", "backend": "llm", "schemas": [str(tmp_path / "schemas" / "ticket.json")]},
            {"kind": "refusal", "backend": "llm", "policy": str(policy), "per_category": 4},
        ],
        "split": {"min_test_per_kind": 0}, "llm": llm_settings(fake_openai).model_dump(),
        "output": {"dir": str(tmp_path / "run")},
    }  # fmt: skip
    write(tmp_path / "r.yaml", json.dumps(recipe))
    result = curate(load_recipe(tmp_path / "r.yaml"))
    rows = [
        json.loads(line)
        for f in ("train.jsonl", "test.jsonl")
        for line in (result.dataset_dir / f).read_text().splitlines()
    ]
    objects = [json.loads(e["messages"][-1]["content"]) for e in rows if e["kind"] == "extract_json"]
    assert objects == [{"ticket_id": "T-1", "priority": "high"}]
    refusals = [e for e in rows if e["kind"] == "refusal"]
    assert refusals and all("Could you tell me this:" in e["messages"][-2]["content"] for e in refusals)
    rejects = (result.dataset_dir / "rejects" / "rejects.jsonl").read_text()
    assert "schema_invalid" in rejects and "'priority' is a required property" in rejects


def test_llm_check_reports_what_the_endpoint_supports(fake_openai, monkeypatch):
    from click.testing import CliRunner

    from curate.cli import main

    monkeypatch.setenv("GRISTMILL_TEST_KEY", FAKE_KEY)
    fake_openai.latency = 0.05
    fake_openai.responder = lambda body: '{"ok": true}'
    fake_openai.json_schema_support = False
    fake_openai.fault_for = lambda body: ("status", 429, None) if fake_openai.in_flight > 4 else None
    args = ["llm", "check", "--base-url", fake_openai.base_url, "--model", "fake-model"]
    out = CliRunner().invoke(main, [*args, "--api-key-env", "GRISTMILL_TEST_KEY", "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["chat"]["ok"] and report["json_object"]["ok"] and not report["json_schema"]["ok"]
    assert report["concurrency"]["highest_ok"] == 4 and report["recommended_json_mode"] == "object"
    assert FAKE_KEY not in out.output
    table = CliRunner().invoke(main, [*args, "--api-key-env", "GRISTMILL_TEST_KEY"])
    assert "highest concurrency that worked" in table.output and "4" in table.output


def test_dry_run_estimates_without_sending_anything(fake_openai, tmp_path):
    fake_openai.responder = _answer
    recipe = _recipe(tmp_path, fake_openai)
    raw = json.loads(recipe.read_text())
    raw["llm"]["prices"] = {"fake-model": {"input_per_1m": 2.0, "output_per_1m": 8.0}}
    recipe.write_text(json.dumps(raw))
    env = {**os.environ, "GRISTMILL_TEST_KEY": FAKE_KEY}
    cmd = [sys.executable, "-m", "curate.cli", "curate", str(recipe), "--dry-run"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert not fake_openai.completions()  # nothing was sent
    text = " ".join(out.stdout.split())
    # 2 labels, 2 writer calls (both rows pass the threshold in the estimate), 2 judge calls.
    assert "requests to send │ 6" in text and "answered from the cache │ 0" in text and "USD" in text
    assert not (tmp_path / "run" / "dataset").exists()
    assert _curate_cli(recipe, tmp_path).returncode == 0
    again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "requests to send │ 0" in " ".join(again.stdout.split())  # every LLM step is checkpointed now
    (tmp_path / "run" / "work" / "steps").rename(tmp_path / "run" / "work" / "steps-old")
    third = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert "answered from the cache │ 3" in " ".join(third.stdout.split())  # 2 labels and the returns writer
