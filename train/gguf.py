"""A GGUF file (llama.cpp's format) as an ordinary model folder that ``from_pretrained`` loads and
``save_pretrained`` writes, for offline bases shipped as files rather than through a model hub.

transformers reads GGUF through the ``gguf`` package: it dequantizes every tensor to float32 and undoes
llama.cpp's q/k permutation. A model loaded that way refuses ``save_pretrained`` (it carries a quantization
config), so the weights are moved into a plain model of the same class and config, built on the meta device
and given the loaded tensors themselves (``assign=True``: one float32 copy in memory, not two), and saved as
safetensors with the tokenizer. The folder is keyed by the file's sha256, written to a temporary folder and
renamed, under a file lock: two processes converting the same file at once convert it once, and a killed
conversion leaves no half folder behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from curate.errors import TrainError

SOURCE_FILE = "gristmill-source.json"  # in a converted folder: the GGUF's name and sha256


class ShaMismatch(TrainError):
    """A GGUF whose content is not the one expected; the caller knows where it came from, so it names the fix."""


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def converted_folder(models_dir: Path, sha256: str) -> Path:
    return models_dir / sha256[:16]


def is_converted(folder: Path) -> bool:
    return (folder / SOURCE_FILE).is_file()


def convert_gguf(
    gguf_path: Path,
    models_dir: Path,
    *,
    sha256: str | None = None,
    expected_sha256: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> Path:
    """The model folder for ``gguf_path`` under ``models_dir``, converting it on first use.

    ``sha256`` is the file's digest when already known; ``expected_sha256`` makes any other content an error
    (a truncated download, a different file under the right name)."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise TrainError(f"GGUF file {gguf_path} does not exist; give the path of a .gguf model file")
    digest = sha256 or sha256_file(gguf_path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ShaMismatch(
            f"{gguf_path} has sha256 {digest}, not the expected {expected_sha256}: the file is damaged or a "
            "different one"
        )
    folder = converted_folder(models_dir, digest)
    if is_converted(folder):
        return folder
    models_dir.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(models_dir / f".{digest[:16]}.lock"):  # a second process waits here, then finds the folder done
        if is_converted(folder):
            return folder
        for stale in models_dir.glob(f".{digest[:16]}.tmp-*"):  # left by a killed conversion
            shutil.rmtree(stale, ignore_errors=True)
        if notify is not None:
            notify(f"converting {gguf_path.name} to a model folder (once; {folder})")
        start = time.perf_counter()
        tmp = models_dir / f".{digest[:16]}.tmp-{os.getpid()}"
        try:
            _convert(gguf_path, tmp)
            source = {"gguf": gguf_path.name, "sha256": digest, "seconds": round(time.perf_counter() - start, 1)}
            (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return folder


def _convert(gguf_path: Path, out: Path) -> None:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    transformers.utils.logging.disable_progress_bar()
    quiet = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF reader's own tqdm bar: progress is the caller's job
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    except Exception as err:  # the gguf reader raises many types on damaged files
        raise TrainError(
            f"cannot read {gguf_path} as a GGUF model ({type(err).__name__}: {err}); the file is damaged or "
            "truncated, or its architecture is one transformers cannot load from GGUF (Llama-family works)"
        ) from None
    finally:
        if quiet is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = quiet
    import torch

    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.dtype = "float32"
    with torch.device("meta"):  # the same architecture without the GGUF quantization config, and no weights
        plain = type(loaded)(config)
    plain.load_state_dict(loaded.state_dict(), assign=True)  # the loaded tensors themselves: one float32 copy
    plain.tie_weights()
    plain.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
