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


LLAMA_CPP_REFUSAL = (  # what llama-cpp-python's server sends for a response_format type it does not know
    500,
    "1 validation error for CreateChatCompletionRequest\nresponse_format.type\n  Input should be 'text' or "
    "'json_object' [type=literal_error, input_value='json_schema', input_type=str]",
)


def test_a_5xx_request_validation_error_is_not_retried(fake_openai):
    fake_openai.formats = {"text", "json_object"}
    fake_openai.format_refusal = LLAMA_CPP_REFUSAL
    rf = {"response_format": {"type": "json_schema", "json_schema": {"name": "n", "schema": SCHEMA}}}
    with pytest.raises(LLMError, match=r"HTTP 500, a request-validation error \(not retried\)"):
        _client_run(
            llm_settings(fake_openai, max_retries=3), lambda c: c.chat([{"role": "user", "content": "x"}], **rf)
        )
    assert len(fake_openai.completions()) == 1  # sent once: no retry of a request the server cannot parse


def _honour_object_schema(body):
    """llama.cpp: json_object with a schema constrains the answer to it (here, a fixed valid answer)."""
    rf = body.get("response_format") or {}
    return '{"n": 3}' if rf.get("type") == "json_object" and rf.get("schema") else "not json"


def test_json_mode_schema_falls_back_to_the_form_the_server_takes(fake_openai):
    fake_openai.formats = {"text", "json_object"}
    fake_openai.format_refusal = LLAMA_CPP_REFUSAL
    fake_openai.responder = _honour_object_schema
    settings = llm_settings(fake_openai, json_mode="schema", max_retries=3)

    async def three(client):
        return [await client.chat_json([{"role": "user", "content": f"n {i}?"}], SCHEMA) for i in range(3)]

    rt, answers = _client_run(settings, three)
    assert [a.value for a in answers] == [{"n": 3}] * 3
    sent = [c["body"]["response_format"] for c in fake_openai.completions()]
    assert [f["type"] for f in sent] == ["json_schema", "json_object", "json_object", "json_object"]  # one refusal
    assert all(f["schema"] == SCHEMA for f in sent[1:])
    usage = rt.client.usage.as_dict()
    assert usage["json_mode"] == "object_schema" and usage["retries"] == 0
    assert len(usage["notes"]) == 1 and "refused json_mode 'schema'" in usage["notes"][0]


def test_json_mode_auto_uses_what_llm_check_recorded(fake_openai, monkeypatch):
    from click.testing import CliRunner

    from curate.cli import main

    monkeypatch.setenv("GRISTMILL_TEST_KEY", FAKE_KEY)
    fake_openai.formats = {"text", "json_object"}
    fake_openai.format_refusal = LLAMA_CPP_REFUSAL

    def answer(body):  # honours a schema sent in llama.cpp's form; otherwise follows the prompt
        rf = body.get("response_format") or {}
        if rf.get("schema"):
            return '{"colour": "red", "count": 1}' if "colour" in json.dumps(rf["schema"]) else '{"n": 3}'
        return '{"ok": true}'

    fake_openai.responder = answer
    args = ["llm", "check", "--base-url", fake_openai.base_url, "--model", "fake-model"]
    out = CliRunner().invoke(main, [*args, "--api-key-env", "GRISTMILL_TEST_KEY", "--json"])
    report = json.loads(out.output)
    assert not report["json_schema"]["accepted"] and report["json_object_schema"]["ok"]
    assert report["recommended_json_mode"] == "object_schema"
    fake_openai.log.clear()
    rt, answer = _client_run(
        llm_settings(fake_openai, json_mode="auto"), lambda c: c.chat_json([{"role": "user", "content": "n"}], SCHEMA)
    )
    assert answer.value == {"n": 3} and rt.client.usage.json_mode == "object_schema"
    assert [c["body"]["response_format"]["type"] for c in fake_openai.completions()] == ["json_object"]


def test_the_reviews_case_100_queued_requests_a_cent_and_4_in_flight_spend_the_cent(fake_openai):
    """Before: 4 requests sent, 0.3% of the budget spent. (Holds summed as floats once left a residue that kept
    the waiting requests waiting with nothing in flight: holders are counted.)"""
    fake_openai.latency = 0.01
    price = {"fake-model": {"input_per_1m": 100, "output_per_1m": 100}}
    settings = llm_settings(fake_openai, prices=price, budget_usd=0.01, max_tokens=10, max_concurrency=4)
    rt = LLMRuntime(settings, None, 0)
    try:
        rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"{i:03d} " + "x" * 40}]), range(100))
        estimate, spent = rt.client.estimate_cost(12, 10), rt.client.usage.cost_usd
    finally:
        rt.close()
    assert 0.8 * 0.01 <= spent <= 0.01 + estimate and 0.01 - spent < estimate, spent


def test_queued_requests_spend_the_budget_and_a_second_map_goes_on(fake_openai):
    """Holds are taken with a concurrency slot, not while queued: 110 queued requests at 4 in flight spend at least
    80% of the budget and never more than the budget plus one request's estimate; a second map is not stopped by
    the first (before: 4 sent, 0.3% of the budget spent, and a second map sent none)."""
    fake_openai.latency = 0.01
    price = {"fake-model": {"input_per_1m": 1000, "output_per_1m": 1000}}
    settings = llm_settings(fake_openai, prices=price, budget_usd=0.5, max_tokens=10, max_concurrency=4)
    rt = LLMRuntime(settings, None, 0)
    prompt = "x" * 40
    try:
        first = rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"{i:03d} {prompt}"}]), range(10))
        assert not any(isinstance(r, Exception) for r in first)
        second = rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"{i:03d}b {prompt}"}]), range(100))
        estimate = rt.client.estimate_cost(12, 10)
        spent, usage = rt.client.usage.cost_usd, rt.client.usage
    finally:
        rt.close()
    sent_second = len(fake_openai.completions()) - 10
    assert sent_second > 20, sent_second
    assert 0.8 * 0.5 <= spent <= 0.5 + estimate, spent
    refused = [r for r in second if isinstance(r, BudgetExceeded)]
    assert len(refused) == 100 - sent_second == usage.budget_refused
    assert "raise the budget" in str(refused[0])


def test_a_request_retrying_while_others_wait_for_budget_is_not_stuck(fake_openai):
    """One slot, and the first request must retry (a 503): the requests waiting for room in the budget hold no
    slot, so the retry gets one and settles, and the budget is spent as far as it goes."""
    fake_openai.faults = [("status", 503)]
    price = {"fake-model": {"input_per_1m": 1000, "output_per_1m": 1000}}
    settings = llm_settings(fake_openai, prices=price, budget_usd=0.05, max_tokens=10, max_concurrency=1)
    rt = LLMRuntime(settings, None, 0)
    try:
        results = rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"{i} " + "x" * 40}]), range(8))
        estimate, spent = rt.client.estimate_cost(11, 10), rt.client.usage.cost_usd
    finally:
        rt.close()
    assert rt.client.usage.retries == 1 and 0.05 - estimate <= spent <= 0.05
    answered = sum(not isinstance(r, Exception) for r in results)
    assert answered >= 2 and sum(isinstance(r, BudgetExceeded) for r in results) == 8 - answered


def test_a_budget_without_a_price_is_a_recipe_error_unless_the_endpoint_reports_the_cost(fake_openai):
    from curate.errors import RecipeError
    from curate.recipe import validate_recipe

    raw = {"name": "b", "input": {"paths": ["docs"]}, "llm": {"base_url": "http://x", "model": "m", "budget_usd": 1}}
    with pytest.raises(RecipeError, match=r"no price for model 'm'.*cost_reported"):
        validate_recipe(raw)
    raw["llm"]["prices"] = {"other-model": {"input_per_1m": 1, "output_per_1m": 1}}
    with pytest.raises(RecipeError, match="no price for model 'm'"):
        validate_recipe(raw)
    raw["llm"]["prices"]["m"] = {"input_per_1m": 1, "output_per_1m": 1}
    validate_recipe(raw)
    # An endpoint that reports usage.cost (OpenRouter): the reported cost is spent, the dearest one is the estimate.
    fake_openai.cost = 0.01
    rt = LLMRuntime(llm_settings(fake_openai, cost_reported=True, budget_usd=0.05, max_concurrency=1), None, 0)
    try:
        results = rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"q{i}"}]), range(20))
        spent = rt.client.usage.cost_usd
    finally:
        rt.close()
    assert len(fake_openai.completions()) == 5 and spent == pytest.approx(0.05)
    assert sum(isinstance(r, BudgetExceeded) for r in results) == 15


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


def test_rows_the_budget_cut_are_counted_said_and_sent_by_the_next_run_with_a_larger_budget(fake_openai, tmp_path):
    fake_openai.responder = _answer
    recipe = _recipe(tmp_path, fake_openai, generate=[])
    raw = json.loads(recipe.read_text())
    raw["llm"].update(prices={"fake-model": {"input_per_1m": 1000, "output_per_1m": 1000}}, budget_usd=0.0001)
    raw["llm"]["max_failure_ratio"] = 1.0
    recipe.write_text(json.dumps(raw))
    out = _curate_cli(recipe, tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 LLM rows were never sent" in " ".join(out.stdout.split()) and not fake_openai.completions()
    stats = json.loads((tmp_path / "run" / "dataset" / "stats.json").read_text())
    assert stats["llm"]["failed_rows"] == stats["llm"]["unsent_rows"] == 2
    raw["llm"]["max_failure_ratio"] = 0.1  # budget_exhausted rows count against the failure ratio
    recipe.write_text(json.dumps(raw))
    out = _curate_cli(recipe, tmp_path)
    assert out.returncode == 5 and "2 never sent" in out.stderr
    raw["llm"]["budget_usd"] = 100.0  # a raised budget: the next run sends what the last one could not
    recipe.write_text(json.dumps(raw))
    out = _curate_cli(recipe, tmp_path)
    assert out.returncode == 0, out.stderr
    assert len(fake_openai.completions()) == 2
    rejects = (tmp_path / "run" / "dataset" / "rejects" / "rejects.jsonl").read_text()
    assert "budget_exhausted" not in rejects


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
    sent = len(fake_openai.completions())
    assert _curate_cli(recipe, tmp_path).returncode == 0
    assert len(fake_openai.completions()) == sent + 2  # the failed row is tried again (it fails again)
    # The endpoint is back: the next run retries only the failed row (the other answer is in the cache).
    fake_openai.fault_for = None
    sent = len(fake_openai.completions())
    assert _curate_cli(recipe, tmp_path).returncode == 0
    assert len(fake_openai.completions()) == sent + 1
    rejects = (tmp_path / "run" / "dataset" / "rejects" / "rejects.jsonl").read_text()
    assert "llm_failed" not in rejects
    assert _curate_cli(recipe, tmp_path).returncode == 0 and len(fake_openai.completions()) == sent + 1


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
    # the LLM's paraphrase, with or without a shared decoration ("Hi, could you tell me this: ...")
    assert refusals and all("could you tell me this:" in e["messages"][-2]["content"].lower() for e in refusals)
    rejects = (result.dataset_dir / "rejects" / "rejects.jsonl").read_text()
    assert "schema_invalid" in rejects and "'priority' is a required property" in rejects


def test_llm_check_reports_what_the_endpoint_supports(fake_openai, monkeypatch):
    from click.testing import CliRunner

    from curate.cli import main

    monkeypatch.setenv("GRISTMILL_TEST_KEY", FAKE_KEY)
    fake_openai.latency = 0.05
    fake_openai.responder = lambda body: '{"ok": true}'
    fake_openai.formats = {"text", "json_object"}
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


def test_the_budget_holds_under_concurrency_and_unsent_rows_are_budget_exhausted(fake_openai):
    """16 requests in flight at once and a budget for about 5: each request holds its estimated cost once it has a
    slot, so the spend stays within the budget plus one request's estimate, and all of it that can be is spent."""
    fake_openai.latency = 0.2
    fake_openai.omit_usage = True  # no usage in the responses: the spend is estimated from the text
    price = {"fake-model": {"input_per_1m": 1000, "output_per_1m": 1000}}
    settings = llm_settings(fake_openai, prices=price, budget_usd=0.06, max_tokens=10, max_concurrency=16)
    rt = LLMRuntime(settings, None, 0)
    try:
        results = rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"{i} " + "x" * 40}]), range(40))
        estimate = rt.client.estimate_cost(11, 10)
    finally:
        rt.close()
    sent = len(fake_openai.completions())
    # Refused only when the room left is less than one request's worst case (before: 0.3% of a budget spent).
    assert 0.06 - estimate <= rt.client.usage.cost_usd <= 0.06 + estimate, rt.client.usage.cost_usd
    assert sum(isinstance(r, BudgetExceeded) for r in results) == 40 - sent
    from curate.llm.client import failure_reason

    assert {failure_reason(r) for r in results if isinstance(r, Exception)} == {"budget_exhausted"}


def test_retry_after_is_clamped_and_a_trickling_or_huge_response_is_cut_off(fake_openai):
    fake_openai.faults = [("status", 429, "inf"), ("status", 503, 86400)]
    t0 = time.monotonic()
    _, answer = _client_run(
        llm_settings(fake_openai, max_retry_after_s=0.2, max_retries=3),
        lambda c: c.chat([{"role": "user", "content": "hi"}]),
    )
    assert answer.content == "ok" and time.monotonic() - t0 < 5  # not forever, not a day
    fake_openai.faults = [("trickle", 0.3)]  # every byte within the read timeout, the whole never
    t0 = time.monotonic()
    with pytest.raises(LLMError, match="request_deadline_s"):
        _client_run(
            llm_settings(fake_openai, timeout_s=2, request_deadline_s=1.0, max_retries=0),
            lambda c: c.chat([{"role": "user", "content": "slow"}]),
        )
    assert time.monotonic() - t0 < 4
    for fault in (("huge", 4 * 2**20, True), ("huge", 4 * 2**20, False)):
        fake_openai.faults = [fault]
        with pytest.raises(LLMError, match="max_response_bytes"):
            _client_run(
                llm_settings(fake_openai, max_response_bytes=2**20, max_retries=2),
                lambda c: c.chat([{"role": "user", "content": "big"}]),
            )


def test_tokens_per_minute_hold_for_requests_larger_than_a_seconds_allowance(fake_openai):
    """tpm 60,000 (1,000 a second) and requests of about 2,000 tokens: each puts the bucket in debt, so over any
    window the tokens admitted stay within one second's burst plus the rate (before: clamped to 1,000 each)."""
    settings = llm_settings(fake_openai, tpm=60_000, max_tokens=8, max_concurrency=8)
    rt = LLMRuntime(settings, None, 0)
    try:
        rt.map(lambda i: rt.client.chat([{"role": "user", "content": f"{i}" + "y" * 8000}]), range(5))
    finally:
        rt.close()
    starts = sorted(e["start"] for e in fake_openai.completions())
    per_request = 8000 // 4 + 8
    for i in range(len(starts)):
        for j in range(i + 1, len(starts)):
            admitted = (j - i + 1) * per_request
            assert admitted <= 1000 + 1000 * (starts[j] - starts[i]) + per_request + 100, (i, j)
    assert starts[-1] - starts[0] >= 6  # 4 requests after the first, 2 seconds of allowance each


def test_the_endpoint_is_part_of_the_cache_key_and_credentials_never_leave(fake_openai, tmp_path):
    from curate.recipe import validate_recipe
    from tests.openai_server import FakeOpenAI

    other = FakeOpenAI().start()
    other.responder = lambda body: "from the other endpoint"
    try:
        cache = tmp_path / "cache.sqlite"
        _client_run(llm_settings(fake_openai), lambda c: c.chat([{"role": "user", "content": "q"}]), cache)
        _, answer = _client_run(llm_settings(other), lambda c: c.chat([{"role": "user", "content": "q"}]), cache)
        assert answer.content == "from the other endpoint" and not answer.cached
    finally:
        other.stop()
    secret_url = "https://alice:pa55word@llm.example.com/v1?key=SECRETKEY123"
    recipe = validate_recipe({"name": "r", "input": {"paths": ["x"]}, "llm": {"base_url": secret_url, "model": "m"}})
    resolved = json.dumps(recipe.resolved())
    assert "pa55word" not in resolved and "SECRETKEY123" not in resolved and "llm.example.com/v1" in resolved
