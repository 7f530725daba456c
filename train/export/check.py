"""Checks that an exported GGUF is the trained model, run in llama.cpp itself (llama-cpp-python): the same token
ids for the same text, and the same next-token logits as the HF folder on fixed prompts."""

from __future__ import annotations

from pathlib import Path

from train.export.template import CONVERSATIONS

TEXTS = [
    "Refunds go back to the original payment method within 10 days. Call 1-800-555-0142!",
    "Rückgabe innerhalb von 30 Tagen; 返品は30日以内。 Tabs\tand  double  spaces\n\n- a list item",
    '{"ticket_id": "T-1001", "priority": "high"} <|im_end|> 2024-05-01 12:30',
]


def _llama(gguf_path: Path, n_ctx: int = 1024):
    from llama_cpp import Llama

    return Llama(model_path=str(gguf_path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=2)


def prompts(tokenizer) -> list[str]:
    """The chat prompts compared: each test conversation with its generation prompt, as the server renders it."""
    return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in CONVERSATIONS]


def compare_tokens(hf_dir: Path, gguf_path: Path) -> list[str]:
    """The texts (plain and chat prompts) llama.cpp tokenizes differently from the HF tokenizer; [] when none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    llm = _llama(gguf_path)
    wrong = []
    for text in [*TEXTS, *prompts(tokenizer)]:
        want = tokenizer(text, add_special_tokens=True)["input_ids"]
        got = llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)
        if want != got:
            wrong.append(text)
    return wrong


def compare_logits(hf_dir: Path, gguf_path: Path) -> dict:
    """Next-token logits at the last position of each chat prompt, the HF model (float32) against llama.cpp on
    the GGUF: top-1 agreement and the largest absolute difference, over the same token ids."""
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
    model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    llm = _llama(gguf_path)
    rows = []
    for text in prompts(tokenizer):
        ids = tokenizer(text, add_special_tokens=True)["input_ids"]
        with torch.no_grad():
            want = model(torch.tensor([ids])).logits[0, -1].numpy()
        llm.reset()
        llm.eval(ids)
        got = np.asarray(llm.scores[len(ids) - 1], dtype=np.float32)
        top1 = int(want.argmax()) == int(got.argmax())
        diff, spread = float(np.abs(want - got).max()), float(want.max() - want.min())
        rows.append({"tokens": len(ids), "top1_agree": top1, "max_abs_diff": diff, "logit_range": spread})
    return {
        "prompts": len(rows),
        "top1_agreement": sum(r["top1_agree"] for r in rows) / len(rows),
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
        "rows": rows,
    }
