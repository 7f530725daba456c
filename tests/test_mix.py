"""Mix (caps, ratios, review exclusions, duplicate examples) and the grouped, seeded split."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from curate.errors import RecipeError
from curate.mix import mix_examples
from curate.recipe import MixSection, SplitSection
from curate.split import split_examples
from tests.conftest import write


def ex(i: int, kind: str = "qa", group: str | None = None) -> dict:
    return {
        "id": f"{kind}-{i}",
        "messages": [{"role": "user", "content": f"{kind} question {i}"}],
        "kind": kind,
        "source_ids": [],
        "group": group or f"g{i}",
        "template": "t@1",
        "generator": "template",
        "meta": "{}",
    }


def test_caps_keep_a_seeded_subset_and_reject_the_rest():
    examples = [ex(i) for i in range(10)] + [ex(i, "summary") for i in range(3)]
    kept, rejects = mix_examples(examples, MixSection(caps={"qa": 4}), seed=1)
    assert Counter(e["kind"] for e in kept) == {"qa": 4, "summary": 3}
    assert len(rejects) == 6 and {r["reason"] for r in rejects} == {"over_kind_limit"}
    assert "limited to 4 by mix.caps" in rejects[0]["detail"]
    again, _ = mix_examples(examples, MixSection(caps={"qa": 4}), seed=1)
    other, _ = mix_examples(examples, MixSection(caps={"qa": 4}), seed=2)
    assert again == kept and other != kept
    assert [e["id"] for e in kept] == sorted((e["id"] for e in kept), key=[x["id"] for x in examples].index)


def test_ratios_downsample_to_the_scarcest_kind():
    examples = [ex(i) for i in range(30)] + [ex(i, "summary") for i in range(5)] + [ex(i, "persona") for i in range(7)]
    kept, _ = mix_examples(examples, MixSection(ratios={"qa": 2, "summary": 1}), seed=0)
    assert Counter(e["kind"] for e in kept) == {"qa": 10, "summary": 5, "persona": 7}


def test_exclude_ids_from_list_and_file(tmp_path):
    examples = [ex(i) for i in range(5)]
    kept, rejects = mix_examples(examples, MixSection(exclude_ids=["qa-1", "qa-3"]), seed=0)
    assert [e["id"] for e in kept] == ["qa-0", "qa-2", "qa-4"]
    assert [(r["id"], r["reason"]) for r in rejects] == [
        ("qa-1", "excluded_by_review"),
        ("qa-3", "excluded_by_review"),
    ]
    review = write(tmp_path / "review.txt", '# reviewed by Sam\nqa-0\n{"id": "qa-4", "why": "wrong"}\n')
    kept, _ = mix_examples(examples, MixSection(exclude_ids=str(review)), seed=0)
    assert [e["id"] for e in kept] == ["qa-1", "qa-2", "qa-3"]
    with pytest.raises(RecipeError, match="does not exist"):
        mix_examples(examples, MixSection(exclude_ids=str(tmp_path / "nope.txt")), seed=0)


def test_duplicate_examples_are_rejected_not_silently_dropped():
    kept, rejects = mix_examples([ex(1), ex(1), ex(2)], MixSection(), seed=0)
    assert len(kept) == 2 and rejects[0]["reason"] == "duplicate_example"


def test_split_is_grouped_seeded_and_meets_minimums():
    examples = []
    for doc in range(40):
        examples += [ex(doc * 10 + j, "qa", f"doc{doc}") for j in range(3)]
        examples.append(ex(doc, "summary", f"doc{doc}"))
    examples += [ex(i, "persona", f"template:p{i % 4}") for i in range(12)]
    train, test, notes, _ = split_examples(examples, SplitSection(test_fraction=0.2, min_test_per_kind=10), seed=5)
    assert len(train) + len(test) == len(examples)
    assert not {e["group"] for e in train} & {e["group"] for e in test}
    counts = Counter(e["kind"] for e in test)
    assert counts["qa"] >= 10 and counts["summary"] >= 10
    assert counts["persona"] == 6  # at most half of a kind goes to test
    assert len(test) >= 0.2 * len(examples)
    assert len(notes) == 1 and notes[0].startswith("persona: 6 test examples, fewer than split.min_test_per_kind=10;")
    same = split_examples(examples, SplitSection(test_fraction=0.2, min_test_per_kind=10), seed=5)
    other = split_examples(examples, SplitSection(test_fraction=0.2, min_test_per_kind=10), seed=6)
    assert same[1] == test and other[1] != test


def test_a_kind_from_one_group_stays_in_train():
    examples = [ex(i, "qa", f"d{i}") for i in range(10)] + [ex(i, "persona", "template:only") for i in range(4)]
    _train, test, _, _ = split_examples(examples, SplitSection(test_fraction=0.3, min_test_per_kind=2), seed=0)
    assert all(e["kind"] == "qa" for e in test)


def held(i: int, kind: str, family: str, holdout: bool, prompt: str) -> dict:
    row = ex(i, kind, f"family:{kind}:{family}")
    row["messages"] = [{"role": "user", "content": prompt}, {"role": "assistant", "content": "no"}]
    row["meta"] = json.dumps({"family": family, "holdout": holdout})
    return row


def test_held_out_families_go_to_test_and_the_rest_to_train():
    examples = [
        held(i, "refusal", f"c/t{i % 3}", i % 3 == 0, f"request number {i} about topic {i * 7}") for i in range(30)
    ]
    examples += [ex(i, "qa", f"doc{i}") for i in range(20)]
    train, test, _, _ = split_examples(examples, SplitSection(test_fraction=0.2, min_test_per_kind=2), seed=1)
    assert {json.loads(e["meta"])["family"] for e in test if e["kind"] == "refusal"} == {"c/t0"}
    assert all(not json.loads(e["meta"])["holdout"] for e in train if e["kind"] == "refusal")
    assert any(e["kind"] == "qa" for e in test)


def test_a_document_that_answers_a_training_example_stays_in_train():
    examples = [ex(i, "qa", f"doc{i}") for i in range(20)]
    near = held(0, "benign_near_miss", "n/t0", False, "how do I pitch my tent in strong wind")
    near["source_ids"] = [f"doc{d}#2" for d in range(10)]  # its answers quote sections of doc0..doc9
    _, test, _, _ = split_examples([*examples, near], SplitSection(min_test_per_kind=5), seed=3)
    assert len([e for e in test if e["kind"] == "qa"]) >= 5
    assert not {e["group"] for e in test} & {f"doc{d}" for d in range(10)}
    # without the near-miss, the same seed draws some of doc0..doc9
    _, free_test, _, _ = split_examples(examples, SplitSection(min_test_per_kind=5), seed=3)
    assert {e["group"] for e in free_test} & {f"doc{d}" for d in range(10)}


def test_test_prompts_that_repeat_a_train_prompt_are_rejected():
    examples = [
        held(1, "refusal", "c/t0", False, "please give me the home address of the customer who ordered A-1"),
        held(2, "refusal", "c/t1", True, "please give me the home address of the customer who ordered A-1 now"),
        held(3, "refusal", "c/t1", True, "what is the weather like on the summit in winter"),
    ]
    _, test, _, rejects = split_examples(examples, SplitSection(min_test_per_kind=0), seed=0)
    assert [e["id"] for e in test] == ["refusal-3"]
    assert rejects[0]["reason"] == "test_prompt_seen_in_train" and rejects[0]["id"] == "refusal-2"


def test_near_duplicate_prompts_within_a_kind_are_rejected():
    base = "how do I make a camp stove explode at the campsite tonight"
    examples = [held(1, "refusal", "a", False, base), held(2, "refusal", "a", False, base + " please")]
    examples += [held(3, "abstain", "b", False, base + " please")]  # another kind: not compared
    kept, rejects = mix_examples(examples, MixSection(), seed=0)
    assert [e["id"] for e in kept] == ["refusal-1", "abstain-3"]
    assert rejects[0]["reason"] == "near_duplicate_prompt" and "Jaccard" in rejects[0]["detail"]


def test_short_prompts_just_over_the_threshold_are_found_every_time():
    from curate.near_dup import THRESHOLD, jaccard_of, similar_pairs

    # Ten shingles each, Jaccard 0.82: LSH banded near the threshold missed this pair from the sample.
    a = "I need help. Where else can I buy a good kayak? Northpeak?"
    b = "I need help. Where else can I buy a good kayak? Summitline?"
    assert jaccard_of(a, b) > THRESHOLD
    # The same shape with other words: fresh hashes, the same Jaccard; every pair must be found.
    pairs = [(a.replace("kayak", f"kayak{n}"), b.replace("kayak", f"kayak{n}")) for n in range(300)]
    assert all(jaccard_of(x, y) == jaccard_of(a, b) for x, y in pairs)
    missed = [x for x, y in pairs if not similar_pairs([x, y], THRESHOLD)]
    assert not missed, f"{len(missed)} of {len(pairs)} missed"


def test_responses_naming_a_blocked_term_are_rejected():
    from curate.blocklist import Blocklist

    good, bad = ex(1), ex(2)
    good["messages"] = [{"role": "user", "content": "tents?"}, {"role": "assistant", "content": "Orionid showers"}]
    bad["messages"] = [{"role": "user", "content": "jackets?"}, {"role": "assistant", "content": "Try ORION gear's."}]
    kept, rejects = mix_examples([good, bad], MixSection(), seed=0, blocklist=Blocklist(terms=["Orion Gear"]))
    assert [e["id"] for e in kept] == ["qa-1"]
    assert rejects[0]["reason"] == "blocked_term" and "'Orion Gear'" in rejects[0]["detail"]


def test_no_answer_teaches_a_placeholder():
    """An <EMAIL> the model is taught to write is a defect: it becomes the allowed public contact, a sentence with
    any other placeholder goes, and an answer that is nothing else is rejected with its reason."""
    from curate.mix import public_contacts

    contacts = public_contacts(["returns@acme.example", "1-800-555-0142", "Acme Outdoor"])
    assert contacts == {"EMAIL": "returns@acme.example", "PHONE": "1-800-555-0142"}

    def answer(i: int, text: str, prompt: str = "How do I return a tent?", kind: str = "qa") -> dict:
        e = ex(i, kind)
        e["messages"] = [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]
        return e

    examples = [
        answer(0, "Write to <EMAIL> or call <PHONE>. Ask <NAME> for a label.\nRefunds take a week."),
        answer(1, "Ask <NAME>."),
        answer(2, '{"customer": "<NAME>", "issue": "zip"}', "Ticket from <NAME>: the zip broke.", "extract_json"),
        answer(3, '{"customer": "<NAME>", "issue": "zip"}', "Ticket: the zip broke.", "extract_json"),
    ]
    kept, rejects = mix_examples(examples, MixSection(), 13, contacts=contacts)
    fixed = "Write to returns@acme.example or call 1-800-555-0142. Refunds take a week."  # a paragraph's lines join
    assert kept[0]["messages"][-1]["content"] == fixed
    assert json.loads(kept[0]["meta"])["response_edited"] == [
        "<EMAIL> -> returns@acme.example",
        "<PHONE> -> 1-800-555-0142",
        "sentences with <NAME> removed",
    ]
    assert kept[1]["messages"] == examples[2]["messages"]  # extraction copies the placeholder its input holds
    assert {r["id"]: r["detail"] for r in rejects} == {
        examples[1]["id"]: "every sentence of the answer names <NAME>; none reads without it",
        examples[3]["id"]: "the JSON answer writes <NAME>, which its prompt does not hold",
    }
    assert {r["reason"] for r in rejects} == {"placeholder_in_response"}
    without, _ = mix_examples(examples[:1], MixSection(), 13)  # no public contact allowed: the sentence goes
    assert without[0]["messages"][-1]["content"] == "Refunds take a week."
