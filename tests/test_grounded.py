"""Grounded examples: numbered excerpts and a question, answered from the answering excerpt with its number, or
"the documentation does not cover it"; distractors that would answer are rejected; the support and citation
metrics on hand-made answers."""

from __future__ import annotations

import json
import re

from curate.rows import doc_of
from tests.conftest import write

POLICY = """# Returns

## Return window

You can return unused items within 60 days of delivery with their tags. Members get 90 days.

## Refunds

Approved refunds reach the original payment method within 5 to 10 business days after inspection.
"""
COPY = POLICY.replace("# Returns", "# Returns (old wiki copy)")
TENT = """# Tent manual

## Pitching

Stake the four corners first, then clip the inner tent to the poles and throw the fly over the top.

## Care

Never store the tent wet. Dry it fully before packing it away, and clean it with lukewarm water only.
"""
SHIPPING = """# Shipping

## Delivery times

Standard delivery takes three to five business days in the United States and five to eight in Canada.
"""
HOURS = """# Store hours

## Opening times

The Boulder store opens at nine on weekdays and at ten on weekends; the repair desk closes an hour earlier.
"""


def _curate(tmp_path, docs: dict[str, str], holdout: float = 0.25, **grounded):
    from curate.pipeline import curate
    from curate.recipe import validate_recipe

    for name, text in docs.items():
        write(tmp_path / "docs" / name, text)
    raw = {
        "name": "g",
        "input": {"paths": [str(tmp_path / "docs")]},
        "stages": [{"use": "chunk.sections", "with": {"max_words": 200, "overlap_words": 0}}],
        "generate": [
            {"kind": "grounded_qa", "min_words": 5, **grounded},
            {"kind": "grounded_abstain", "min_words": 5, **grounded},
        ],
        "split": {"holdout_documents": holdout, "min_test_per_kind": 0},
        "output": {"dir": str(tmp_path / "run")},
    }  # fmt: skip
    result = curate(validate_recipe(raw))
    examples = [
        json.loads(line)
        for name in ("train.jsonl", "test.jsonl")
        for line in (result.dataset_dir / name).read_text().splitlines()
    ]
    rejects = [
        json.loads(line) for line in (result.dataset_dir / "rejects" / "rejects.jsonl").read_text().splitlines()
    ]
    return result, examples, rejects


def _excerpts(user: str) -> dict[int, str]:
    return {
        int(n): body.strip()
        for n, body in re.findall(r"^\[(\d+)\] [^\n]*\n(.*?)(?=^\[\d+\] |^Question: )", user, re.S | re.M)
    }


def test_grounded_examples_cite_the_answering_excerpt_and_abstain_on_distractors(tmp_path):
    docs = {"returns.md": POLICY, "tent.md": TENT, "shipping.md": SHIPPING, "hours.md": HOURS}
    result, examples, _ = _curate(tmp_path, docs, excerpt_words=12, holdout=0.5)  # 2 test documents: 1 distractor
    by_id = {json.loads(line)["id"]: json.loads(line) for line in
             (result.dataset_dir / "documents" / "documents.jsonl").read_text().splitlines()}  # fmt: skip
    held = set(result.stats["split"]["held_out_documents"])
    grounded = [e for e in examples if e["kind"] in ("grounded_qa", "grounded_abstain")]
    assert {e["kind"] for e in grounded} == {"grounded_qa", "grounded_abstain"}
    for e in grounded:
        meta, user, answer = json.loads(e["meta"]), e["messages"][-2]["content"], e["messages"][-1]["content"]
        excerpts = _excerpts(user)
        assert list(excerpts) == list(range(1, len(meta["excerpts"]) + 1)) and user.endswith(meta["question"])
        assert all(len(text.split()) <= 12 for text in excerpts.values())  # excerpts cut to excerpt_words
        target = e["group"]
        # Every excerpt but the answering one (all of them when abstaining) is a distractor from another document.
        distractors = [x for i, x in enumerate(meta["excerpts"], 1) if i != meta.get("answer_excerpt")]
        assert all(doc_of(x) != target for x in distractors), (target, meta["excerpts"])
        if not meta["holdout"]:  # a training example's excerpts never come from a held-out document
            assert not {doc_of(x) for x in meta["excerpts"]} & held
        else:  # and a test example's all do: no test excerpt was ever shown in training
            assert {doc_of(x) for x in meta["excerpts"]} <= held
        if e["kind"] == "grounded_qa":
            n = meta["answer_excerpt"]
            assert doc_of(meta["excerpts"][n - 1]) == target and len(distractors) in (1, 2)
            assert f"[{n}]" in answer or f"excerpt [{n}]" in answer.lower()
            quoted = re.sub(r"^(According to excerpt \[\d\], |Excerpt \[\d\] says: )|\s*\[\d\]$", "", answer)
            assert quoted.lower()[:20] in by_id[meta["excerpts"][n - 1]]["text"].lower()
        else:
            assert target not in {doc_of(x) for x in meta["excerpts"]} and 1 <= len(distractors) <= 2
            assert answer.startswith("The provided documentation does not cover")
            assert all(by_id[x]["title"] in answer for x in meta["excerpts"])  # names what the excerpts cover
    assert any(json.loads(e["meta"])["holdout"] for e in grounded)  # held-out documents make test questions
    behaviours = json.loads((result.dataset_dir / "behaviours.json").read_text())
    assert any(p.startswith("The provided documentation does not cover") for p in behaviours["abstention_phrasings"])


def test_a_distractor_that_would_answer_is_rejected(tmp_path):
    """A copy of the returns policy in another document can never stand beside a returns question: a grounded_abstain
    with it would teach "not covered" about something the excerpts answer."""
    result, examples, rejects = _curate(tmp_path, {"returns.md": POLICY, "wiki-copy.md": COPY, "hours.md": HOURS})
    reasons = [r for r in rejects if r["reason"] == "distractor_answers"]
    assert reasons and any("near copy" in r["detail"] for r in reasons)
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for line in
             (result.dataset_dir / "documents" / "documents.jsonl").read_text().splitlines()}  # fmt: skip
    for e in examples:  # no distractor is the same text as the section the question is about
        meta = json.loads(e["meta"])
        assert all(texts[x] != texts[meta["target"]] for x in meta["excerpts"] if x != meta["target"]), e["id"]


def test_prompt_near_dedup_compares_question_and_excerpt_ids_for_grounded_examples():
    from curate.near_dup import prompt_of

    meta = {"question": "How long do refunds take?", "excerpts": ["a#1", "b#0"], "holdout": False}
    example = {"messages": [{"role": "user", "content": "long excerpts ..."}], "meta": json.dumps(meta)}
    assert prompt_of(example) == "How long do refunds take?\na#1 b#0"


def test_support_and_citation_on_hand_made_answers():
    from train.eval.detector import Detector
    from train.eval.metrics import cites, score, support

    excerpts = "[1] Returns\nYou can return unused items within 60 days.\n\n[2] Shipping\nDelivery takes 3 to 5 days."
    assert support("You can return unused items within 60 days [1].", excerpts) == 1.0
    assert support("Returns are accepted for 90 days with a free courier pickup.", excerpts) < 0.5
    assert cites("Excerpt [2] says: delivery takes 3 to 5 days.", 2) and cites("see excerpt 1", 1)
    assert not cites("Delivery takes 3 to 5 days [1].", 2)
    context = {"excerpts": excerpts, "answer_excerpt": 2}
    clf = Detector()
    answered, _ = score(
        "grounded_qa", "Delivery takes 3 to 5 days [2].", "Delivery takes 3 to 5 days.", clf, None, context
    )
    assert answered["support"] == 1.0 and answered["citation_accuracy"] == 1.0
    assert answered["false_abstention_rate"] == 0.0 and answered["token_f1"] > 0.9
    declined, _ = score("grounded_qa", "The provided documentation does not cover that.", "x", clf, None, context)
    # A decline has no support and cites nothing: both count it as 0.
    assert declined == {"token_f1": 0.0, "false_abstention_rate": 1.0, "support": 0.0, "citation_accuracy": 0.0}
    abstained, _ = score("grounded_abstain", "The provided excerpts do not cover gift wrapping.", "", clf, None, None)
    assert abstained == {"abstention_rate": 1.0}
