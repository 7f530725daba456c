"""Training on TRL's SFTTrainer with the offline tiny model: one training run shared by the session."""

from __future__ import annotations

import json

import pytest

from curate.errors import RecipeError, TrainError
from tests.conftest import require

FAST = ["sft.max_steps=12", "sft.logging_steps=2", "sft.save_steps=6", "eval_split=null"]


@pytest.fixture(scope="session")
def trained(sample_run, tmp_path_factory):
    require("trl")
    from train.sft import train_model

    result, _ = sample_run
    out = tmp_path_factory.mktemp("model")
    return train_model(result.dataset_dir, [*FAST, f"output_dir={out}"])


def test_tiny_model_trains_loss_falls_and_weights_change(trained):
    import torch
    from transformers import AutoModelForCausalLM

    curve = [p["loss"] for p in trained.summary["loss_curve"]]
    assert trained.summary["steps"] == 12 and len(curve) == 6
    assert curve[-1] < curve[0] - 0.5
    base = AutoModelForCausalLM.from_pretrained(str(trained.output_dir / "base-tiny"))
    final = AutoModelForCausalLM.from_pretrained(str(trained.final_dir))
    changed = [not torch.equal(a, b) for a, b in zip(base.parameters(), final.parameters(), strict=True)]
    assert all(changed)
    summary = json.loads((trained.output_dir / "training_summary.json").read_text())
    assert summary["tokens"] > 0 and summary["tokens_per_second"] > 0 and summary["device"] == "cpu"
    assert summary["sft"]["use_cpu"] is True and summary["sft"]["bf16"] is False
    assert summary["sft"]["gradient_checkpointing"] is False and summary["sft"]["assistant_only_loss"] is True
    logged = [json.loads(line) for line in (trained.output_dir / "loss.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [2, 4, 6, 8, 10, 12]


def test_saved_model_reloads_and_generates(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(trained.final_dir))
    model = AutoModelForCausalLM.from_pretrained(str(trained.final_dir))
    assert "{% generation %}" in tokenizer.chat_template
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Who are you?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_assistant_masks_are_exactly_the_assistant_spans(trained):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(trained.final_dir))
    messages = [
        {"role": "system", "content": "You are Ada."},
        {"role": "user", "content": "Where is my order?"},
        {"role": "assistant", "content": "It ships tomorrow."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You're welcome."},
    ]
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    ids, mask = out["input_ids"], out["assistant_masks"]
    spans, current = [], []
    for token, m in zip(ids, mask, strict=True):
        if m:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    assert [tokenizer.decode(s) for s in spans] == ["It ships tomorrow.<|im_end|>", "You're welcome.<|im_end|>"]
    untrained = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    assert "Where is my order?" in untrained and "It ships" not in untrained


def _tokenizer(trained, template=None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(trained.final_dir))
    if template is not None:
        tokenizer.chat_template = template
    return tokenizer


def test_preflight_catches_missing_markers_no_trainable_tokens_and_truncation(trained):
    from train.preflight import run_preflight

    good = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}]
    no_markers = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    with pytest.raises(TrainError, match="no \\{% generation %\\} markers"):
        run_preflight(_tokenizer(trained, no_markers), good, max_length=64)
    report = run_preflight(_tokenizer(trained), good, max_length=64)
    assert report.trainable_tokens > 0 and report.truncated == 0
    long_prompt = [{"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok"}]}]
    with pytest.raises(TrainError, match="would lose every trained token at max_length=32"):
        run_preflight(_tokenizer(trained), long_prompt, max_length=32)
    only_system = [{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]}]
    with pytest.raises(TrainError, match="0 trainable tokens"):
        run_preflight(_tokenizer(trained), only_system, max_length=64)
    stop_untrained = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['role'] == 'assistant' %}"
        "{% generation %}{{ m['content'] }}{% endgeneration %}<|im_end|>{% else %}{{ m['content'] }}<|im_end|>"
        "{% endif %}\n{% endfor %}"
    )
    with pytest.raises(TrainError, match="never learn to stop"):
        run_preflight(_tokenizer(trained, stop_untrained), good, max_length=64)


def test_bad_train_settings_fail_before_training(sample_run):
    require("trl")
    from train.sft import train_model

    result, _ = sample_run
    with pytest.raises(
        RecipeError, match=r"train\.sft\.max_step: not an SFTConfig argument .* did you mean 'max_steps'"
    ):
        train_model(result.dataset_dir, ["sft.max_step=3"])
    with pytest.raises(RecipeError, match=r"train\.lora"):
        train_model(result.dataset_dir, ["lora.r=0"])
    with pytest.raises(TrainError, match="cannot load model"):
        train_model(result.dataset_dir, ["model=/nonexistent/model"])


def test_interrupted_run_resumes_to_the_same_step_count(sample_run, tmp_path):
    require("trl")
    from train.sft import train_model

    result, _ = sample_run
    settings = [
        "sft.max_steps=8",
        "sft.save_steps=4",
        "sft.logging_steps=4",
        "eval_split=null",
        f"output_dir={tmp_path}",
    ]

    def interrupt(step, total, last):
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(result.dataset_dir, settings, on_progress=interrupt)
    assert (tmp_path / "checkpoints" / "checkpoint-4").is_dir() and not (tmp_path / "final").exists()
    resumed = train_model(result.dataset_dir, settings, resume=True)
    assert resumed.summary["resumed"] is True and resumed.summary["steps"] == 8
    assert (tmp_path / "final" / "model.safetensors").exists()


def test_lora_saves_adapter_and_merged_model_that_reload(sample_run, tmp_path):
    require("peft")
    from peft import PeftConfig
    from transformers import AutoModelForCausalLM

    from train.sft import train_model

    result, _ = sample_run
    out = train_model(
        result.dataset_dir,
        ["sft.max_steps=2", "eval_split=null", "lora.r=4", "lora.alpha=8", f"output_dir={tmp_path}"],
    )
    assert PeftConfig.from_pretrained(str(out.final_dir)).r == 4
    merged = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final-merged"))
    assert not any("lora" in name for name, _ in merged.named_parameters())
