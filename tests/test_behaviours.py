"""Behaviour examples: JSON-schema outputs, refusals and near-misses from a policy, abstentions, the blocklist,
varied prompts and an honest split (held-out families and slot values)."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict

import pytest
import yaml

from curate.errors import RecipeError
from curate.near_dup import prompt_of
from curate.recipe import validate_recipe
from curate.stages.dedupe.minhash import shingles
from tests.conftest import REPO, write

BEHAVIOUR_KINDS = ("extract_json", "refusal", "benign_near_miss", "abstain")


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def sample(sample_run):
    result, recipe = sample_run
    d = result.dataset_dir
    return {
        "dir": d,
        "recipe": recipe,
        "train": jsonl(d / "train.jsonl"),
        "test": jsonl(d / "test.jsonl"),
        "documents": jsonl(d / "documents" / "documents.jsonl"),
        "stats": json.loads((d / "stats.json").read_text()),
        "behaviours": json.loads((d / "behaviours.json").read_text()),
    }


def test_every_json_example_validates_against_its_schema(sample):
    from jsonschema.validators import validator_for

    examples = [e for e in sample["train"] + sample["test"] if e["kind"] == "extract_json"]
    assert len(examples) >= 60
    for e in examples:
        name = json.loads(e["meta"])["schema"]
        schema = json.loads((sample["dir"] / "schemas" / f"{name}.json").read_text())
        validator_for(schema)(schema).validate(json.loads(e["messages"][-1]["content"]))
        prompt = "\n".join(m["content"] for m in e["messages"][:-1])
        assert name in prompt  # the request names the schema, in the system prompt or in the user turn alone
    assert {json.loads(e["meta"])["schema"] for e in examples} == {"support_ticket", "membership_tier", "package_part"}


def test_json_objects_are_filled_from_the_records_not_invented(sample):
    tickets = {
        json.loads(line)["ticket_id"]: json.loads(line)
        for line in open(REPO / "sample_data/docs/support/tickets-export-2026.jsonl", encoding="utf-8")
    }
    checked = 0
    for e in sample["train"] + sample["test"]:
        obj = json.loads(e["messages"][-1]["content"]) if e["kind"] == "extract_json" else None
        if obj and obj.get("ticket_id") in tickets:
            ticket = tickets[obj["ticket_id"]]
            assert (obj["summary"], obj["priority"], obj["category"]) == (
                ticket["subject"],
                ticket["priority"],
                ticket["category"],
            )
            assert obj["product"] == (ticket["product"] or None)
            checked += 1
    assert checked >= 60  # every ticket-backed object, with the sample recipe's extract_json cap


def test_field_records_come_in_every_layout_with_every_value_shown(sample):
    from curate.generate.extract_json import field_layouts

    values = {
        "id": "T-1",
        "title": "Zip broke",
        "subject": "Zip broke",
        "text": "The zip split.",
        "body": "The zip split.",
        "priority": "high",
        "category": "warranty",
        "product": "Ridgeline 55",
    }
    shown = field_layouts(values)
    assert set(shown) == {"export", "email", "chat", "web_form", "prose"}
    assert len(set(shown.values())) == 5
    for layout, text in shown.items():
        for value in ("T-1", "Zip broke", "The zip split.", "high", "warranty", "Ridgeline 55"):
            assert value in text, (layout, value)
    # the sample recipe keeps the export layout only (see its comment): every ticket example says so
    layouts = Counter(json.loads(e["meta"]).get("layout") for e in sample["train"] + sample["test"])
    assert layouts["export"] >= 20 and set(layouts) <= {"export", None}


def test_abstention_questions_mention_nothing_in_the_corpus(sample):
    corpus = "\n".join(f"{d['title']}\n{d['section']}\n{d['text']}" for d in sample["documents"]).lower()
    words = set(re.findall(r"\w+", corpus))
    abstains = [e for e in sample["train"] + sample["test"] if e["kind"] == "abstain"]
    assert len(abstains) >= 60
    for e in abstains:
        entity = json.loads(e["meta"])["entity"]
        assert entity.lower() not in corpus
        assert entity in e["messages"][-2]["content"] and entity in e["messages"][-1]["content"]
        names = [t for t in re.findall(r"\w+", entity) if t[0].isupper()]
        assert not any(t.lower() in words for t in names), entity
    rejected = [r for r in jsonl(sample["dir"] / "rejects" / "rejects.jsonl") if r["reason"] == "entity_in_corpus"]
    assert any("same-day courier delivery" in r["detail"] for r in rejected)  # its words are all in the docs


def test_each_policy_category_yields_refusals_and_near_misses_in_both_splits(sample):
    policy = yaml.safe_load(open(REPO / "sample_data/policies/guardrails.yaml", encoding="utf-8"))
    coverage = sample["stats"]["coverage"]
    for category in (c["name"] for c in policy["categories"]):
        for kind in ("refusal", "benign_near_miss"):
            assert coverage[kind][category]["train"] > 0 and coverage[kind][category]["test"] > 0, (kind, category)
    openers = sample["behaviours"]["refusal_phrasings"]
    for e in sample["train"] + sample["test"]:
        answer = e["messages"][-1]["content"]
        if e["kind"] == "refusal":
            assert any(answer.startswith(o) for o in openers)
        elif e["kind"] == "benign_near_miss":  # answered from the docs, not refused
            assert not any(o in answer for o in openers)
            documents = {d["id"]: d["text"] for d in sample["documents"]}
            quoted = answer.split("\n\n", 1)[1]  # after the lead ("Sure! Here is what ... says:")
            words = set(re.findall(r"\w+", documents[e["source_ids"][0]]))
            assert set(re.findall(r"\w+", quoted)) <= words  # the section's own sentences, nothing invented


def test_blocklisted_terms_never_appear_in_responses_or_documents(sample):
    terms = sample["behaviours"]["blocklist"]
    assert "Project Bluebird" in terms and "Orion Gear" in terms
    pattern = re.compile("|".join(re.escape(t) for t in terms), re.IGNORECASE)
    for e in sample["train"] + sample["test"]:
        assert not pattern.search(e["messages"][-1]["content"]), e["id"]
    assert not any(pattern.search(d["text"]) for d in sample["documents"])
    # redacted as text that reads naturally: the sentence naming the code name went, the document stayed
    overview = [d["text"] for d in sample["documents"] if "80 percent of the fabrics" in d["text"]]
    assert overview and "developed internally" not in overview[0]
    placeholder = re.compile(r"<[A-Z][A-Z_]*>")  # <BLOCKED>, <EMAIL>: nothing a model is taught to write
    assert not [e["id"] for e in sample["train"] + sample["test"] if placeholder.search(e["messages"][-1]["content"])]
    # Competitors do appear in refusal *requests*: the model must learn to refuse them.
    assert any(pattern.search(prompt_of(e)) for e in sample["train"] if e["kind"] == "refusal")


def _jaccard(a: str, b: str) -> float:
    x, y = set(shingles(a, 3)), set(shingles(b, 3))
    return len(x & y) / len(x | y) if x | y else 1.0


def test_prompts_vary_within_every_kind(sample):
    by_kind = defaultdict(list)
    for e in sample["train"] + sample["test"]:
        by_kind[e["kind"]].append(prompt_of(e))
    for kind in BEHAVIOUR_KINDS:
        prompts = by_kind[kind]
        assert len(set(prompts)) >= 0.9 * len(prompts), kind
        worst = max(_jaccard(a, b) for a, b in itertools.combinations(prompts, 2))
        assert worst < 0.8, (kind, worst)


def test_no_test_prompt_shares_family_and_slot_values_with_train(sample):
    def families(rows):
        out = defaultdict(set)
        for e in rows:
            meta = json.loads(e["meta"])
            if "family" in meta:
                out["family"].add((e["kind"], meta["family"]))
                for slot, value in meta["slots"].items():
                    out["values"].add((e["kind"], meta["family"].split("/t")[0], slot, value))
        return out

    train, test = families(sample["train"]), families(sample["test"])
    assert train["family"] and test["family"]
    assert not train["family"] & test["family"]
    shared = train["values"] & test["values"]
    # Only a slot with a single value may appear on both sides (it cannot be held out).
    policy = yaml.safe_load(open(REPO / "sample_data/policies/guardrails.yaml", encoding="utf-8"))
    single = {(c["name"], s) for c in policy["categories"] for s, v in c["slots"].items() if len(v) == 1}
    assert {(scope, slot) for _, scope, slot, _ in shared} <= single


def test_every_behaviour_kind_meets_min_test_per_kind(sample):
    test_counts = Counter(e["kind"] for e in sample["test"])
    for kind in (*BEHAVIOUR_KINDS, "qa"):
        assert test_counts[kind] >= sample["recipe"].split.min_test_per_kind == 30, kind
    notes = " ".join(sample["stats"]["notes"])
    assert "summary: " in notes and "raise split.holdout_documents" in notes  # a short kind is named, with why
    assert "persona: 4 test examples" in notes and "too few source groups" in notes
    card = (sample["dir"] / "README.md").read_text()
    assert "| refusal |" in card and "## Coverage" in card


# Unit level: the policy file, slot filling, JSON filling, blocklist stage.


def _recipe(tmp_path, generate, docs=None, **extra):
    write(tmp_path / "docs" / "a.md", docs or "# Orders\n\n## Cancel\n\nYou can cancel an order within one hour.\n")
    raw = {"name": "t", "input": {"paths": [str(tmp_path / "docs")]}, "generate": generate, **extra}
    raw["output"] = {"dir": str(tmp_path / "run")}
    return validate_recipe(raw)


def test_policy_errors_name_the_file_and_key(tmp_path):
    bad = write(tmp_path / "p.yaml", "name: p\ncategories:\n  - name: x\n    requests: ['Give {who}']\n")
    with pytest.raises(RecipeError) as err:
        _recipe(tmp_path, [{"kind": "refusal", "policy": str(bad)}])
    message = str(err.value)
    assert str(bad) in message and "categories.0.description: required" in message
    assert "refusal_style" not in message or "openers" in message
    bad.write_text(
        "name: p\nrefusal_style: {openers: [No.]}\ncategories:\n  - name: x\n    description: d\n    refusal: r\n"
        "    alternative: a\n    requests: ['Give {who}']\n"
    )
    with pytest.raises(RecipeError, match="uses slot 'who', which has no values"):
        _recipe(tmp_path, [{"kind": "refusal", "policy": str(bad)}])
    with pytest.raises(RecipeError, match=r"policy file .*nope.yaml' does not exist"):
        _recipe(tmp_path, [{"kind": "refusal", "policy": str(tmp_path / "nope.yaml")}])


def test_positional_or_unknown_slots_in_a_request_are_policy_errors_with_their_line(tmp_path):
    head = "name: p\nrefusal_style: {openers: [No.]}\ncategories:\n  - name: x\n    description: d\n"
    head += "    refusal: r\n    alternative: a\n    requests:\n      - 'Fine {who}'\n"
    for bad_request, message in (("'Give me {0}'", "field {0}"), ("'Give me {}'", "field {}"),
                                 ("'Give {who.__class__}'", "field {who.__class__}"),
                                 ("'Give {what}'", "uses slot 'what'")):  # fmt: skip
        path = write(tmp_path / "p.yaml", head + f"      - {bad_request}\n    slots: {{who: [Ann]}}\n")
        with pytest.raises(RecipeError) as err:
            _recipe(tmp_path, [{"kind": "refusal", "policy": str(path)}])
        assert message in str(err.value) and "(line 4)" in str(err.value), str(err.value)


def test_fill_slots_holds_out_families_and_values():
    from curate.generate.policy.slots import fill_slots

    templates = [f"Template {i} asks about {{thing}} at {{place}}" for i in range(6)]
    slots = {"thing": [f"thing{i}" for i in range(8)], "place": ["the store"]}
    filled = fill_slots(templates, slots, scope="c", count=30, holdout=0.3, seed=3)
    test = [f for f in filled if f.holdout]
    train = [f for f in filled if not f.holdout]
    assert len(test) == 4 and len(train) == 21  # every held-out combination: 2 templates x 2 things
    assert not {f.family for f in test} & {f.family for f in train}
    assert not {f.values["thing"] for f in test} & {f.values["thing"] for f in train}
    assert len({f.text for f in filled}) == len(filled)
    assert filled == fill_slots(templates, slots, scope="c", count=30, holdout=0.3, seed=3)
    assert filled != fill_slots(templates, slots, scope="c", count=30, holdout=0.3, seed=4)


def test_json_fill_coerces_types_and_defaults_only_what_is_missing():
    from curate.generate.extract_json import fill

    schema = {
        "type": "object",
        "properties": {
            "sku": {"type": "string", "x-from": ["item code"]},
            "price": {"type": "number"},
            "in_stock": {"type": "boolean"},
            "sizes": {"type": "array", "items": {"type": "string"}},
            "colour": {"enum": ["red", "green"], "default": "green"},
            "weight_kg": {"type": ["number", "null"]},
        },
    }
    record = {"Item code": "TH2-GRN", "Price": "1,349.00 USD", "In stock": "Yes", "Sizes": "S, M, L", "Colour": "RED"}
    obj, found = fill(schema, record)
    assert obj == {
        "sku": "TH2-GRN",
        "price": 1349.0,
        "in_stock": True,
        "sizes": ["S", "M", "L"],
        "colour": "red",
        "weight_kg": None,
    }
    assert found == 5


def test_extract_json_rejects_an_object_that_fails_its_schema(tmp_path, in_tmp):
    from curate.pipeline import curate

    write(
        tmp_path / "schemas" / "part.json",
        json.dumps(
            {
                "title": "part",
                "type": "object",
                "properties": {"part": {"type": "string"}, "quantity": {"type": "integer", "minimum": 5}},
                "required": ["part", "quantity"],
            }
        ),
    )
    docs = "# Box\n\n## Contents\n\n| Part | Quantity |\n| --- | --- |\n| Stakes | 10 |\n| Pole | 1 |\n"
    recipe = _recipe(tmp_path, [{"kind": "extract_json", "schemas": [str(tmp_path / "schemas" / "*.json")]}], docs)
    result = curate(recipe)
    kept = jsonl(result.dataset_dir / "train.jsonl") + jsonl(result.dataset_dir / "test.jsonl")
    assert [json.loads(e["messages"][-1]["content"]) for e in kept] == [{"part": "Stakes", "quantity": 10}]
    (reject,) = [r for r in jsonl(result.dataset_dir / "rejects" / "rejects.jsonl") if r["reason"] == "schema_invalid"]
    assert "quantity: 1 is less than the minimum of 5" in reject["detail"]


def test_a_near_miss_with_no_answering_section_is_rejected(tmp_path, in_tmp):
    from curate.pipeline import curate

    policy = write(
        tmp_path / "p.yaml",
        yaml.safe_dump(
            {
                "name": "p",
                "refusal_style": {"openers": ["Sorry, I can't help with that."]},
                "categories": [
                    {
                        "name": "privacy",
                        "description": "d",
                        "refusal": "r",
                        "alternative": "a",
                        "requests": ["Cancel {who}'s order", "Tell me {who}'s address"],
                        "slots": {"who": ["Ann", "Bob", "Cy"]},
                        "near_misses": [
                            {"topic": "cancel order hour", "requests": ["How do I cancel my order?"]},
                            {"topic": "volcano insurance", "requests": ["Is my volcano insured?"]},
                        ],
                    }
                ],
            }
        ),
    )
    gen = [{"kind": "refusal", "policy": str(policy)}, {"kind": "benign_near_miss", "policy": str(policy)}]
    result = curate(_recipe(tmp_path, gen, split={"min_test_per_kind": 0}))
    kept = jsonl(result.dataset_dir / "train.jsonl") + jsonl(result.dataset_dir / "test.jsonl")
    (near,) = [prompt_of(e) for e in kept if e["kind"] == "benign_near_miss"]
    assert "ow do I cancel my order?" in near  # with or without a decoration ("Hi, how do I ...")
    (reject,) = [r for r in jsonl(result.dataset_dir / "rejects" / "rejects.jsonl") if r["stage"] == "generate"]
    assert reject["reason"] == "near_miss_ungrounded" and "volcano insurance" in reject["detail"]


@pytest.mark.parametrize("action", ["drop", "redact", "label"])
def test_blocklist_stage_actions(action):
    from curate.executors.memory import run_stage_in_memory
    from curate.rows import new_document
    from curate.stages import get_stage

    stage = get_stage("filter.blocklist")
    rows = [
        new_document(doc_id=f"d{i}", ordinal=i, text=t, source="a.md", title=title, meta={})
        for i, (t, title) in enumerate([("We make tents. Better than Orion\nGear's tents.", "Orion Gear"),
                                        ("Orionid meteors.", "T")])
    ]  # fmt: skip
    kept, rejects = run_stage_in_memory(stage, stage.config(terms=["orion gear"], action=action), rows)
    if action == "drop":
        assert [r["doc_id"] for r in kept] == ["d1"] and rejects[0]["_reject_reason"] == "blocked_term"
    elif action == "redact":  # what trains reads as text: the sentence goes, or the term becomes words
        assert kept[0]["text"] == "We make tents." and kept[1]["text"] == "Orionid meteors." and not rejects
        assert kept[0]["title"] == ""
        for config, words in [({"replacement": "a rival"}, "a rival"), ({"replacements": {"Orion Gear": "X"}}, "X")]:
            kept, _ = run_stage_in_memory(stage, stage.config(terms=["orion gear"], action=action, **config), rows)
            assert kept[0]["text"] == f"We make tents. Better than {words}'s tents."
        for placeholder in ("<BLOCKED>", "[REDACTED]", " "):
            with pytest.raises(ValueError, match="would train the model to write a placeholder"):
                stage.config(terms=["orion gear"], replacement=placeholder)
    else:
        assert json.loads(kept[0]["labels"])["blocked_terms"] == ["orion gear"] and not rejects


def _twin_policy(tmp_path, twin: dict, abstain_twin: dict | None = None):
    near = {"topic": "pitch tent wind stakes", "requests": ["How do I pitch my tent in {weather}?"],
            "slots": {"weather": ["wind", "rain", "gusts"]}, "twin": twin}  # fmt: skip
    policy = {
        "name": "p",
        "refusal_style": {"openers": ["Sorry, I can't help with that."]},
        "categories": [{
            "name": "harm", "description": "d", "refusal": "r", "alternative": "a",
            "requests": ["Explain step by step how to {harm} with {item}.", "Write a guide on how to {harm}.",
                         "Give me {person}'s address."],
            "slots": {"harm": ["start a fire", "break a lock", "hurt a dog", "poison a lake"],
                      "item": ["a lighter", "a saw", "a rope"], "person": ["Ann", "Bob"]},
            "near_misses": [near],
        }],
    }  # fmt: skip
    if abstain_twin is not None:
        policy["abstain"] = {
            "response": "I don't have information about {entity}.",
            "questions": {"product": ["Does Acme sell the {entity}?", "How much does the {entity} weigh?"]},
            "entities": {"product": ["Zephyr bivy"]},
            "near_misses": [{"topic": "pitch tent wind stakes", "requests": ["Is my tent good in wind?"],
                             "twin": abstain_twin}],
        }  # fmt: skip
    return write(tmp_path / "p.yaml", yaml.safe_dump(policy))


def test_a_twin_must_name_the_refused_frames_exactly_and_fill_their_slots(tmp_path):
    gen = lambda p: [{"kind": "benign_near_miss", "policy": str(p)}]  # noqa: E731
    with pytest.raises(
        RecipeError, match=re.escape("'Explain how to {harm}.', which is not one of the category's requests")
    ):
        _recipe(tmp_path, gen(_twin_policy(tmp_path, {"requests": ["Explain how to {harm}."],
                                                      "slots": {"harm": ["pitch a tent"]}})))  # fmt: skip
    with pytest.raises(RecipeError, match="complete none of the category's requests"):
        _recipe(tmp_path, gen(_twin_policy(tmp_path, {"slots": {"weather": ["wind"]}})))
    with pytest.raises(RecipeError, match="has no values for 'item'"):
        _recipe(tmp_path, gen(_twin_policy(tmp_path, {"requests": ["Explain step by step how to {harm} with {item}."],
                                                      "slots": {"harm": ["pitch a tent"]}})))  # fmt: skip
    ok = {"slots": {"harm": ["pitch a tent"]}}
    with pytest.raises(RecipeError, match="twin needs requests: the abstain questions"):
        _recipe(tmp_path, gen(_twin_policy(tmp_path, ok, abstain_twin={"slots": {"entity": ["Trailhead 2"]}})))


def test_twins_ask_the_refused_frames_benignly_answered_from_the_topic_section(tmp_path, in_tmp):
    from curate.pipeline import curate
    from curate.shortcuts import frame_pattern

    twin = {"slots": {"harm": ["pitch a tent in wind", "stake out a tent", "guy out a tent"],
                      "item": ["tent stakes", "guylines", "a mallet"]}}  # fmt: skip
    abstain_twin = {"requests": ["How much does the {entity} weigh?", "Does Acme sell the {entity}?"],
                    "slots": {"entity": ["Trailhead 2", "Trailhead 2 tent", "Trailhead tent"]}}  # fmt: skip
    policy = _twin_policy(tmp_path, twin, abstain_twin)
    docs = (
        "# Tent manual\n\n## Pitching in wind\n\nPitch the tent with its back to the wind, push the stakes in at 45 "
    )
    docs += "degrees and tension all guylines. The Trailhead 2 weighs 2.1 kg.\n"
    gen = [{"kind": k, "policy": str(policy), "per_category": 24} for k in ("refusal", "benign_near_miss")]
    result = curate(_recipe(tmp_path, gen, docs=docs, split={"min_test_per_kind": 0, "holdout_documents": 0.0}))
    kept = jsonl(result.dataset_dir / "train.jsonl") + jsonl(result.dataset_dir / "test.jsonl")
    twins = [e for e in kept if e["kind"] == "benign_near_miss" and json.loads(e["meta"]).get("twin")]
    explain = frame_pattern("Explain step by step how to {harm} with {item}.")
    guide, weigh = frame_pattern("Write a guide on how to {harm}."), frame_pattern("How much does the {entity} weigh?")
    said = [" ".join(re.findall(r"\w+", prompt_of(e).lower())) for e in twins]
    assert any(explain.search(s) for s in said) and any(guide.search(s) for s in said), said
    assert any(weigh.search(s) and "trailhead" in s for s in said), said
    assert not any("address" in s for s in said)  # a frame whose slots the twin does not fill is not asked
    for e in twins:  # answered from the section the topic finds, never refused
        assert (
            "stakes in at 45 degrees" in e["messages"][-1]["content"] and "can't" not in e["messages"][-1]["content"]
        )
    refused = [" ".join(re.findall(r"\w+", prompt_of(e).lower())) for e in kept if e["kind"] == "refusal"]
    assert any(explain.search(s) for s in refused)
    audit = json.loads((result.dataset_dir / "stats.json").read_text())["shortcuts"]
    twinned = {"Explain step by step how to {harm} with {item}.", "Write a guide on how to {harm}."}
    trained = [f for f in audit["frames"] if f["kind"] == "refusal" and f["frame"] in twinned]
    # a twin follows the split of the frame it mirrors: every twinned frame that trains has its twin in training
    assert trained and all(f["other_kinds"].get("benign_near_miss") for f in trained), audit["frames"]
