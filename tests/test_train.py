"""Training on TRL's SFTTrainer with the offline tiny model: one training run shared by the session."""

from __future__ import annotations

import json

import pytest

from curate.errors import RecipeError, TrainError
from tests.conftest import require


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
    assert summary["sft"]["activation_checkpointing"] is False and summary["sft"]["assistant_only_loss"] is True
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
    # A checkpoint a kill cut short (no trainer_state.json, the Trainer's last file) is skipped, not loaded.
    (tmp_path / "checkpoints" / "checkpoint-6").mkdir()
    (tmp_path / "checkpoints" / "checkpoint-6" / "model.safetensors").write_bytes(b"half")
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


def _plain_tokenizer(tmp_path, specials=("<unk>",)):
    """A tokenizer with no chat template and no ChatML tokens, saved and loaded like any other."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        ["Hello there, how can I help you today?"] * 10, trainers.BpeTrainer(special_tokens=list(specials))
    )
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>").save_pretrained(str(tmp_path))
    return AutoTokenizer.from_pretrained(str(tmp_path))


def test_chat_template_choice_tokenizer_trl_or_bundled(tmp_path, trained):
    from importlib.resources import files

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from train.chat_template import ensure_training_template

    assert ensure_training_template(_tokenizer(trained)).source == "tokenizer"

    known = _plain_tokenizer(tmp_path / "known")
    known.chat_template = (files("trl") / "chat_templates" / "llama3.jinja").read_text()
    choice = ensure_training_template(known)
    assert choice.source == "trl" and "{% generation %}" in known.chat_template

    bare = _plain_tokenizer(tmp_path / "bare")
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(bare), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
        )
    )
    before = len(bare)
    choice = ensure_training_template(bare, model)
    assert choice.source == "bundled-chatml" and choice.added_tokens == 2 and len(bare) == before + 2
    assert model.get_input_embeddings().weight.shape[0] == len(bare)
    out = bare.apply_chat_template(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
    )  # fmt: skip
    assert (
        bare.decode([t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m])
        == "Hello<|im_end|>"
    )
    assert torch.is_tensor(model.get_input_embeddings().weight)


def test_train_cli_preflight_only_and_errors(sample_run, monkeypatch):
    require("trl")
    from click.testing import CliRunner

    from curate.cli import main

    monkeypatch.setenv("COLUMNS", "200")
    result, _ = sample_run
    runner = CliRunner()
    out = runner.invoke(main, ["train", str(result.run_dir), "--preflight-only"], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert "trainable tokens" in out.output and "truncated at max_length=640" in out.output
    assert "[[" in out.output and "<|im_end|>]]" in out.output  # the trained span is shown
    out = runner.invoke(main, ["train", str(result.run_dir), "--preflight-only", "--set", "sft.max_length=8"])
    assert out.exit_code == 7 and "would lose every trained token" in out.output
    out = runner.invoke(main, ["train", str(result.run_dir), "--set", "sft.lr=1"])
    assert out.exit_code == 2 and "train.sft.lr: not an SFTConfig argument" in out.output


def test_accelerate_configs_parse_for_accelerate(tmp_path):
    require("accelerate")
    import yaml
    from accelerate.commands.config.config_args import load_config_from_file

    from train.launch import accelerate_yaml

    for strategy, kind in (("ddp", "MULTI_GPU"), ("fsdp", "FSDP")):
        path = tmp_path / f"{strategy}.yaml"
        path.write_text(accelerate_yaml(strategy, 4))
        assert yaml.safe_load(path.read_text())["num_processes"] == 4
        config = load_config_from_file(str(path))
        assert str(config.distributed_type).endswith(kind) and config.num_processes == 4


def test_two_process_gloo_run_on_cpu(sample_run, tmp_path):
    """Two CPU processes (torch.distributed's gloo, launched by torchrun): one dataset, one model, one report."""
    import os
    import subprocess
    import sys

    result, _ = sample_run
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "curate.cli", "train", str(result.run_dir),
        "--set", "sft.max_steps=2", "--set", "eval_split=null", "--set", f"output_dir={tmp_path}",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env={**os.environ, "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "training_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert out.stdout.count("trained 2 steps") == 1  # one process reports


def test_sft_values_of_the_wrong_type_fail_before_any_model_loads(sample_run, monkeypatch):
    require("trl")
    import transformers

    from train.sft import train_model

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded before the train section was checked")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_loading)
    result, _ = sample_run
    with pytest.raises(RecipeError, match=r"train\.sft\.learning_rate: .*valid number.*got 'fast'"):
        train_model(result.dataset_dir, ["sft.learning_rate=fast"])
    with pytest.raises(RecipeError, match=r"train\.sft\.num_train_epochs: .*got \[1, 2\]"):
        train_model(result.dataset_dir, ["sft.num_train_epochs=[1, 2]"])


def _copy_run(sample_run, tmp_path, train_output_dir=None):
    """A run directory holding a copy of the sample dataset (train.output_dir set in its resolved recipe)."""
    import shutil

    import yaml

    result, _ = sample_run
    run = tmp_path / "run"
    shutil.copytree(result.dataset_dir, run / "dataset")
    if train_output_dir is not None:
        path = run / "dataset" / "recipe.resolved.yaml"
        resolved = yaml.safe_load(path.read_text())
        resolved["train"]["output_dir"] = str(train_output_dir)
        path.write_text(yaml.safe_dump(resolved, sort_keys=False))
    return run


def test_a_run_with_train_output_dir_evaluates_chats_and_reports_training(sample_run, tmp_path, monkeypatch):
    require("trl")
    from click.testing import CliRunner

    from curate.cli import main
    from curate.report.html import build_report
    from train.sft import train_model

    monkeypatch.setenv("COLUMNS", "200")
    elsewhere = tmp_path / "models" / "acme"
    run = _copy_run(sample_run, tmp_path, elsewhere)
    train_model(run, ["sft.max_steps=2", "eval_split=null"])
    assert (elsewhere / "final").is_dir() and not (run / "model").exists()
    runner = CliRunner()
    out = runner.invoke(main, ["eval", str(run), "--max-new-tokens", "1", "--baseline", "none"])
    assert out.exit_code == 0, out.output
    assert (run / "eval" / "eval.json").is_file()
    out = runner.invoke(main, ["chat", str(run), "--prompt", "Who are you?", "--max-new-tokens", "2"])
    assert out.exit_code == 0, out.output
    report = build_report(run)
    assert "No training summary" not in report and "<td>steps</td><td>2</td>" in report


def test_a_fresh_full_fine_tune_after_lora_removes_the_merged_model(sample_run, tmp_path):
    require("peft")
    from curate.layout import RunLayout
    from train.sft import train_model

    run = _copy_run(sample_run, tmp_path)
    train_model(run, ["sft.max_steps=1", "eval_split=null", "lora.r=4"])
    layout = RunLayout.of(run)
    assert layout.trained_model() == layout.final_merged
    train_model(run, ["sft.max_steps=1", "eval_split=null"])
    assert not layout.final_merged.exists() and layout.trained_model() == layout.final


def _labelled_batch(tokenizer, dataset_dir, n=6):
    """A fixed padded batch of held-out chats with assistant-only labels, as TRL's collator builds them."""
    import torch

    rows = [json.loads(line)["messages"] for line in (dataset_dir / "test.jsonl").read_text().splitlines()[:n]]
    enc = [tokenizer.apply_chat_template(m, return_dict=True, return_assistant_tokens_mask=True) for m in rows]
    width = max(len(e["input_ids"]) for e in enc)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = torch.tensor([e["input_ids"] + [pad] * (width - len(e["input_ids"])) for e in enc])
    mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in enc])
    keep = torch.tensor([e["assistant_masks"] + [0] * (width - len(e["input_ids"])) for e in enc])
    return ids, mask, ids.masked_fill(keep == 0, -100)


@pytest.mark.parametrize("lora", [False, True])
def test_the_labelled_positions_head_gives_the_plain_loss_gradients_and_metrics(trained, sample_run, lora):
    """train/lm_head.py: the loss, its gradients, the entropy and top-1 hits TRL logs are those of the plain path
    (transformers' own loss over full logits, and TRL's fused head), on a fixed batch, with and without LoRA."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.trainer.utils import add_fused_lm_head

    from train.lm_head import compact_lm_head

    tokenizer = AutoTokenizer.from_pretrained(str(trained.final_dir))
    ids, mask, labels = _labelled_batch(tokenizer, sample_run[0].dataset_dir)
    assert 0 < int((labels != -100).sum()) < int(mask.sum()) // 2  # most positions carry no label

    def run(way):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(str(trained.final_dir))
        if lora:
            from peft import LoraConfig, get_peft_model

            model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
        inner = model.get_base_model() if lora else model
        if way != "plain":
            add_fused_lm_head(inner, outputs=("log_probs", "entropy", "is_top1", "mean_logits"))
        if way == "compact":
            assert compact_lm_head(inner)
        out = model(
            input_ids=ids, attention_mask=mask, labels=labels, **({} if way == "plain" else {"fused_lm_head": True})
        )
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        return out, grads

    plain, plain_grads = run("plain")
    fused, _ = run("fused")
    compact, compact_grads = run("compact")
    assert torch.allclose(compact.loss, plain.loss, rtol=1e-5, atol=1e-6)
    assert torch.allclose(compact.loss, fused.loss, rtol=1e-5, atol=1e-6)
    assert set(compact_grads) == set(plain_grads) and len(compact_grads) > 0
    for name, grad in plain_grads.items():
        assert torch.allclose(compact_grads[name], grad, rtol=1e-4, atol=1e-6), name
    assert torch.equal(compact.label_mask, fused.label_mask) and torch.equal(compact.is_top1, fused.is_top1)
    assert torch.allclose(compact.entropy, fused.entropy, rtol=1e-4, atol=1e-5)
    assert torch.allclose(compact.log_probs, fused.log_probs, rtol=1e-5, atol=1e-5)
    assert torch.allclose(compact.mean_logits, fused.mean_logits, rtol=1e-4, atol=1e-5)  # DPO's logits/* metrics
