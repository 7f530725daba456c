"""No test prompt seen in training. Each leak the evaluation issue found, planted or looked for on the sample:

- a held-out qa question wording used by a grounded kind in training (4 of 30 qa test questions stood word for
  word as training user turns);
- a grounded test prompt that shows an excerpt a training prompt shows;
- the split's leak check, which compared "question + excerpt ids" with qa user turns and so missed both.
"""

from __future__ import annotations

import json

from curate.rows import doc_of
from curate.split import _drop_seen_in_train, prompt_views


def _example(kind: str, user: str, eid: str, **meta) -> dict:
    return {"id": eid, "kind": kind, "group": eid, "source_ids": [], "meta": json.dumps(meta),
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": "a"}]}  # fmt: skip


def test_the_split_drops_a_test_question_asked_inside_a_training_grounded_prompt():
    question = "I'm hoping you can help. Can I change or cancel my order?"
    excerpts = "[1] Orders > Changes\nYou can change an order within one hour of placing it. " * 3
    train = [_example("grounded_qa", f"{excerpts}\n\nQuestion: {question}", "g1", question=question,
                      excerpts=["faq#1", "shipping#0"])]  # fmt: skip
    test = [_example("qa", question, "q1"), _example("qa", "What does the warranty cover?", "q2")]
    kept, rejects = _drop_seen_in_train(train, test)
    assert [e["id"] for e in kept] == ["q2"]
    assert rejects[0]["reason"] == "test_prompt_seen_in_train" and "train g1" in rejects[0]["detail"]


def test_the_split_drops_a_grounded_test_prompt_that_shows_a_training_excerpt():
    train = [_example("grounded_abstain", "[1] Rate limits ...\n\nQuestion: I need help with returns.", "g1",
                      question="I need help with returns.", excerpts=["api-docs#2"])]  # fmt: skip
    test = [
        _example("grounded_abstain", "[1] Rate limits ...\n\nQuestion: Tell me about sizing.", "t1",
                 question="Tell me about sizing.", excerpts=["api-docs#2"]),
        _example("grounded_abstain", "[1] Fit ...\n\nQuestion: Tell me about sizing.", "t2",
                 question="Tell me about sizing.", excerpts=["sizing#1"]),
    ]  # fmt: skip
    kept, rejects = _drop_seen_in_train(train, test)
    assert [e["id"] for e in kept] == ["t2"] and "shares excerpt api-docs#2" in rejects[0]["detail"]


def test_no_test_prompt_of_the_sample_was_seen_in_training(sample_run):
    """On the curated sample: no test user turn, nor the question inside it, is a training user turn or question;
    no held-out question wording trains in any kind; grounded test excerpts come from held-out documents only."""
    result, _ = sample_run
    read = [json.loads(line) for line in (result.dataset_dir / "train.jsonl").read_text().splitlines()]
    test = [json.loads(line) for line in (result.dataset_dir / "test.jsonl").read_text().splitlines()]
    seen = {v.strip().lower() for ex in read for v in prompt_views(ex)}
    leaked = [v for ex in test for v in prompt_views(ex) if v.strip().lower() in seen]
    assert leaked == []
    meta = [json.loads(ex["meta"]) for ex in read]

    def wordings(examples):  # the qa template a question was asked in, by qa or a grounded kind
        found = {ex["template"] for ex in examples if ex["kind"] == "qa"}
        return found | {json.loads(ex["meta"]).get("question_template") for ex in examples} - {None}

    assert wordings(read) and wordings(test) and not wordings(read) & wordings(test)
    trained_docs = {doc_of(s) for ex in read for s in ex["source_ids"]}
    trained_docs |= {doc_of(e) for m in meta for e in m.get("excerpts", [])}
    grounded_test = [ex for ex in test if ex["kind"].startswith("grounded")]
    assert grounded_test
    for ex in grounded_test:
        assert not {doc_of(e) for e in json.loads(ex["meta"])["excerpts"]} & trained_docs, ex["id"]
