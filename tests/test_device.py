"""The bf16 probe: only a trapped instruction or wrong numbers say "no bf16" for good; a kill or a timeout on a
loaded machine is asked again next time (before: any non-zero exit was stored forever)."""

from __future__ import annotations

import json

import pytest

from train import device


@pytest.fixture
def probe(monkeypatch, tmp_path):
    """cpu_bf16 on a CPU that reports bf16, with its own cache, running ``script`` as the probe."""
    monkeypatch.setenv("GRISTMILL_CACHE", str(tmp_path))
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512_bf16", "avx2"})

    def run(script: str) -> tuple[bool, list[dict]]:
        monkeypatch.setattr(device, "PROBE", script)
        device.cpu_bf16.cache_clear()
        verdict = device.cpu_bf16()
        device.cpu_bf16.cache_clear()
        records = [json.loads(p.read_text()) for p in (tmp_path / "probes").glob("*.json")]
        return verdict, records

    yield run
    device.cpu_bf16.cache_clear()


KILLED = "import os, signal; os.kill(os.getpid(), signal.{})"


@pytest.mark.parametrize(
    ("script", "verdict", "kept"),
    [
        (KILLED.format("SIGILL"), False, True),  # an instruction the VM traps: float32 for good
        ("import sys; sys.exit(NUMERICS)", False, True),  # wrong numbers
        (KILLED.format("SIGKILL"), False, False),  # the OOM killer: ask again next time
        ("raise MemoryError", False, False),  # an error that is not the CPU's
        ("pass", True, True),
    ],
)
def test_only_a_trapped_instruction_or_wrong_numbers_are_kept_as_no_bf16(probe, script, verdict, kept):
    got, records = probe(script)
    assert got is verdict
    assert [r["ok"] for r in records] == ([verdict] if kept else [])


def test_a_timed_out_probe_is_asked_again(probe, monkeypatch):
    monkeypatch.setattr(device, "PROBE_TIMEOUT_S", 0.5)
    assert probe("import time; time.sleep(30)") == (False, [])


def test_the_real_probe_runs_a_llama_block_forward_and_backward(probe):
    """On any CPU: the probe script itself is sound (this machine may or may not have bf16)."""
    got, records = probe(device.PROBE)
    assert records == [{"ok": got, "flags": ["avx512_bf16"], "torch": __import__("torch").__version__}]
    assert "LlamaForCausalLM" in device.PROBE and "backward" in device.PROBE
