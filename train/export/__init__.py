"""``gristmill export RUN``: the trained model in the forms teams serve it with, under ``<run>/export/``:

  hf/                     the folder vLLM, TGI and transformers load (hf.py)
  gguf/model-<quant>.gguf llama.cpp's file (gguf.py), read back and checked against hf/
  ollama/Modelfile        Ollama's recipe for the GGUF (ollama.py)
  README.md               the model card (card.py)
  export.json             what was written: formats, quant, sizes, seconds, the checks

The export is built in ``<run>/.export.tmp-<pid>/`` and swapped in by renames, so a failed or killed export
leaves the previous one whole. An existing ``export/`` is replaced only when gristmill wrote it (its
``export.json`` says so); anything else there is the user's, and is left alone with an error.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from curate.errors import TrainError
from curate.layout import RunLayout
from train.export.gguf import (
    PYTHON_QUANTS,
    QUANTS,
    gguf_name,
    llama_cpp_or_error,
    quantize_with_llama_cpp,
    read_back,
    write_gguf,
)

FORMATS = ("hf", "gguf", "ollama")
EXPORT = "export"
SUMMARY = "export.json"
WRITER = "gristmill export"


@dataclass(frozen=True)
class ExportResult:
    folder: Path
    summary: dict


def parse_formats(text: str | list[str]) -> list[str]:
    items = [f.strip() for f in (text.split(",") if isinstance(text, str) else text) if f.strip()]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise TrainError(f"unknown export format(s) {bad or items}; choose {', '.join(FORMATS)}, comma-separated")
    return [f for f in FORMATS if f in items]


def export_run(
    run: Path,
    formats: list[str],
    quant: str = "q8_0",
    *,
    notify: Callable[[str], None] | None = None,
) -> ExportResult:
    say = notify or (lambda _m: None)
    layout = RunLayout.of(run)
    model_dir = layout.trained_model()
    if model_dir is None:
        raise TrainError(
            f"{layout.root} has no trained model ({layout.final} does not exist): run `gristmill train "
            f"{layout.root}` first, or `gristmill run RECIPE` to curate, train and evaluate in one go"
        )
    if quant not in QUANTS:
        raise TrainError(f"unknown --quant {quant!r}; choose from {', '.join(QUANTS)}")
    formats = parse_formats(formats)
    if "ollama" in formats and "gguf" not in formats:
        formats = parse_formats([*formats, "gguf"])  # the Modelfile is FROM the GGUF
    if "gguf" in formats and quant not in PYTHON_QUANTS:
        llama_cpp_or_error(quant)  # before any work
    target = layout.root / EXPORT
    _check_replaceable(target)
    _recover(layout.root)

    stage = layout.root / f".{EXPORT}.tmp-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    summary: dict = {"writer": WRITER, "model": str(model_dir), "formats": formats, "quant": quant, "files": {},
                     "seconds": {}, "checks": {}}  # fmt: skip
    try:
        from train.export.hf import write_hf

        start = time.perf_counter()
        say("hf: the model folder")
        hf = write_hf(model_dir, stage / "hf")
        summary["seconds"]["hf"] = round(time.perf_counter() - start, 1)
        summary["end_tokens"] = [t for t, _ in hf.end_tokens]
        ids = [i for _, i in hf.end_tokens]
        if "gguf" in formats:
            start = time.perf_counter()
            gguf_dir = stage / "gguf"
            gguf_dir.mkdir()
            path = gguf_dir / gguf_name(quant)
            say(f"gguf: {path.name}")
            if quant in PYTHON_QUANTS:
                write_gguf(hf.folder, path, quant, name=layout.root.name, add_bos=hf.add_bos, end_ids=ids)
            else:
                f16 = write_gguf(hf.folder, gguf_dir / gguf_name("f16"), "f16", name=layout.root.name,
                                 add_bos=hf.add_bos, end_ids=ids)  # fmt: skip
                quantize_with_llama_cpp(f16, path, quant)
                f16.unlink()
            summary["seconds"]["gguf"] = round(time.perf_counter() - start, 1)
            summary["checks"]["gguf_read_back"] = check_read_back(path, hf)
            summary["files"]["gguf"] = f"gguf/{path.name}"
        system = _persona(layout)
        say("model card")
        if "ollama" in formats:
            from train.export.ollama import modelfile

            (stage / "ollama").mkdir()
            text = modelfile(f"../gguf/{gguf_name(quant)}", hf.parts, [t for t, _ in hf.end_tokens], system)
            (stage / "ollama" / "Modelfile").write_text(text, encoding="utf-8")
            summary["files"]["ollama"] = "ollama/Modelfile"
        if "hf" in formats:
            summary["files"]["hf"] = "hf"
        else:
            shutil.rmtree(hf.folder)  # written only as the GGUF's source
        summary["sizes_mb"] = {f: round(_size(stage / p) / 2**20, 1) for f, p in summary["files"].items()}
        _write_card(stage, layout, model_dir, summary, system)
        (stage / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        _swap_in(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return ExportResult(target, summary)


def check_read_back(path: Path, hf) -> dict:
    """The GGUF as a runtime reads it agrees with the HF folder: chat template, BOS/EOS ids, add_bos."""
    from transformers import AutoTokenizer

    back = read_back(path)
    tokenizer = AutoTokenizer.from_pretrained(str(hf.folder))
    want = {
        "architecture": "llama",
        "chat_template": tokenizer.chat_template,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": hf.end_tokens[0][1],
        "add_bos_token": hf.add_bos,
    }
    wrong = {k: (back[k], v) for k, v in want.items() if back[k] != v}
    if wrong:
        raise TrainError(f"{path.name} read back differs from the HF folder: {wrong}")
    return {k: back[k] for k in ("bos_token_id", "eos_token_id", "add_bos_token", "pre", "tensors", "types")}


def _persona(layout: RunLayout) -> str | None:
    try:
        behaviours = json.loads((layout.dataset / "behaviours.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (behaviours.get("persona") or {}).get("system") or None


def _write_card(stage: Path, layout: RunLayout, model_dir: Path, summary: dict, system: str | None) -> None:
    from train.export.card import model_card, read_json

    training = read_json(layout.training_summary) or {}
    recipe_path = layout.dataset / "recipe.resolved.yaml"
    data_licence = None
    if recipe_path.is_file():
        import yaml

        data_licence = (yaml.safe_load(recipe_path.read_text(encoding="utf-8")) or {}).get("license")
    from train.base_models import NAMED

    base = str(training.get("model") or "unknown")
    named = NAMED.get(base)
    text = model_card(
        name=layout.root.name,
        run_dir=layout.root,
        base=named.hub_id if named else base,
        licence=named.license if named else None,
        data_licence=data_licence,
        files=summary["files"],
        system=system,
        eval_report=read_json(layout.eval / "eval.json"),
        training=training,
    )
    (stage / "README.md").write_text(text, encoding="utf-8")


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _check_replaceable(target: Path) -> None:
    if not target.exists():
        return
    summary = target / SUMMARY
    try:
        ours = json.loads(summary.read_text(encoding="utf-8")).get("writer") == WRITER
    except (OSError, ValueError):
        ours = False
    if not ours:
        raise TrainError(
            f"{target} exists and was not written by gristmill export (no {SUMMARY} of ours in it); move it "
            "away or delete it, then export again"
        )


def _recover(root: Path) -> None:
    """A swap a crash interrupted: the old export put back when no export is in place; stale folders removed."""
    olds = sorted(root.glob(f".{EXPORT}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not (root / EXPORT).exists() and olds:
        os.replace(olds.pop(0), root / EXPORT)
    for stale in [*olds, *root.glob(f".{EXPORT}.tmp-*")]:
        shutil.rmtree(stale, ignore_errors=True)


def _swap_in(stage: Path, target: Path) -> None:
    old = target.with_name(f".{EXPORT}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(stage, target)
    shutil.rmtree(old, ignore_errors=True)
