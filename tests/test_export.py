"""`gristmill export`: the trained tiny model as an HF folder, a GGUF and an Ollama Modelfile, each checked
against the model as trained (the chat template byte for byte, the end tokens, the weights), and bad input
refused with the fix. The checks inside llama.cpp itself (logits, served behaviour) are in test_served.py."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from curate.errors import TrainError
from tests.conftest import REPO, write

GO_RENDERER = REPO / "tests" / "go_template" / "main.go"


@pytest.fixture(scope="module")
def run_dir(trained, sample_run, tmp_path_factory) -> Path:
    """A run directory holding the sample's dataset and the tiny model trained on it."""
    result, _ = sample_run
    root = tmp_path_factory.mktemp("export-run") / "acme"
    shutil.copytree(result.dataset_dir, root / "dataset")
    shutil.copytree(trained.final_dir, root / "model" / "final")
    shutil.copy2(trained.output_dir / "training_summary.json", root / "model" / "training_summary.json")
    return root


@pytest.fixture(scope="module")
def exported(run_dir) -> Path:
    from train.export import export_run

    export_run(run_dir, ["hf", "gguf", "ollama"], "q8_0")
    return run_dir / "export"


def _logits(folder: Path, ids: list[int]):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def _weight_mismatches(want: Path, got: Path) -> list[str]:
    """Tensors of ``got`` that differ from ``want``'s by more than float16 rounding (relative 1e-3)."""
    from safetensors.torch import load_file

    a, b = load_file(str(want / "model.safetensors")), load_file(str(got / "model.safetensors"))
    return [name for name, t in a.items() if (t - b[name]).abs().max() > 1e-3 * t.abs().max()]


def test_the_hf_folder_renders_chats_as_training_did_and_stops_at_the_end_of_turn(exported, run_dir):
    from transformers import AutoTokenizer

    from train.export.template import CONVERSATIONS

    trained = AutoTokenizer.from_pretrained(str(run_dir / "model" / "final"))
    served = AutoTokenizer.from_pretrained(str(exported / "hf"))
    assert "{% generation %}" in trained.chat_template and "{% generation %}" not in served.chat_template
    for messages in CONVERSATIONS:  # byte for byte as training rendered them, with and without the prompt
        for gen in (True, False):
            want = trained.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            assert served.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen) == want
    config = json.loads((exported / "hf" / "tokenizer_config.json").read_text())
    assert config["chat_template"] == (exported / "hf" / "chat_template.jinja").read_text() == served.chat_template
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # transformers 4 (vLLM) has no TokenizersBackend
    assert not isinstance(config.get("extra_special_tokens"), list) and "is_local" not in config
    assert served.eos_token == config["eos_token"] == "<|im_end|>"
    generation = json.loads((exported / "hf" / "generation_config.json").read_text())
    assert served.convert_tokens_to_ids("<|im_end|>") in generation["eos_token_id"]
    assert generation["do_sample"] is False
    # the same weights: identical logits
    ids = served(served.apply_chat_template(CONVERSATIONS[1], add_generation_prompt=True, tokenize=False))["input_ids"]
    assert (_logits(run_dir / "model" / "final", ids) == _logits(exported / "hf", ids)).all()


TRANSFORMERS4_CHECK = """
import json, sys
from transformers import AutoTokenizer, GenerationConfig
folder, messages = sys.argv[1], json.loads(sys.argv[2])
try:
    tokenizer = AutoTokenizer.from_pretrained(folder)
except Exception as err:
    print(json.dumps({"error": f"{type(err).__name__}: {err}"}))
    sys.exit(0)
text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
ends = GenerationConfig.from_pretrained(folder).eos_token_id
print(json.dumps({"text": text, "eos": tokenizer.eos_token, "ends": ends}))
"""


def test_transformers_4_loads_the_hf_folder_but_not_a_transformers_5_save(exported, run_dir):
    """vLLM's releases pin transformers 4: it reads the exported tokenizer and template, while the folder training
    saved (transformers 5's TokenizersBackend class) fails there, the bug this export exists to avoid."""
    python = os.environ.get("GRISTMILL_TRANSFORMERS4_PYTHON")
    if not python:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("GRISTMILL_TRANSFORMERS4_PYTHON is not set (.ci/run makes a transformers 4 venv)")
        pytest.skip("set GRISTMILL_TRANSFORMERS4_PYTHON to a Python with transformers 4 installed")
    from transformers import AutoTokenizer

    from train.export.template import CONVERSATIONS

    def load(folder: Path) -> dict:
        out = subprocess.run([python, "-c", TRANSFORMERS4_CHECK, str(folder), json.dumps(CONVERSATIONS[1])],
                             capture_output=True, text=True, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr[-2000:]
        return json.loads(out.stdout.splitlines()[-1])

    got = load(exported / "hf")
    want = AutoTokenizer.from_pretrained(str(run_dir / "model" / "final")).apply_chat_template(
        CONVERSATIONS[1], tokenize=False, add_generation_prompt=True
    )
    assert got["text"] == want and got["eos"] == "<|im_end|>" and got["ends"]
    assert "TokenizersBackend" in load(run_dir / "model" / "final").get("error", "")


def test_the_gguf_reads_back_as_the_hf_folder_and_converts_back_to_its_logits(exported, tmp_path):
    from transformers import AutoTokenizer

    from train.export import check_read_back
    from train.export.gguf import read_back, write_gguf
    from train.export.hf import HFExport, adds_bos
    from train.gguf import convert_gguf

    tokenizer = AutoTokenizer.from_pretrained(str(exported / "hf"))
    back = read_back(exported / "gguf" / "model-q8_0.gguf")
    assert back["architecture"] == "llama" and back["chat_template"] == tokenizer.chat_template
    assert back["eos_token_id"] == back["eot_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert back["bos_token_id"] == tokenizer.bos_token_id and back["add_bos_token"] is adds_bos(tokenizer) is False
    assert back["pre"] == "gpt-2" and "Q8_0" in back["types"]
    # f16, read back by transformers' own GGUF reader (which undoes llama.cpp's q/k permutation): the weights
    f16 = write_gguf(exported / "hf", tmp_path / "model-f16.gguf", "f16", name="t", add_bos=False,
                     end_ids=[back["eos_token_id"]])  # fmt: skip
    hf = HFExport(exported / "hf", None, [("<|im_end|>", back["eos_token_id"])], False)
    assert check_read_back(f16, hf)["types"] == ["F16", "F32"]
    folder = convert_gguf(f16, tmp_path / "models")
    assert _weight_mismatches(exported / "hf", folder) == []
    ids = tokenizer("Refunds take 10 days. <|im_end|>")["input_ids"]
    want, got = _logits(exported / "hf", ids), _logits(folder, ids)
    assert (want.argmax(-1) == got.argmax(-1)).all()
    assert (want - got).abs().max() < 0.05  # float16 weights
    assert (
        AutoTokenizer.from_pretrained(str(folder))(["a 12", "<|im_end|>"])["input_ids"]
        == tokenizer(["a 12", "<|im_end|>"])["input_ids"]
    )


def test_a_planted_permutation_bug_is_caught_by_the_read_back(exported, tmp_path, monkeypatch):
    """The weight check above can fail: q rows written unpermuted come back in the wrong order."""
    import train.export.gguf as writer
    from train.export.gguf import write_gguf
    from train.gguf import convert_gguf

    monkeypatch.setattr(writer, "llama_cpp_permute", lambda w, n_head, n_head_kv: w)
    f16 = write_gguf(exported / "hf", tmp_path / "bad.gguf", "f16", name="t", add_bos=False, end_ids=[2])
    wrong = _weight_mismatches(exported / "hf", convert_gguf(f16, tmp_path / "models"))
    assert wrong and all(name.split(".")[-2] in ("q_proj", "k_proj") for name in wrong)


def _go_render(template: str, messages: list[dict], tmp_path: Path) -> str:
    env = {**os.environ, "GOCACHE": str(tmp_path / "gocache"), "GOPATH": str(tmp_path / "gopath")}
    out = subprocess.run(["go", "run", str(GO_RENDERER)], input=json.dumps({"template": template,
                         "messages": messages}), capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout


def _modelfile_template(text: str) -> str:
    start = text.index('TEMPLATE """') + len('TEMPLATE """')
    return text[start : text.index('"""', start)]


def test_the_modelfile_template_renders_in_go_as_the_chat_template(exported, tmp_path):
    if shutil.which("go") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Go is needed to render the Ollama template (.ci/run installs Debian's golang-go)")
        pytest.skip("Go is not installed (apt-get install golang-go)")
    from transformers import AutoTokenizer

    text = (exported / "ollama" / "Modelfile").read_text()
    lines = text.splitlines()
    assert "FROM ../gguf/model-q8_0.gguf" in lines and (exported / "ollama" / "../gguf/model-q8_0.gguf").is_file()
    assert 'PARAMETER stop "<|im_end|>"' in lines and "PARAMETER temperature 0" in lines
    assert "PARAMETER repeat_penalty 1" in lines  # Ollama's default 1.1 changes answers (test_served.py)
    persona = json.loads((exported.parent / "dataset" / "behaviours.json").read_text())["persona"]["system"]
    assert f'SYSTEM """{persona}"""' in text
    template = _modelfile_template(text)
    tokenizer = AutoTokenizer.from_pretrained(str(exported / "hf"))
    conversations = [
        [{"role": "system", "content": persona}, {"role": "user", "content": "How do I return a tent?"}],
        [{"role": "system", "content": persona}, {"role": "user", "content": "Hi {{ .Prompt }}"},
         {"role": "assistant", "content": "Hello!\n"}, {"role": "user", "content": "Rückgabe? 返品"}],
        [{"role": "user", "content": "Extract:\n\n- T-1, high"}],
    ]  # fmt: skip
    for messages in conversations:
        want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert _go_render(template, messages, tmp_path) == want
    # planted: a Modelfile template that drops the newline after the role would render differently
    broken = template.replace("<|im_start|>user\n", "<|im_start|>user", 1)
    assert _go_render(broken, conversations[0], tmp_path) != tokenizer.apply_chat_template(
        conversations[0], tokenize=False, add_generation_prompt=True
    )


def test_templates_that_cannot_be_translated_faithfully_are_refused(exported):
    from transformers import AutoTokenizer

    from train.export.template import chat_parts, check_serving_template, serving_template

    tokenizer = AutoTokenizer.from_pretrained(str(exported / "hf"))
    smollm_original = (
        "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>"
        "system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + "
        "'\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
        "'<|im_start|>assistant\n' }}{% endif %}"
    )  # a default system prompt when none is given: not per message
    with pytest.raises(TrainError, match="not a plain concatenation"):
        chat_parts(tokenizer, smollm_original)
    trims = "{% for m in messages %}{{ m['content'] }}\n{%- generation %}x{% endgeneration %}{% endfor %}"
    with pytest.raises(TrainError, match="renders differently"):
        check_serving_template(tokenizer, trims, serving_template(trims))


def test_bad_input_names_the_fix(run_dir, tmp_path, monkeypatch):
    from train.export import export_run

    bare = tmp_path / "untrained"
    shutil.copytree(run_dir / "dataset", bare / "dataset")
    with pytest.raises(TrainError, match=r"run `gristmill train .*untrained` first"):
        export_run(bare, ["hf"])
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # llama-cpp-python not installed
    with pytest.raises(TrainError, match=r"q4_k_m is quantized by llama.cpp: pip install 'gristmill\[serve\]'"):
        export_run(run_dir, ["gguf"], "q4_k_m")
    with pytest.raises(TrainError, match="unknown export format"):
        export_run(run_dir, ["onnx"])


def test_an_unsupported_architecture_exports_hf_but_refuses_gguf(tmp_path, run_dir):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from train.export import export_run

    run = tmp_path / "gpt2run"
    shutil.copytree(run_dir / "dataset", run / "dataset")
    tokenizer = AutoTokenizer.from_pretrained(str(run_dir / "model" / "final"))
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=1, n_head=2))
    model.save_pretrained(str(run / "model" / "final"))
    tokenizer.save_pretrained(str(run / "model" / "final"))
    with pytest.raises(TrainError, match="GGUF export supports LlamaForCausalLM; this model is GPT2LMHeadModel"):
        export_run(run, ["hf", "gguf"])
    assert not (run / "export").exists() and not list(run.glob(".export.tmp-*"))
    export_run(run, ["hf"])
    assert (run / "export" / "hf" / "model.safetensors").is_file()


def test_an_export_is_replaced_whole_and_only_when_gristmill_wrote_it(run_dir, tmp_path, monkeypatch):
    import train.export as export

    run = tmp_path / "run"
    shutil.copytree(run_dir / "dataset", run / "dataset")
    shutil.copytree(run_dir / "model", run / "model")
    write(run / "export" / "notes.txt", "mine")
    with pytest.raises(TrainError, match="was not written by gristmill export"):
        export.export_run(run, ["hf"])
    assert (run / "export" / "notes.txt").read_text() == "mine"
    shutil.rmtree(run / "export")
    first = export.export_run(run, ["hf", "ollama"])
    before = {p.relative_to(run): p.stat().st_mtime_ns for p in (run / "export").rglob("*") if p.is_file()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(export, "write_gguf", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export.export_run(run, ["gguf"])
    after = {p.relative_to(run): p.stat().st_mtime_ns for p in (run / "export").rglob("*") if p.is_file()}
    assert after == before and not list(run.glob(".export.*"))  # the old export whole, nothing half-written
    monkeypatch.undo()
    second = export.export_run(run, ["hf"])
    assert set(first.summary["files"]) == {"hf", "gguf", "ollama"} and set(second.summary["files"]) == {"hf"}
    assert not (run / "export" / "gguf").exists()  # replaced whole, not merged


def test_export_command_and_card(run_dir):
    out = subprocess.run([sys.executable, "-m", "curate.cli", "export", str(run_dir), "--format", "hf,gguf",
                          "--quant", "f16"], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    assert "gguf/model-f16.gguf" in out.stdout and "GGUF read back" in out.stdout
    card = (run_dir / "export" / "README.md").read_text()
    assert "base_model: tiny" in card and "llama-server -m gguf/model-f16.gguf" in card
    assert "vllm serve ./hf" in card and "Not evaluated" in card
    bad = subprocess.run([sys.executable, "-m", "curate.cli", "export", str(run_dir), "--format", "onnx"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode != 0 and "unknown export format" in bad.stderr + bad.stdout
