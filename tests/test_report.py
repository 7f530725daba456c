"""The HTML report: numbers match stats.json, it works in headless Chromium (filter, screenshot), and a
<script> planted in a document never runs."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import require, write

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


def _cells(page: str, table_class: str) -> list[list[str]]:
    body = re.search(rf'<table class="{table_class}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row, re.S)] for row in rows]


@pytest.fixture(scope="module")
def report(sample_run, tmp_path_factory) -> Path:
    from curate.report.html import write_report

    result, _ = sample_run
    return write_report(result.run_dir, tmp_path_factory.mktemp("report") / "report.html")


def test_report_numbers_match_stats(sample_run, report):
    result, _ = sample_run
    stats = json.loads((result.dataset_dir / "stats.json").read_text())
    page = report.read_text(encoding="utf-8")
    funnel = _cells(page, "funnel")
    assert [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in funnel] == [
        (s["step"], s["rows_in"], s["rows_out"], sum(s["rejected"].values())) for s in stats["steps"]
    ]
    kinds = {r[0]: (int(r[1]), int(r[2])) for r in _cells(page, "kinds")}
    assert kinds == {k: (stats["examples"]["train"].get(k, 0), stats["examples"]["test"].get(k, 0)) for k in kinds}
    assert set(kinds) == set(stats["examples"]["train"]) | set(stats["examples"]["test"])
    assert page.count("<svg") >= 4 and not re.search(r"(src|href)=[\"']?(https?:|//)", page)  # self-contained
    data = json.loads(re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1))
    assert len(data["examples"]) == stats["examples"]["total"]["train"] + stats["examples"]["total"]["test"]
    assert len(data["rejects"]) == stats["rejects"]["total"]


def _browser():
    require("playwright")
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium package")
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


def test_browser_renders_filters_and_screenshots(sample_run, report, tmp_path):
    result, _ = sample_run
    lines = [line for f in ("train.jsonl", "test.jsonl") for line in (result.dataset_dir / f).read_text().splitlines()]
    refusals = sum(json.loads(line)["kind"] == "refusal" for line in lines)
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(report.as_uri())
        total = page.locator("#count").text_content()
        page.select_option("#kind", "refusal")
        assert page.locator("#count").text_content().startswith(f"{refusals} of ")
        kinds = page.locator("#examples .ex").evaluate_all("cards => cards.map(c => c.dataset.kind)")
        assert kinds and set(kinds) == {"refusal"}
        page.fill("#q", "camp stove")
        searched = page.locator("#examples .ex").all_text_contents()
        assert searched and all("camp stove" in t.lower() for t in searched)
        page.goto(report.as_uri() + "#kind=extract_json")  # a filter from the URL fragment
        page.reload()
        assert set(page.locator("#examples .ex").evaluate_all("c => c.map(x => x.dataset.kind)")) == {"extract_json"}
        page.select_option("#reason", "exact_duplicate_of")
        assert page.locator("#rejects tr").count() >= 1
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=False)
        browser.close()
    assert errors == [] and total.endswith("examples")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_a_script_planted_in_a_document_does_not_run(tmp_path, in_tmp):
    from curate.pipeline import curate
    from curate.recipe import validate_recipe
    from curate.report.html import write_report

    evil = "<script>window.__pwned = 1; document.title = 'pwned'</script><img src=x onerror=\"window.__pwned=2\">"
    write(
        tmp_path / "docs" / "evil.md",
        f"# Evil\n\n## Payload\n\nThis section carries a payload: {evil} and more words.\n",
    )
    recipe = validate_recipe({
        "name": "evil", "input": {"paths": [str(tmp_path / "docs")]}, "stages": [{"use": "chunk.sections"}],
        "generate": [{"kind": "qa", "min_words": 3}], "split": {"min_test_per_kind": 0},
        "output": {"dir": str(tmp_path / "run")},
    })  # fmt: skip
    result = curate(recipe)
    out = write_report(result.run_dir, tmp_path / "evil.html")
    assert "<script>window.__pwned" not in out.read_text(encoding="utf-8")
    with _browser() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(out.as_uri())
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None and page.title().startswith("gristmill report")
        assert evil in page.locator("#examples").text_content()  # shown as text, literally
        browser.close()
    shutil.rmtree(tmp_path / "run")


def test_the_report_shows_intervals_and_regressions_in_red():
    from curate.report.html import evaluation_section

    est = {"value": 0.5, "n": 30, "low": 0.33, "high": 0.67}
    base = {"value": 0.03, "n": 30, "low": 0.01, "high": 0.17}
    near = "benign_near_miss"
    report = {
        "models": {"trained": {}, "base": {}},
        "kinds": {near: {"n": 30, "trained": {"over_refusal_rate": est}, "base": {"over_refusal_rate": base}}},
        "targets": [{"metric": f"{near}.over_refusal_rate", "target": 0.1, "passed": False}],
        "comparisons": {"base": [{"label": near, "verdict": "regressed", "regressed_on": ["over_refusal_rate"]}]},
        "regressions": [{"versus": "base", "label": near, "metric": "over_refusal_rate", "baseline": 0.03,
                         "trained": 0.5, "difference": 0.47, "low": 0.27, "high": 0.63}],
        "integrity": {"problems": []},
    }  # fmt: skip
    html = evaluation_section(report)
    assert "<tr class='regressed'><td>benign_near_miss</td>" in html and "0.50 [0.33, 0.67]" in html
    assert "over_refusal_rate 0.03 → 0.50 versus base" in html and "<td>regressed</td>" in html
    report["regressions"] = []
    assert "class='regressed'" not in evaluation_section(report)
