"""Review in the browser: decisions as data (the file, its bad lines, content hashes), applied by mix through
mix.review, the server's token and checks, and the page as a person uses it in a real Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from curate.blocklist import Blocklist
from curate.errors import RecipeError
from curate.mix import mix_examples
from curate.recipe import MixSection
from curate.review.apply import AppliedReview
from curate.review.decisions import append_decision, content_hash, read_decisions
from tests.test_mix import ex
from tests.test_report import ARGS, CHROMIUM, _browser


def qa(i: int, answer: str = "An answer.") -> dict:
    e = ex(i)
    e["messages"] = [{"role": "system", "content": "You are Ada."}, *e["messages"],
                     {"role": "assistant", "content": f"{answer} ({i})"}]  # fmt: skip
    return e


def decision(e: dict, decision: str, **more) -> dict:
    return {"id": e["id"], "hash": content_hash(e), "kind": e["kind"], "decision": decision, "who": "t", **more}


def test_decisions_reject_edit_accept_rescue_and_only_accepted(tmp_path):
    examples = [qa(i) for i in range(6)]
    examples[4]["messages"][-1]["content"] = "Ask Orion Gear instead."  # a blocked term: dropped unless rescued
    path = tmp_path / "decisions.jsonl"
    edit = [dict(m) for m in examples[1]["messages"]]
    edit[-1]["content"] = "A better answer."
    for record in (
        decision(examples[0], "reject", reason="wrong or unsupported answer"),
        decision(examples[1], "edit", edit=edit),
        decision(examples[2], "reject", reason="oops"),
        decision(examples[2], "accept"),  # a changed mind: the later line wins
        decision(examples[3], "accept"),
        decision(examples[3], "clear"),  # undone: unreviewed again
        decision(examples[4], "rescue"),
    ):
        append_decision(path, record)

    section = MixSection(review=str(path))
    blocked = Blocklist(terms=["Orion Gear"])
    kept, rejects = mix_examples(examples, section, 0, blocked, review=AppliedReview(section.review))
    by_id = {e["id"]: e for e in kept}
    assert set(by_id) == {"qa-1", "qa-2", "qa-3", "qa-4", "qa-5"}
    reasons = {(r["id"], r["reason"]) for r in rejects}
    assert ("qa-0", "excluded_by_review") in reasons and ("qa-1", "edited_by_review") in reasons
    assert by_id["qa-1"]["messages"][-1]["content"] == "A better answer."
    assert json.loads(by_id["qa-1"]["meta"])["edited_by_review"]["hash"] == content_hash(examples[1])
    original = next(r for r in rejects if r["reason"] == "edited_by_review")
    assert json.loads(original["row"])["messages"] == examples[1]["messages"]  # kept for audit
    without, _ = mix_examples(examples, MixSection(), 0, blocked)
    assert "qa-4" not in {e["id"] for e in without}  # the rescue is what kept it

    section = MixSection(review={"file": str(path), "only_accepted": True})
    applied = AppliedReview(section.review)
    kept, rejects = mix_examples(examples, section, 0, blocked, review=applied)
    assert {e["id"] for e in kept} == {"qa-1", "qa-2", "qa-4"}
    assert {r["id"] for r in rejects if r["reason"] == "not_accepted_in_review"} == {"qa-3", "qa-5"}
    counts = applied.summary()["by_kind"]["qa"]
    assert counts == {"examples": 6, "reviewed": 4, "accepted": 3, "edited": 1, "rejected": 1, "rescued": 1,
                      "stale": 0}  # fmt: skip


def test_a_bad_line_is_named_and_loses_nothing_else(tmp_path):
    examples = [qa(i) for i in range(3)]
    path = tmp_path / "decisions.jsonl"
    append_decision(path, decision(examples[0], "reject", reason="wrong"))
    with open(path, "a", encoding="utf-8") as f:
        f.write("{not json\n")
        f.write(json.dumps({"id": "qa-1", "hash": "x", "decision": "maybe"}) + "\n")
        f.write(json.dumps(decision(examples[1], "reject")) + "\n")  # a reject without a reason
    append_decision(path, decision(examples[2], "reject", reason="tone"))
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"id": "qa-1", "hash": "')  # a torn last line: the server killed while writing
    read = read_decisions(path)
    assert [p.split(": ", 1)[0] for p in read.problems] == [f"{path} line {n}" for n in (2, 3, 4, 6)]
    assert "not JSON" in read.problems[0] and "'maybe' is not one of" in read.problems[1]
    assert "needs a reason" in read.problems[2] and "cut short" in read.problems[3]
    section = MixSection(review=str(path))
    _, rejects = mix_examples(examples, section, 0, review=AppliedReview(section.review))
    assert {r["id"] for r in rejects if r["reason"] == "excluded_by_review"} == {"qa-0", "qa-2"}
    # The next append ends the torn line first, so the new decision is whole.
    append_decision(path, decision(examples[1], "reject", reason="late"))
    again = read_decisions(path)
    assert again.of("qa-1", content_hash(examples[1])).status == "rejected" and len(again.problems) == 4


def test_a_changed_example_is_reported_not_applied(tmp_path):
    examples = [qa(0), qa(1)]
    path = tmp_path / "decisions.jsonl"
    append_decision(path, decision(examples[0], "reject", reason="wrong"))
    append_decision(path, decision(qa(1, "The answer as it was."), "reject", reason="wrong"))  # content changed
    append_decision(path, decision(qa(9), "accept"))  # an example this curate does not make
    applied = AppliedReview(MixSection(review=str(path)).review)
    kept, rejects = mix_examples(examples, MixSection(), 0, review=applied)
    assert [e["id"] for e in kept] == ["qa-1"] and [r["id"] for r in rejects] == ["qa-0"]
    summary = applied.summary()
    assert summary["by_kind"]["qa"]["stale"] == 1
    assert any("qa-1 (qa) changed since it was reviewed" in p for p in summary["problems"])
    assert summary["not_generated"] == 1 and "1 reviewed ids were not generated" in summary["problems"][-1]
    assert applied.summary()["problems"] == summary["problems"]  # reading the summary twice adds nothing


def test_a_bad_edit_is_refused(tmp_path):
    examples = [qa(0), qa(1)]
    path = tmp_path / "decisions.jsonl"
    roles = [{"role": "user", "content": "only a user turn"}]
    system = [dict(m) for m in examples[1]["messages"]]
    system[0]["content"] = "You are Bob."
    append_decision(path, decision(examples[0], "edit", edit=roles))
    append_decision(path, decision(examples[1], "edit", edit=system))
    applied = AppliedReview(MixSection(review=str(path)).review)
    kept, _ = mix_examples(examples, MixSection(), 0, review=applied)
    assert [e["messages"] for e in kept] == [e["messages"] for e in examples]
    problems = applied.summary()["problems"]
    assert "an edit keeps the turns" in problems[0] and "the system prompt" in problems[1]


def test_a_missing_decisions_file_is_an_error(tmp_path):
    with pytest.raises(RecipeError, match="does not exist; run `gristmill review RUN`"):
        AppliedReview(MixSection(review=str(tmp_path / "nope.jsonl")).review)


# The server and the page, on a copy of the session's sample run.


@pytest.fixture
def review_run(sample_run, tmp_path) -> Path:
    result, _ = sample_run
    run = tmp_path / "run"
    shutil.copytree(result.run_dir, run, ignore=shutil.ignore_patterns("model", "eval", "export", "review"))
    return run


def _request(url: str, token: str | None = None, body: dict | None = None, headers: dict | None = None):
    headers = dict(headers or {})
    if token:
        headers["X-Review-Token"] = token
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=30) as r:
            return r.status, json.loads(r.read()) if r.headers.get_content_type() == "application/json" else None
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_server_refuses_requests_without_the_token_and_checks_decisions(review_run):
    import threading

    from curate.review.server import ReviewState, make_server

    server, token = make_server(ReviewState(review_run, "tester"))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        assert _request(base + "/")[0] == 403
        assert _request(base + "/?token=wrong")[0] == 403
        assert _request(base + "/api/items")[0] == 403
        assert _request(base + "/api/items", "wrong")[0] == 403
        assert _request(base + "/api/decide", body={"id": "x"})[0] == 403
        assert _request(base + "/api/items", token, headers={"Host": "evil.example:80"})[0] == 403  # rebinding
        assert _request(base + "/api/items", token, headers={"Origin": "http://evil.example"})[0] == 403
        status, items = _request(base + "/api/items", token)
        assert status == 200 and items["items"]
        item = next(i for i in items["items"] if i["split"] == "train")
        status, answer = _request(base + "/api/decide", token, {"id": item["id"], "hash": "0" * 16,
                                                                "decision": "accept"})  # fmt: skip
        assert status == 409 and "changed since the page loaded" in answer["error"]
        status, answer = _request(base + "/api/decide", token, {"id": item["id"], "hash": item["hash"],
                                                                "decision": "reject"})  # fmt: skip
        assert status == 400 and "needs a reason" in answer["error"]
        edit = [m for m in item["messages"] if m["role"] != "system"]
        status, answer = _request(base + "/api/decide", token, {**item, "decision": "edit", "edit": edit})
        assert status == 400 and "keeps the turns" in answer["error"]
        kept = next(i for i in items["items"] if i["split"] == "train")
        status, answer = _request(base + "/api/decide", token, {"id": kept["id"], "hash": kept["hash"],
                                                                "decision": "rescue"})  # fmt: skip
        assert status == 400 and "cannot be rescued" in answer["error"]
        json_item = next(i for i in items["items"] if i["kind"] == "extract_json" and i["split"] == "train")
        bad = [dict(m) for m in json_item["messages"]]
        bad[-1]["content"] = '{"tier": 5}'
        status, answer = _request(base + "/api/decide", token, {**json_item, "decision": "edit", "edit": bad})
        assert status == 400 and "does not match its schema" in answer["error"]
        assert not (review_run / "review" / "decisions.jsonl").exists()  # nothing refused was written
        status, answer = _request(base + "/api/decide", token, {**item, "decision": "accept"})
        assert status == 200 and answer["review"]["status"] == "accepted"
        lines = (review_run / "review" / "decisions.jsonl").read_text().splitlines()
        assert [json.loads(line)["who"] for line in lines] == ["tester"]
    finally:
        server.shutdown()
        server.server_close()


def _start_review(run: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "GRISTMILL_REVIEWER": "pat"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "curate.cli", "review", str(run)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "review at " in line:
            return proc, line.split("review at ", 1)[1].split()[0]
    raise AssertionError(f"gristmill review printed no URL: {''.join(seen)}")


def test_browser_review_reject_edit_rescue_reload_then_curate(review_run, sample_workspace, monkeypatch):
    from playwright.sync_api import expect

    from curate.pipeline import curate
    from curate.recipe import load_recipe

    decisions = review_run / "review" / "decisions.jsonl"
    payload = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
    started = time.perf_counter()
    proc, url = _start_review(review_run)
    origin = url.split("/?", 1)[0]
    try:
        with _browser() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            errors: list[str] = []
            requests: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(url)
            page.wait_for_selector("#card[data-id]")
            first_shown = time.perf_counter() - started
            print(f"gristmill review to the first example shown: {first_shown:.1f} s")

            rejected = page.get_attribute("#card", "data-id")
            page.keyboard.press("r")
            page.keyboard.press("3")
            page.keyboard.press("Enter")
            expect(page.locator("#message")).to_have_text(f"reject: {rejected} saved")
            edited = page.get_attribute("#card", "data-id")
            assert edited != rejected  # a decision moves on to the next example
            page.keyboard.press("e")
            page.locator("#editbox textarea").last.fill(f"The edited answer. {payload}")
            page.keyboard.press("Control+Enter")
            expect(page.locator("#message")).to_have_text(f"edit: {edited} saved")

            page.select_option("#view", "dropped")
            page.select_option("#reason", "over_kind_limit")
            rescued = page.get_attribute("#card", "data-id")
            page.keyboard.press("a")
            expect(page.locator("#message")).to_have_text(f"rescue: {rescued} saved")

            page.reload()  # every decision persisted: the page reads them back from the file
            page.wait_for_selector("#card[data-id]")
            page.select_option("#status", "rejected")
            assert page.get_attribute("#card", "data-id") == rejected
            assert "should have answered" in page.locator("#card").text_content()
            page.select_option("#status", "edited")
            assert page.get_attribute("#card", "data-id") == edited
            assert payload in page.locator("#messages").text_content()  # shown as text, never run as markup
            assert page.evaluate("window.__pwned") is None
            done = page.locator("#progress .done").all_text_contents()
            assert sum(int(t.split(" / ")[0]) for t in done) == 2  # the rescued row is not an example yet
            shot = review_run / "review.png"
            page.screenshot(path=str(shot))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert errors == [] and all(u.startswith(origin + "/") for u in requests), (errors, requests)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = [json.loads(line) for line in decisions.read_text().splitlines()]
    assert [(d["decision"], d["id"], d["who"]) for d in lines] == [
        ("reject", rejected, "pat"), ("edit", edited, "pat"), ("rescue", rescued, "pat"),
    ]  # fmt: skip
    assert lines[0]["reason"] == "should have answered (over-refusal)" and lines[0]["when"]

    monkeypatch.chdir(sample_workspace)
    recipe = load_recipe("sample_data/recipe.yaml", [f"output.dir={review_run}", f"mix.review={decisions}"])
    result = curate(recipe)
    steps = {s.step: s.cached for s in result.steps}
    assert steps.pop("mix") is False and all(steps.values()), steps  # only mix and split ran again
    rows = {json.loads(x)["id"]: json.loads(x) for f in ("train.jsonl", "test.jsonl")
            for x in (result.dataset_dir / f).read_text().splitlines()}  # fmt: skip
    rejects = [json.loads(x) for x in (result.dataset_dir / "rejects" / "rejects.jsonl").read_text().splitlines()]
    assert rejected not in rows
    assert any(r["id"] == rejected and r["reason"] == "excluded_by_review" for r in rejects)
    assert rows[edited]["messages"][-1]["content"] == f"The edited answer. {payload}"
    assert json.loads(rows[edited]["meta"])["edited_by_review"]["who"] == "pat"
    assert any(r["id"] == edited and r["reason"] == "edited_by_review" for r in rejects)
    assert rescued in rows
    card = (result.dataset_dir / "README.md").read_text()
    section = card.split("## Review", 1)[1].split("\n## ", 1)[0]
    table = {}  # kind -> [examples, reviewed, accepted, edited, rejected, rescued, changed since review]
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip("|").split("|")]
        if row.startswith("| ") and cells[0] not in ("kind", "---"):
            table[cells[0]] = [int(c) for c in cells[1:]]
    assert {k for k, n in table.items() if n[1]} == {d["kind"] for d in lines}
    totals = [sum(n[i] for n in table.values()) for i in range(7)]
    assert totals[1:] == [3, 2, 1, 1, 1, 0]  # reviewed, accepted, edited, rejected, rescued, changed
    assert all(n[0] >= n[1] for n in table.values()) and len(table) >= 8  # every kind mix saw

    from curate.review.server import ReviewState

    state = ReviewState(review_run, "pat")  # after curate: the page still shows the original with its edit
    assert state.items[edited]["split"] in ("train", "test") and state.reviews[edited].edit
    assert state.items[edited]["messages"][-1]["content"] != rows[edited]["messages"][-1]["content"]
    assert state.items[rejected]["split"] == "dropped" and state.reviews[rejected].status == "rejected"


def test_garbage_lines_never_change_what_the_good_lines_decide(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    examples = [qa(i) for i in range(3)]
    good = st.builds(
        lambda e, d, r: decision(e, d, reason=r) if d == "reject" else decision(e, d),
        st.sampled_from(examples), st.sampled_from(["accept", "reject", "rescue", "clear"]), st.text(min_size=1),
    )  # fmt: skip
    garbage = st.text().map(lambda t: t.replace("\n", " ").replace("\r", " ")).filter(lambda t: t.strip())

    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.one_of(good, garbage), max_size=12))
    def check(lines):
        clean, dirty = tmp_path / "clean.jsonl", tmp_path / "dirty.jsonl"
        clean.write_text("".join(json.dumps(x) + "\n" for x in lines if isinstance(x, dict)))
        dirty.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines))
        a, b = read_decisions(clean), read_decisions(dirty)
        assert {k: r.to_json() for k, r in a.reviews.items()} == {k: r.to_json() for k, r in b.reviews.items()}
        assert not a.problems and len(b.problems) <= sum(not isinstance(x, dict) for x in lines)

    check()


def test_review_names_a_kind_or_reason_the_run_lacks(review_run):
    from click.testing import CliRunner

    from curate.cli import main

    out = CliRunner().invoke(main, ["review", str(review_run), "--kind", "poetry"])
    assert out.exit_code == 2 and "--kind 'poetry': this run has abstain, benign_near_miss" in out.output
