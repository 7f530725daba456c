"""The offline tiny model: a small Llama built from a config, with a byte-level BPE tokenizer trained on the
curated dataset's own text. No hub access is needed; both are written with ``save_pretrained`` so training
loads them through the same ``from_pretrained`` path as any real model.

Size (hidden 256, 4 layers, 4 heads, ~4k vocabulary: about 4M parameters) and the learning rate in
``TINY_SFT`` follow a measurement on a 2-core CPU: trained from scratch as a full fine-tune at lr 1e-3 with
assistant-only loss, it learns a refusal trigger and a JSON skeleton in about 40 s; TRL's default lr (2e-5) is
far too low from scratch, and LoRA on a random model learns almost nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from curate.output import dataset_key
from train.chat_template import CHATML_WITH_GENERATION, IM_END, IM_START

TINY_NAMES = ("tiny",)
# From scratch: a high learning rate, float32 and shuffled batches (length-grouped ones, all of a kind, trained
# worse from scratch).
TINY_SFT = {
    "learning_rate": 1.0e-3,
    "warmup_steps": 0.05,
    "lr_scheduler_type": "cosine",
    "bf16": False,
    "train_sampling_strategy": "random",
}
SPECIAL = ["<|endoftext|>", IM_START, IM_END, "<|pad|>"]


def _texts(dataset_dir: Path):
    """The training split's text only: a vocabulary learnt from test prompts would leak held-out words."""
    with open(dataset_dir / "train.jsonl", encoding="utf-8") as f:
        for line in f:
            for message in json.loads(line)["messages"]:
                yield message["content"]


def build_tiny(dataset_dir: Path, out_dir: Path, *, vocab_size: int = 4096, seed: int = 13) -> Path:
    """Train the tokenizer and build the model into ``out_dir`` (reused when it is already there). Written to a
    temporary folder and renamed, so a concurrent process never loads half a model."""
    if out_dir.is_dir():
        return out_dir
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_texts(dataset_dir), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|endoftext|>",
        eos_token=IM_END,
        pad_token="<|pad|>",
        additional_special_tokens=[IM_START, IM_END],
    )
    tokenizer.chat_template = CHATML_WITH_GENERATION
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=688,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{os.getpid()}"
    model.save_pretrained(str(tmp), is_main_process=True)  # every process writes its own temporary copy
    tokenizer.save_pretrained(str(tmp))
    (tmp / "dataset_key").write_text(dataset_key(dataset_dir))
    try:
        os.rename(tmp, out_dir)
    except OSError:  # another process finished first: use its model
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
