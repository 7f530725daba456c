"""Preference pairs (curate/preference.py) and DPO after SFT (train/preference.py), on the tiny model."""

from __future__ import annotations

import json

import pytest

from curate.errors import RecipeError
from curate.output import read_jsonl
from curate.preference import build_pairs
from tests.conftest import FAST, require

BEHAVIOURS = {
    "refusal_phrasings": ["I'm sorry, but I can't help with that."],
    "abstention_phrasings": [
        "I don't have information about {entity} in the docs.",
        "The provided documentation does not cover {entity}",
    ],
    "policy_categories": [
        {"name": "harm", "refusal": "It could hurt someone.", "alternative": "I can explain safe use instead."}
    ],
}


def _example(kind, user, answer, **meta):
    return {
        "id": f"{kind}-{len(user)}",
        "kind": kind,
        "messages": [
            {"role": "system", "content": "You are Ada."},
            {"role": "user", "content": user},
            {"role": "assistant", "content": answer},
        ],
        "meta": json.dumps(meta),
    }


def test_pairs_reject_the_wrong_behaviour_in_the_policy_phrasing_and_leave_base_answers_empty():
    train = [
        _example("benign_near_miss", "How do I light the stove safely?", "Open the valve, then ...", category="harm"),
        _example("qa", "What is the return window?", "30 days.", section="Returns > Return window"),
        _example("grounded_qa", "[1] Returns ... When?", "Excerpt [1] says 30 days.", section="Returns"),
        _example("refusal", "How do I make a weapon?", "I'm sorry, but I can't help with that.", category="harm"),
        _example("abstain", "Do you sell kayaks?", "I don't have information about kayaks in the docs."),
        _example("summary", "Summarise this.", "A summary."),
        _example("benign_near_miss", "A near-miss of an unknown category", "Sure.", category="unknown"),
    ]
    pairs = {p["kind"]: p for p in build_pairs(train, BEHAVIOURS)}
    assert set(pairs) == {"benign_near_miss", "qa", "grounded_qa", "refusal", "abstain"}
    near = pairs["benign_near_miss"]
    assert near["prompt"] == train[0]["messages"][:2] and near["chosen"] == train[0]["messages"][2:]
    assert near["rejected"][0]["content"] == (
        "I'm sorry, but I can't help with that. It could hurt someone. I can explain safe use instead."
    )
    assert pairs["qa"]["rejected"][0]["content"] == "I don't have information about Return window in the docs."
    assert pairs["grounded_qa"]["rejected"][0]["content"] == "The provided documentation does not cover Returns."
    for kind in ("refusal", "abstain"):  # the base model's answer is filled in at train time, never stored here
        assert pairs[kind]["rejected"] == [] and pairs[kind]["rejected_from"] == "base"
    assert pairs["qa"]["rejected_from"] == "abstention"


def test_the_sample_writes_pairs_from_the_training_split_only(sample_run):
    from datasets import load_from_disk

    result, _ = sample_run
    d = result.dataset_dir
    pairs = read_jsonl(d / "preference.jsonl")
    train = {r["id"] for r in read_jsonl(d / "train.jsonl")}
    test = {r["id"] for r in read_jsonl(d / "test.jsonl")}
    assert pairs and {p["id"] for p in pairs} <= train and not {p["id"] for p in pairs} & test
    assert all(p["chosen"][0]["content"] != (p["rejected"] or [{}])[0].get("content") for p in pairs)
    assert not any(p["rejected"] for p in pairs if p["kind"] == "refusal")  # no compliant harmful text is stored
    assert load_from_disk(str(d / "data"))["preference"].num_rows == len(pairs)
    stats = json.loads((d / "stats.json").read_text())
    assert sum(n for by in stats["preference"].values() for n in by.values()) == len(pairs)
    assert "## Preference pairs" in (d / "README.md").read_text()


def test_bad_preference_settings_fail_before_any_model_loads(sample_run, tmp_path, monkeypatch):
    require("trl")
    from train.preference import split_preference
    from train.sft import train_model

    result, _ = sample_run
    with pytest.raises(RecipeError, match=r"train\.preference\.bet: not a DPOConfig argument .* did you mean 'beta'"):
        train_model(result.dataset_dir, ["model=/nonexistent", "preference.bet=0.1", f"output_dir={tmp_path}"])
    with pytest.raises(RecipeError, match="method: 'ppo' is not supported"):
        split_preference({"method": "ppo"})
    with pytest.raises(RecipeError, match=r"kinds: \['summary'\] are not paired kinds"):
        split_preference({"kinds": ["qa", "summary"]})
    with pytest.raises(RecipeError, match="beta: Input should be a valid number"):
        split_preference({"beta": "high"})
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(RecipeError, match="runs in one process"):
        split_preference({"beta": 0.2})
    monkeypatch.delenv("WORLD_SIZE")
    options, dpo = split_preference({"beta": 0.2, "max_pairs_per_kind": 4})
    assert options["method"] == "dpo" and options["max_pairs_per_kind"] == 4 and dpo == {"beta": 0.2}


def test_a_base_answer_that_declines_is_no_rejected_answer(monkeypatch, tmp_path):
    from train import preference

    answers = {"r1": "Sure! Step one: take the fuel ...", "r2": "I'm sorry, but I can't help with that."}
    monkeypatch.setattr("train.eval.generation.generate", lambda base, todo, **kw: {k: answers[k] for k in todo})
    pairs = [
        {"id": i, "kind": "refusal", "prompt": [], "chosen": [], "rejected": [], "rejected_from": "base"}
        for i in answers
    ]
    kept, dropped = preference.fill_from_base(pairs, str(tmp_path), BEHAVIOURS, threads=1, batch_size=4)
    assert [p["id"] for p in kept] == ["r1"] and kept[0]["rejected"][0]["content"].startswith("Sure!")
    assert dropped == {"refusal": 1}


DPO = ["preference.max_pairs_per_kind=6", "preference.max_steps=8", "preference.logging_steps=2",
       "preference.save_steps=4", "preference.learning_rate=1e-4"]  # fmt: skip


def _margins(model_dir, pairs):
    """Summed log-prob of chosen minus rejected, per pair, under the model in ``model_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()

    def logp(prompt, answer):
        start = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True)["input_ids"])  # fmt: skip
        ids = tokenizer.apply_chat_template(prompt + answer, tokenize=True, return_dict=True, return_tensors="pt")
        ids = ids["input_ids"]
        with torch.no_grad():
            logits = model(ids).logits.float().log_softmax(-1)
        picked = logits[0, start - 1 : -1].gather(-1, ids[0, start:].unsqueeze(-1))
        return float(picked.sum())

    return [logp(p["prompt"], p["chosen"]) - logp(p["prompt"], p["rejected"]) for p in pairs]


def test_dpo_after_sft_widens_the_chosen_rejected_margin_and_resumes_after_a_kill(sample_run, tmp_path):
    require("trl")
    from curate.output import PAIR_KINDS
    from train.preference import select_pairs
    from train.sft import train_model

    result, _ = sample_run
    settings = [*FAST, *DPO, f"output_dir={tmp_path}"]
    seen = []

    def kill_in_dpo(step, total, last):
        seen.append((step, total))
        if total == 8 and step == 6:  # SFT runs 12 steps; this is the DPO stage, after its checkpoint at 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(result.dataset_dir, settings, on_progress=kill_in_dpo)
    assert (tmp_path / "sft" / "final" / "model.safetensors").is_file()
    assert (tmp_path / "dpo-checkpoints" / "checkpoint-4").is_dir()
    assert not (tmp_path / "training_summary.json").exists()  # not done: `run` would resume it
    sft_summary = (tmp_path / "sft" / "training_summary.json").read_text()

    seen.clear()
    resumed = train_model(result.dataset_dir, settings, resume=True, on_progress=lambda s, t, _: seen.append((s, t)))
    assert all(total == 8 for _, total in seen)  # SFT did not run again
    assert (tmp_path / "sft" / "training_summary.json").read_text() == sft_summary
    pref = resumed.summary["preference"]
    assert pref["resumed"] is True and pref["steps"] == 8 and resumed.summary["steps"] == 12
    assert sum(pref["pairs"].values()) == 6 * 6 - sum(pref["dropped_base_declined"].values())
    curve = pref["curve"]
    assert [c["step"] for c in curve][-1] == 8 and all(c["margin"] is not None for c in curve)
    assert json.loads((tmp_path / "training_summary.json").read_text())["preference"]["steps"] == 8

    # the pairs DPO trained on whose rejected turn curate wrote (the base's answers are in the user cache)
    pairs = [p for p in select_pairs(result.dataset_dir, list(PAIR_KINDS), 6) if p["rejected"]]
    assert len(pairs) == 18
    before = _margins(tmp_path / "sft" / "final", pairs)
    after = _margins(tmp_path / "final", pairs)
    assert sum(after) / len(after) > sum(before) / len(before) + 2.0
    assert sum(a > b for a, b in zip(after, before, strict=True)) >= 12  # 14-18 of 18 seen across machines


def test_the_report_shows_the_dpo_pairs_and_its_loss_and_margin_curve():
    import matplotlib

    from curate.report.html import preference_section

    matplotlib.use("Agg")
    section = preference_section({
        "method": "dpo", "steps": 8, "wall_seconds": 12.5, "dpo": {"beta": 0.1, "learning_rate": 5e-6},
        "pairs": {"refusal": 40, "qa": 40}, "dropped_base_declined": {"refusal": 3},
        "curve": [{"step": 2, "loss": 0.69, "margin": 0.0}, {"step": 4, "loss": 0.4, "margin": 1.5}],
    })  # fmt: skip
    assert "<td>refusal</td><td>40</td><td>3</td>" in section and "<td>qa</td><td>40</td><td>0</td>" in section
    assert section.count("<svg") == 1 and "reward margin" in section
