"""``export/gguf/model-<quant>.gguf``: the exported HF folder as one GGUF file llama.cpp, Ollama and LM Studio
load, written in Python with the ``gguf`` package's writer (llama.cpp's own Python library), with no converter
script fetched or vendored.

What llama.cpp's ``convert_hf_to_gguf.py`` writes for a Llama model, the same way: the q and k projections
permuted for llama.cpp's rotary layout (train/gguf.py's reader undoes the same permutation), 2-D tensors in the
chosen type and norms in float32, the byte-level BPE vocabulary with its merges and token types (special added
tokens are control tokens), ``tokenizer.ggml.pre`` named from the tokenizer's pre-tokenizer, the BOS, EOS
(the end-of-turn token) and padding ids, ``add_bos_token`` as the tokenizer encodes, and the serving chat
template. f16 and q8_0 are written here (gguf's reference quantizer; a tensor whose rows do not divide into
q8_0 blocks stays f16, as llama.cpp's converter does); q4_k_m is quantized from the f16 file by llama.cpp itself
(``llama_model_quantize`` in llama-cpp-python, the ``serve`` extra).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from curate.errors import TrainError

SUPPORTED = ("LlamaForCausalLM",)  # the architectures written; SmolLM2 and the tiny model are Llama
QUANTS = ("f16", "q8_0", "q4_k_m")
PYTHON_QUANTS = ("f16", "q8_0")
# llama.cpp's pre-tokenizer names for the Hugging Face pre-tokenizers they reproduce (llama-vocab.cpp)
_PRE_TOKENIZERS = {
    ("ByteLevel",): "gpt-2",  # the GPT-2 split regex, no digit rule
    ("Digits", "ByteLevel"): "smollm",  # each digit on its own, then GPT-2's regex
}
LAYER = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
    "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm",
}


def gguf_name(quant: str) -> str:
    return f"model-{quant}.gguf"


def check_supported(config) -> None:
    """TrainError naming the supported architectures, when ``config``'s cannot be written as GGUF here."""
    archs = ", ".join(getattr(config, "architectures", None) or []) or "of no named architecture"
    if archs not in SUPPORTED:
        raise TrainError(
            f"GGUF export supports {', '.join(SUPPORTED)}; this model is {archs}. The HF folder (--format hf) "
            "still exports it; convert that with llama.cpp's convert_hf_to_gguf.py"
        )
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", "default") not in ("default", None):
        raise TrainError(f"GGUF export writes plain rotary embeddings; this model uses {rope['rope_type']!r} scaling")
    if getattr(config, "attention_bias", False) or getattr(config, "mlp_bias", False):
        raise TrainError("GGUF export writes Llama without biases; this model has attention or MLP biases")


def pre_tokenizer(tokenizer_json: dict) -> str:
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    key = tuple(s.get("type") for s in steps)
    name = _PRE_TOKENIZERS.get(key)
    byte_level = steps[-1] if steps else {}
    digits_ok = all(s.get("individual_digits", True) for s in steps if s.get("type") == "Digits")
    if name is None or not byte_level.get("use_regex", True) or byte_level.get("add_prefix_space") or not digits_ok:
        raise TrainError(
            f"GGUF export knows byte-level BPE tokenizers with pre-tokenizers {sorted(_PRE_TOKENIZERS)}; this "
            f"one is {json.dumps(pre)[:200]}. The HF folder still exports it"
        )
    return name


def write_gguf(hf_dir: Path, path: Path, quant: str, *, name: str, add_bos: bool, end_ids: list[int]) -> Path:
    """``hf_dir`` (an export/hf folder) as a GGUF of ``quant`` (f16 or q8_0) at ``path``."""
    import gguf
    import numpy as np
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    if quant not in PYTHON_QUANTS:
        raise ValueError(quant)
    config = AutoConfig.from_pretrained(str(hf_dir))
    check_supported(config)
    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    state = json.loads(tokenizer.backend_tokenizer.to_str())
    if (state.get("model") or {}).get("type") != "BPE":
        raise TrainError(f"GGUF export writes BPE tokenizers; this one is {state.get('model', {}).get('type')}")
    pre = pre_tokenizer(state)
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[quant]
    file_type = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[quant]

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    try:
        writer.add_name(name)
        add_llama_hparams(writer, config)
        writer.add_file_type(file_type)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        _add_tokenizer(writer, tokenizer, state, config.vocab_size, pre, add_bos, end_ids)

        with safe_open(str(hf_dir / "model.safetensors"), framework="np") as weights:
            for key in weights.keys():
                if key == "lm_head.weight" and config.tie_word_embeddings:
                    continue
                data = weights.get_tensor(key).astype(np.float32)
                target, data = gguf_tensor(key, data, config)
                if data.ndim == 2:
                    if qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % 32 == 0:
                        writer.add_tensor(target, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
                    else:
                        writer.add_tensor(target, data.astype(np.float16))
                else:
                    writer.add_tensor(target, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def add_llama_hparams(writer, config) -> None:
    """The ``llama.*`` keys llama.cpp reads for a Llama ``config``."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(float(rope.get("rope_theta") or getattr(config, "rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)


def gguf_tensor(key: str, data, config):
    """The GGUF name of the HF tensor ``key`` and its data as llama.cpp lays it out (q and k permuted)."""
    name = key.removeprefix("model.").removesuffix(".weight")
    if name == "embed_tokens":
        return "token_embd.weight", data
    if name == "norm":
        return "output_norm.weight", data
    if name == "lm_head":
        return "output.weight", data
    if name.startswith("layers."):
        _, index, rest = name.split(".", 2)
        if rest not in LAYER:
            raise TrainError(f"GGUF export does not know the Llama tensor {key!r}")
        if rest == "self_attn.q_proj":
            data = llama_cpp_permute(data, config.num_attention_heads, config.num_attention_heads)
        elif rest == "self_attn.k_proj":
            data = llama_cpp_permute(data, config.num_attention_heads, config.num_key_value_heads)
        return f"blk.{index}.{LAYER[rest]}.weight", data
    raise TrainError(f"GGUF export does not know the Llama tensor {key!r}")


def llama_cpp_permute(weights, n_head: int, n_head_kv: int | None):
    """llama.cpp's ``LlamaModel.permute`` (convert_hf_to_gguf.py): rows of q and k reordered for its rotary layout."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def _add_tokenizer(writer, tokenizer, state: dict, vocab_size: int, pre: str, add_bos: bool, end_ids: list[int]):
    import gguf

    vocab = tokenizer.get_vocab()
    added = {t["content"]: t for t in state["added_tokens"]}
    by_id = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # an embedding row no token uses (a padded vocabulary), as llama.cpp's converter writes
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[token]["special"] else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    if len(vocab) > vocab_size:
        raise TrainError(f"the tokenizer has {len(vocab)} tokens but the model embeds {vocab_size}")
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(end_ids[0])
    writer.add_eot_token_id(end_ids[0])
    if tokenizer.unk_token_id is not None:
        writer.add_unk_token_id(tokenizer.unk_token_id)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(add_bos)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)
    writer.add_chat_template(tokenizer.chat_template)


def llama_cpp_or_error(quant: str):
    """The llama_cpp module, or a TrainError naming the extra that installs it."""
    try:
        import llama_cpp
    except ImportError:
        raise TrainError(
            f"--quant {quant} is quantized by llama.cpp: pip install 'gristmill[serve]' (llama-cpp-python); "
            f"{' and '.join(PYTHON_QUANTS)} need nothing more"
        ) from None
    return llama_cpp


def quantize_with_llama_cpp(f16: Path, out: Path, quant: str) -> Path:
    """``quant`` (q4_k_m) from an f16 GGUF with llama.cpp's own quantizer, from llama-cpp-python."""
    llama_cpp = llama_cpp_or_error(quant)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = {"q4_k_m": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M}[quant]
    params.nthread = os.cpu_count() or 1
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        code = llama_cpp.llama_model_quantize(str(f16).encode(), str(tmp).encode(), params)
        if code != 0:
            raise TrainError(f"llama.cpp could not quantize {f16.name} to {quant} (code {code})")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_back(path: Path) -> dict:
    """What a runtime reads from the file: architecture, chat template, BOS/EOS/EOT ids, add_bos, the
    pre-tokenizer, the tensor count and types."""
    import gguf

    reader = gguf.GGUFReader(str(path))

    def field(key: str):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    return {
        "architecture": field("general.architecture"),
        "chat_template": field("tokenizer.chat_template"),
        "bos_token_id": field("tokenizer.ggml.bos_token_id"),
        "eos_token_id": field("tokenizer.ggml.eos_token_id"),
        "eot_token_id": field("tokenizer.ggml.eot_token_id"),
        "add_bos_token": field("tokenizer.ggml.add_bos_token"),
        "pre": field("tokenizer.ggml.pre"),
        "tokens": len(reader.fields["tokenizer.ggml.tokens"].data),
        "tensors": len(reader.tensors),
        "types": sorted({t.tensor_type.name for t in reader.tensors}),
    }
