"""``gristmill chat``: talk to a trained model in the terminal, with its own chat template.

RUN is a run directory (its ``model/final``, or ``final-merged`` after LoRA) or a model folder; with a run
directory the persona's system prompt from ``dataset/behaviours.json`` is used unless ``--system`` says
otherwise, so the model is prompted the way it was trained. ``--base`` talks to the untouched start instead: the
run's starting model, or a named base (``smollm2-135m``, a model folder, a ``.gguf`` file) with no run at all.
"""

from __future__ import annotations

import json
from pathlib import Path

from curate.errors import InputError, OutputError
from curate.layout import RunLayout
from train.base_models import NAMED


def resolve_model(path: Path) -> tuple[Path, str | None, Path | None]:
    """(model folder, the run's persona system prompt or None, the run's dataset folder or None)."""
    path = Path(path)
    if (path / "config.json").is_file():
        layout = RunLayout.create(path.parent.parent, path.parent) if path.parent.name == "model" else None
    else:
        layout = RunLayout.of(path)
        path = layout.trained_model()
        if path is None:
            raise OutputError(
                f"{layout.root} is neither a model folder (config.json) nor a run with a trained model "
                f"({layout.final}); train first"
            )
    behaviours = layout.dataset / "behaviours.json" if layout else None
    system = None
    if behaviours is not None and behaviours.is_file():
        system = (json.loads(behaviours.read_text(encoding="utf-8")).get("persona") or {}).get("system")
    dataset = layout.dataset if layout is not None and layout.dataset.is_dir() else None
    return path, system, dataset


def base_model(name: str | None, trained: Path | None) -> Path:
    """The untouched base to chat with: ``name`` (a named base, a folder or a .gguf, converted once as training
    does), else the model the trained folder ``trained`` started from."""
    from train.base_models import resolve_model as resolve_base
    from train.eval.run import default_baseline

    if not name:
        if trained is None:
            raise InputError("--base without a run needs a name: --base smollm2-135m (or a model folder, a .gguf)")
        start = default_baseline(trained)
        if start is None:
            raise OutputError(f"{trained} does not say which model it started from (no training_summary.json)")
        name = str(start)
    if name == "tiny":
        raise InputError("the tiny model is built per dataset: use `gristmill chat RUN --base` for a tiny run")
    folder = Path(resolve_base(name))
    if not (folder / "config.json").is_file():
        raise InputError(f"--base {name!r}: not a named base ({', '.join(NAMED)}), a model folder or a .gguf file")
    return folder


class Chat:
    def __init__(self, model_dir: Path, *, max_new_tokens: int = 256, temperature: float = 0.0, threads: int = 1):
        from train.eval.generation import load_model

        self.model, self.tokenizer = load_model(model_dir, threads)
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def reply(self, messages: list[dict[str, str]]) -> str:
        import torch

        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        from train.device import autocast_dtype

        enc = self.tokenizer(text, return_tensors="pt", add_special_tokens=False).to(self.model.device)
        sampling = (
            {"do_sample": True, "temperature": self.temperature} if self.temperature > 0 else {"do_sample": False}
        )
        dtype = autocast_dtype()  # as evaluation generates, so chat answers what eval scored
        with torch.inference_mode(), torch.autocast(self.model.device.type, dtype=dtype, enabled=dtype is not None):
            out = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                eos_token_id=self.tokenizer.eos_token_id,
                **sampling,
            )
        return self.tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True).strip()
