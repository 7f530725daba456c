"""``export/hf/``: the trained model as a folder vLLM, TGI and transformers 4 or 5 load.

- The weights are the merged model after LoRA (``final-merged``), else ``final``, as safetensors.
- The chat template is the serving template (template.py) both inline in ``tokenizer_config.json`` (vLLM on
  transformers 4 reads it there) and as ``chat_template.jinja`` (transformers 5 reads that file).
- ``eos_token`` is the end-of-turn token the training data ended each answer with, and
  ``generation_config.json`` lists every end token with greedy defaults, so a server stops where training
  taught the model to stop (the commonest export bug: a model that never stops).
- ``tokenizer_config.json`` is written in a form both transformers majors read: transformers 5's class name
  ``TokenizersBackend`` and a list-valued ``extra_special_tokens`` break transformers 4, and the folder-local
  keys (``is_local``, ``local_files_only``) describe this machine, not the model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from curate.errors import TrainError
from train.export.template import ChatParts, chat_parts, check_serving_template, serving_template

LOCAL_KEYS = ("is_local", "local_files_only", "name_or_path", "backend")


@dataclass(frozen=True)
class HFExport:
    folder: Path
    parts: ChatParts
    end_tokens: list[tuple[str, int]]  # (token, id): the end-of-turn token first
    add_bos: bool  # the tokenizer adds BOS when it encodes text (GGUF's add_bos_token)


def training_template(tokenizer) -> str:
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if not template:
        raise TrainError("the trained model's tokenizer has no chat template; it was not trained by gristmill")
    return template


def end_tokens(tokenizer, model_config, parts: ChatParts) -> list[tuple[str, int]]:
    """The end-of-turn token (what follows each trained answer) first, then the model's other end tokens."""
    vocab = tokenizer.get_vocab()
    end = parts.end_of_turn
    specials = sorted((t for t in tokenizer.all_special_tokens if t and end.startswith(t)), key=len, reverse=True)
    if not specials:
        raise TrainError(
            f"the chat template ends an assistant turn with {parts.suffix['assistant']!r}, which starts with no "
            "special token: a served model would not know where its answer ends"
        )
    out = [(specials[0], vocab[specials[0]])]
    ids = model_config.eos_token_id
    for i in ids if isinstance(ids, list) else [ids]:
        if i is not None and i not in [x for _, x in out]:
            out.append((tokenizer.convert_ids_to_tokens(i), i))
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in [x for _, x in out]:
        out.append((tokenizer.eos_token, tokenizer.eos_token_id))
    return out


def adds_bos(tokenizer) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


def write_hf(model_dir: Path, out: Path) -> HFExport:
    """Write the folder; the model and tokenizer of ``model_dir`` as trained, with the serving template."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    transformers.utils.logging.disable_progress_bar()  # progress is the caller's: one line per export step
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    trained = training_template(tokenizer)
    serving = serving_template(trained)
    check_serving_template(tokenizer, trained, serving)
    parts = chat_parts(tokenizer, serving)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    ends = end_tokens(tokenizer, model.config, parts)
    tokenizer.chat_template = serving
    tokenizer.eos_token = ends[0][0]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = ends[0][0]
    model.config.eos_token_id = ends[0][1]
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[i for _, i in ends],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out.mkdir(parents=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    _portable_tokenizer_config(out, serving, tokenizer, model.config)
    (out / "chat_template.jinja").write_text(serving, encoding="utf-8")
    for extra in ("training_args.bin",):
        (out / extra).unlink(missing_ok=True)
    _copy_licence(model_dir, out)
    return HFExport(out, parts, ends, adds_bos(tokenizer))


def _portable_tokenizer_config(out: Path, template: str, tokenizer, config) -> None:
    path = out / "tokenizer_config.json"
    cfg = json.loads(path.read_text(encoding="utf-8"))
    for key in LOCAL_KEYS:
        cfg.pop(key, None)
    if cfg.get("tokenizer_class") in (None, "TokenizersBackend"):
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"  # a class both transformers 4 and 5 have
    extra = cfg.pop("extra_special_tokens", None)
    if isinstance(extra, list):  # transformers 5's list; 4 reads extra_special_tokens as a dict of named tokens
        cfg["additional_special_tokens"] = extra
    elif isinstance(extra, dict) and extra:
        cfg["extra_special_tokens"] = extra
    if cfg.get("model_max_length", 0) > 10**9 and getattr(config, "max_position_embeddings", None):
        cfg["model_max_length"] = config.max_position_embeddings
    cfg["chat_template"] = template
    cfg["eos_token"], cfg["bos_token"] = tokenizer.eos_token, tokenizer.bos_token
    cfg["pad_token"] = tokenizer.pad_token
    path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy_licence(model_dir: Path, out: Path) -> None:
    for name in ("LICENSE", "LICENSE.txt", "NOTICE"):
        if (model_dir / name).is_file():
            shutil.copy2(model_dir / name, out / name)
