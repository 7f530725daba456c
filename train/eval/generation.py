"""Greedy, batched generation for evaluation, with a resumable cache per model.

- **bf16** autocast where the machine runs it natively (device.py): 1.6x on a 2-core CPU.
- **Budgets per kind.** A refusal or an abstention is decided in its first few dozen tokens, a JSON object needs
  room for its schema, and an answer to compare with a reference needs more: each item is generated with its
  kind's budget (``eval.budgets``), never more than ``eval.max_new_tokens``. Items are batched with others of the
  same budget and similar length (less padding), and a sequence stops at its end-of-turn token.
- **The cache.** Outputs are appended, batch by batch, to ``<cache_dir>/<model fingerprint>.jsonl`` under a key
  of the prompt's messages, the budget and the generation settings. An interrupted eval resumes where it
  stopped; a re-run generates nothing. The untrained base's cache lives in the user cache
  (``<user cache>/generations``), so every run and recipe on the same base reuses its outputs. Scores are always
  recomputed from the outputs, so a change of scoring never needs a new generation.
- **Fingerprints.** A folder converted from a GGUF is known by the file's sha256; any other by a hash of the
  content of its files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from curate.errors import TrainError
from curate.layout import write_atomic

GENERATION_VERSION = 3  # bump when generation itself changes (stopping, decoding), never for scoring


def model_fingerprint(model_dir: Path) -> str:
    """What a model's cached generations are keyed by: the GGUF's sha256 for a converted base (its folder is
    rebuilt from it), else the folder's content; with the transformers and torch versions, since either can
    change the converted weights or the decoding."""
    import torch
    import transformers

    from train.gguf import SOURCE_FILE

    versions = f"transformers-{transformers.__version__}-torch-{torch.__version__}".encode()
    source = model_dir / SOURCE_FILE
    if source.is_file():
        sha = json.loads(source.read_text())["sha256"]
        return f"gguf-{sha[:16]}-{hashlib.sha256(versions).hexdigest()[:8]}"
    h = hashlib.sha256(versions + b"\0")
    for path in sorted(p for p in model_dir.iterdir() if p.is_file()):
        h.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:24]


def generation_key(messages: list[dict[str, str]], budget: int, dtype: str) -> str:
    body = json.dumps([messages, budget, "greedy", dtype, GENERATION_VERSION], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:32]


def load_model(model_dir: Path, threads: int = 1):
    """(model in eval mode, tokenizer padding on the left) from a folder, through from_pretrained."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    except (OSError, ValueError) as err:
        raise TrainError(f"cannot load the model in {model_dir} ({err}); train first or give a model folder") from None
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if torch.cuda.is_available():
        model.to("cuda")
    else:
        torch.set_num_threads(threads)
    return model, tokenizer


def generate(
    model_dir: Path,
    prompts: dict[str, tuple[list[dict[str, str]], int]],
    *,
    batch_size: int,
    cache_dir: Path,
    prefix: str = "",
    on_batch: Callable[[int], None] | None = None,
    threads: int = 1,
) -> dict[str, str]:
    """{prompt id: generated text} for ``prompts`` ({id: (messages, budget)}), greedy; resumes from the cache
    ``<cache_dir>/<prefix><model fingerprint>.jsonl``."""
    import torch

    from train.device import autocast_dtype

    dtype = autocast_dtype()
    cache = cache_dir / f"{prefix}{model_fingerprint(model_dir)}.jsonl"
    done = read_cache(cache)
    keys = {pid: generation_key(messages, budget, str(dtype)) for pid, (messages, budget) in prompts.items()}
    todo = sorted({keys[pid]: pid for pid in prompts if keys[pid] not in done}.items())
    if on_batch:
        on_batch(len(prompts) - sum(1 for pid in prompts if keys[pid] not in done))
    if todo:
        model, tokenizer = load_model(model_dir, threads)
        texts = {
            key: tokenizer.apply_chat_template(prompts[pid][0], tokenize=False, add_generation_prompt=True)
            for key, pid in todo
        }
        # Same budget and similar lengths together: one max_new_tokens per batch, and less padding.
        todo.sort(key=lambda kp: (prompts[kp[1]][1], len(texts[kp[0]]), kp[0]))
        cache.parent.mkdir(parents=True, exist_ok=True)
        waiting = {key: [pid for pid in prompts if keys[pid] == key] for key, _ in todo}
        device = "cuda" if torch.cuda.is_available() else "cpu"
        autocast = torch.autocast(device, dtype=dtype, enabled=dtype is not None)
        stop, prefix = stop_tokens(model, tokenizer), {}
        with open(cache, "a", encoding="utf-8") as out, torch.inference_mode(), autocast:
            for batch in _batches(todo, prompts, batch_size):
                ids = tokenizer([texts[key] for key, _ in batch], add_special_tokens=False)["input_ids"]
                new = greedy(model, ids, prompts[batch[0][1]][1], stop, tokenizer.pad_token_id, prefix)
                for (key, _), row in zip(batch, new, strict=True):
                    done[key] = tokenizer.decode(row, skip_special_tokens=True).strip()
                    out.write(json.dumps({"id": key, "output": done[key]}, ensure_ascii=False) + "\n")
                out.flush()
                if on_batch:
                    on_batch(sum(len(waiting[key]) for key, _ in batch))
    return {pid: done[keys[pid]] for pid in prompts}


def stop_tokens(model, tokenizer) -> set[int]:
    """The tokens that end a turn: the tokenizer's end of sequence and whatever the generation config adds."""
    configured = getattr(model.generation_config, "eos_token_id", None)
    configured = configured if isinstance(configured, list) else [configured]
    return {t for t in [tokenizer.eos_token_id, *configured] if t is not None}


def greedy(
    model, ids: list[list[int]], max_new: int, stop: set[int], pad: int, prefix: dict | None = None
) -> list[list[int]]:
    """Greedy continuations of the token lists ``ids`` (without their stop token), at most ``max_new`` tokens each.

    The same tokens ``model.generate`` gives greedily, for less work: the prefix every prompt of the batch shares
    (the system prompt; for the prompted baseline the policy and its shots, most of each prompt) is run once and
    its key/value cache copied to every row, and a row that reaches a stop token leaves the batch, its cache rows
    with it, instead of being decoded to the longest row's end. ``prefix`` (a dict kept by the caller) carries
    the last shared prefix's cache to the next batch that starts with it.
    """
    import torch

    device, key = model.device, _cache_argument(model)
    shared, cache = _prefix_cache(model, ids, {} if prefix is None else prefix)
    if shared:
        cache.batch_repeat_interleave(len(ids))
    rest = [row[shared:] for row in ids]
    width = max(len(r) for r in rest)
    inputs = torch.tensor([[pad] * (width - len(r)) + r for r in rest], device=device)
    # Left padding sits between the shared prefix and each row's own tokens: masked out, positions continue.
    mask = torch.tensor([[1] * shared + [0] * (width - len(r)) + [1] * len(r) for r in rest], device=device)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=inputs, attention_mask=mask, position_ids=positions[:, shared:], use_cache=True,
                   logits_to_keep=1, **{key: cache}).logits  # fmt: skip
    position = positions[:, -1]
    rows = list(range(len(ids)))  # which prompt each row of the batch still being decoded is
    out: list[list[int]] = [[] for _ in ids]
    for _ in range(max_new):
        tokens = logits[:, -1].argmax(-1)
        keep = []
        for i, (row, token) in enumerate(zip(rows, tokens.tolist(), strict=True)):
            if token not in stop:
                out[row].append(token)
                keep.append(i)
        if not keep or len(out[rows[keep[0]]]) == max_new:
            break
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            tokens, mask, position = tokens[index], mask[index], position[index]
            rows = [rows[i] for i in keep]
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        position = position + 1
        logits = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=position[:, None],
                       use_cache=True, **{key: cache}).logits  # fmt: skip
    return out


def _prefix_cache(model, ids: list[list[int]], memo: dict) -> tuple[int, Any]:
    """(tokens, their key/value cache for one row): the batch's shared prefix, or the one ``memo`` holds when the
    batch starts with it."""
    import copy

    import torch
    from transformers import DynamicCache

    shared = _shared_prefix(ids)
    known = memo.get("tokens") or []
    if known and len(known) <= shared and ids[0][: len(known)] == known:
        return len(known), copy.deepcopy(memo["cache"])
    cache = DynamicCache(config=model.config)
    if shared:
        model(input_ids=torch.tensor([ids[0][:shared]], device=model.device), use_cache=True, logits_to_keep=1,
              **{_cache_argument(model): cache})  # fmt: skip
        memo.update(tokens=ids[0][:shared], cache=copy.deepcopy(cache))
    return shared, cache


def _cache_argument(model) -> str:
    """The forward argument the key/value cache goes in: ``cache`` from transformers 5.2x on, ``past_key_values``
    before (deprecated since)."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def _shared_prefix(ids: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own."""
    shortest = min(len(r) for r in ids)
    n = 0
    while n < shortest - 1 and all(r[n] == ids[0][n] for r in ids):
        n += 1
    return n


def _batches(todo: list[tuple[str, str]], prompts: dict[str, Any], size: int):
    batch: list[tuple[str, str]] = []
    for item in todo:
        if batch and (len(batch) == size or prompts[item[1]][1] != prompts[batch[0][1]][1]):
            yield batch
            batch = []
        batch.append(item)
    if batch:
        yield batch


def read_cache(cache: Path) -> dict[str, str]:
    """{generation key: output} already generated. A line torn by a kill mid-write is dropped (it is generated
    again) and the file rewritten without it, so the next append starts on a line of its own."""
    if not cache.exists():
        return {}
    text = cache.read_text(encoding="utf-8")
    rows, torn = [], not text.endswith("\n") and bool(text)
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            torn = True
    if torn:
        write_atomic(cache, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return {r["id"]: r["output"] for r in rows}
