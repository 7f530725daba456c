"""The shortcut audit (curate/shortcuts.py): words that give a kind away are flagged, content and balanced
decorations are not, frames are counted by kind, and the sample's audit reaches stats.json, inspect and the report."""

from __future__ import annotations

import json

from click.testing import CliRunner

from curate.shortcuts import audit, frame_pattern, warning


def example(kind: str, prompt: str, sources: tuple[str, ...] = ()) -> dict:
    return {"kind": kind, "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": "."}],
            "source_ids": list(sources)}  # fmt: skip


PLACES = ["the lake", "a trailhead", "the ridge", "our campsite", "the ranger station", "a cabin", "the river",
          "the car park"]  # fmt: skip
CONTENT = {"start", "wildfire", "put", "out", "campfire"}  # what the behaviour turns on, as a policy would name it


def planted(please_only_in_refusals: bool) -> list[dict]:
    """Refusals to start a wildfire and near-misses about putting out a campfire, near the same places; the
    refusals always say "please", the near-misses only when the set is balanced."""
    polite = "Tell me" if please_only_in_refusals else "Please tell me"
    rows = [example("refusal", f"Please tell me how to start a wildfire near {p}.") for p in PLACES]
    return rows + [example("benign_near_miss", f"{polite} how to put out a campfire near {p}.") for p in PLACES]


def test_a_word_only_refusals_use_is_a_giveaway():
    got = audit(planted(True), content=CONTENT)
    flagged = {(r["kind"], r["ngram"]) for r in got["giveaways"]}
    assert ("refusal", "please") in flagged
    row = next(r for r in got["giveaways"] if r["ngram"] == "please")
    assert (row["support"], row["prompts"], row["precision"]) == (8, 8, 1.0)
    # "please tell" and "please tell me" are explained by "please": only the shortest is listed
    assert not any(r["ngram"].startswith("please ") for r in got["giveaways"])
    # the harm is content, not a give-away, though only refusals name it
    assert {"wildfire", "start a wildfire"} <= {r["ngram"] for r in got["content"] if r["kind"] == "refusal"}
    assert not any(set(r["ngram"].split()) & CONTENT for r in got["giveaways"])
    assert "please" in warning(got)


def test_a_balanced_set_has_no_giveaway():
    got = audit(planted(False), content=CONTENT)
    assert got["giveaways"] == [] and warning(got) is None
    # without the policy's content words, the harm itself looks like a give-away
    assert {"wildfire", "campfire"} <= {r["ngram"] for r in audit(planted(False))["giveaways"]}


def test_words_of_the_cited_document_are_content():
    rows = [example("qa", f"What is the warranty on tent {i}?", ("doc",)) for i in range(6)]
    rows += [example("refusal", f"How do I hurt someone {i}?") for i in range(6)]
    flagged = {r["ngram"] for r in audit(rows)["giveaways"]}
    assert "warranty" in flagged
    cited = {r["ngram"] for r in audit(rows, source_words={"doc": {"warranty", "tent"}})["giveaways"]}
    assert "warranty" not in cited and "hurt" in cited


def test_frames_are_matched_in_order_and_counted_by_kind():
    pattern = frame_pattern("Explain step by step how to {harm} with {item}.")
    assert pattern.search("explain step by step how to start a fire with a lighter")
    assert not pattern.search("explain step by step how to pitch the tent")
    assert not pattern.search("with a lighter explain step by step how to start a fire")
    rows = [example("refusal", "Explain step by step how to start a fire with a lighter.")] * 2
    rows.append(example("benign_near_miss", "Explain step by step how to pitch a tent with guylines."))
    frames = [("refusal", "Explain step by step how to {harm} with {item}."), ("refusal", "Give me {x}'s {y}.")]
    got = audit(rows, frames=frames)
    assert got["frames"] == [{"kind": "refusal", "frame": frames[0][1], "train": 2,
                              "other_kinds": {"benign_near_miss": 1}}]  # fmt: skip
    assert got["unshared_frames"] == 0
    alone = audit(rows[:2], frames=frames)
    assert alone["unshared_frames"] == 1 and "used by one kind only" in warning(alone)


DECORATIONS = {"thanks", "hi", "quick one", "hello"}


def test_the_sample_with_decorations_by_kind_is_flagged_and_with_shared_decorations_is_not(tmp_path, in_tmp):
    """The sample as it was (each kind its own greetings and thanks: the fixture's templates and policy) gives
    the decision away; with the shipped templates, which draw decorations from one list, none of them is flagged."""
    import shutil

    from curate.pipeline import curate
    from curate.recipe import load_recipe
    from tests.conftest import REPO

    shutil.copytree(REPO / "sample_data", tmp_path / "sample_data")
    old = str(REPO / "tests" / "fixtures" / "decorations_by_kind")
    policy = tmp_path / "sample_data" / "policies" / "guardrails.yaml"
    shipped = policy.read_text()
    policy.write_text((REPO / "tests" / "fixtures" / "decorations_by_kind" / "guardrails.yaml").read_text())
    recipe = load_recipe("sample_data/recipe.yaml", [f"templates.dirs=[{old!r}]", "output.dir=old"])
    section = json.loads((curate(recipe).dataset_dir / "stats.json").read_text())["shortcuts"]
    flagged = {r["ngram"]: r for r in section["giveaways"]}
    assert DECORATIONS <= set(flagged), sorted(flagged)
    assert flagged["thanks"]["kind"] == "decline" and flagged["hello"]["kind"] == "abstain"
    assert all(r["precision"] >= 0.9 and r["support"] >= 5 for r in section["giveaways"])
    policy.write_text(shipped)
    new = json.loads((curate(load_recipe("sample_data/recipe.yaml")).dataset_dir / "stats.json").read_text())
    assert not DECORATIONS & {r["ngram"] for r in new["shortcuts"]["giveaways"]}


def test_the_audit_reaches_inspect_and_the_report(sample_run):
    from curate.cli.app import main
    from curate.report.html import build_report

    result, _ = sample_run
    section = json.loads((result.dataset_dir / "stats.json").read_text())["shortcuts"]
    out = CliRunner().invoke(main, ["inspect", str(result.dataset_dir), "--shortcuts", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["giveaways"] == section["giveaways"]
    table = CliRunner().invoke(main, ["inspect", str(result.dataset_dir), "--shortcuts", "--kind", "refusal"])
    assert "policy request frames" in table.output and "shortcut audit:" in table.output
    assert "Shortcut audit" in build_report(result.dataset_dir)
