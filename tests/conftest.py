"""Shared fixtures. Expensive things (a curated sample run) are built once per session and shared."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RECIPE = REPO / "sample_data" / "recipe.yaml"


def require(module: str):
    """Import ``module``; skip without it locally, but fail under CI=true (CI must run every test)."""
    if os.environ.get("CI", "").lower() == "true":
        return __import__(module)
    return pytest.importorskip(module)


@pytest.fixture(scope="session")
def sample_workspace(tmp_path_factory) -> Path:
    """A copy of sample_data in a temporary working directory (recipes read paths from the cwd)."""
    root = tmp_path_factory.mktemp("workspace")
    shutil.copytree(REPO / "sample_data", root / "sample_data")
    return root


@pytest.fixture(scope="session")
def sample_run(sample_workspace):
    """The sample recipe curated once for the whole session: (CurateResult, recipe)."""
    from curate.pipeline import curate
    from curate.recipe import load_recipe

    cwd = os.getcwd()
    os.chdir(sample_workspace)
    try:
        recipe = load_recipe("sample_data/recipe.yaml")
        result = curate(recipe)
    finally:
        os.chdir(cwd)
    return result, recipe


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _hypothesis_profiles() -> None:
    """CI runs the property tests derandomized, so a run is reproducible; locally they explore new inputs."""
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
    if os.environ.get("CI", "").lower() == "true":
        settings.load_profile("ci")


_hypothesis_profiles()
