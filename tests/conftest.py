"""Shared fixtures. Expensive things (a curated sample run) are built once per session and shared."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# The user cache (base models, baseline generations) of this test session: never the user's own.
os.environ["GRISTMILL_CACHE"] = tempfile.mkdtemp(prefix="gristmill-test-cache-")
atexit.register(shutil.rmtree, os.environ["GRISTMILL_CACHE"], True)

REPO = Path(__file__).resolve().parent.parent
SAMPLE_RECIPE = REPO / "sample_data" / "recipe.yaml"
# The sample recipe fine-tunes SmolLM2 (minutes); tests train the tiny offline model on the same data (seconds).
TINY_TRAIN = ["train.model=tiny", "train.lora=null"]
# The sample recipe's learning rate is SmolLM2's; the from-scratch tiny model learns at its own (TINY_SFT).
FAST = ["sft.max_steps=12", "sft.logging_steps=2", "sft.save_steps=6", "eval_split=null", "sft.learning_rate=1e-3"]


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
        recipe = load_recipe("sample_data/recipe.yaml", TINY_TRAIN)
        result = curate(recipe)
    finally:
        os.chdir(cwd)
    return result, recipe


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def fake_openai():
    """A loopback server speaking the OpenAI chat-completions protocol (tests/openai_server.py)."""
    from tests.openai_server import FakeOpenAI

    server = FakeOpenAI().start()
    yield server
    server.stop()


FAKE_KEY = "sk-test-SECRET-d0-not-leak-4242"


def llm_settings(server, **overrides):
    """The recipe's llm section for ``server``, with the test key in the environment, and quick retries."""
    from curate.recipe import LLMSection

    os.environ["GRISTMILL_TEST_KEY"] = FAKE_KEY
    base = {"base_url": server.base_url, "model": "fake-model", "api_key_env": "GRISTMILL_TEST_KEY"}
    base.update(backoff_base_s=0.01, backoff_max_s=0.05, timeout_s=5)
    return LLMSection(**{**base, **overrides})


@pytest.fixture
def llm_runtime(fake_openai, tmp_path):
    """An open LLM runtime on the fake server (closed afterwards)."""
    from curate.llm.runtime import open_runtime
    from curate.templating import load_templates

    with open_runtime(llm_settings(fake_openai), tmp_path / "llm_cache.sqlite", 0, load_templates()) as runtime:
        yield runtime


def label_answer(body) -> str:
    """A valid label.llm answer that depends only on the request's text (deterministic, batch-independent)."""
    import hashlib
    import json

    text = body["messages"][-1]["content"]
    digest = int(hashlib.sha256(text.encode()).hexdigest(), 16)
    return json.dumps(
        {"topic": "other", "audience": "customer", "sensitivity": "public", "quality": 1 + digest % 5,
         "rationale": "test"}
    )  # fmt: skip


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


@pytest.fixture(scope="session")
def trained(sample_run, tmp_path_factory):
    """The tiny model trained 12 steps on the sample (a TrainResult), once for the session."""
    require("trl")
    from train.sft import train_model

    result, _ = sample_run
    out = tmp_path_factory.mktemp("model")
    return train_model(result.dataset_dir, [*FAST, f"output_dir={out}"])
