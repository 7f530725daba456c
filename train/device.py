"""What the CPU can do, found by trying rather than by reading flags.

bfloat16 autocast halves the memory traffic of every matrix product and, on CPUs with bf16 instructions (AMX,
AVX-512-BF16), runs them natively: measured on SmolLM2-135M with LoRA on a 2-core AVX-512-BF16 machine, a
training step 1.55x and greedy generation 1.6x faster than float32. But a virtual machine can advertise AMX and
trap its instructions, which kills the process with SIGILL, and a CPU without the instructions emulates bf16
slowly. So bf16 is used only when the CPU reports bf16 support and a short probe (a bf16 matrix product and a
backward pass under autocast, in a subprocess) exits cleanly; anything else means float32. The answer is kept in
the user cache, keyed by the CPU's flags and the torch version.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")

PROBE = """
import torch
torch.manual_seed(0)
a = torch.randn(256, 256, requires_grad=True)
b = torch.randn(256, 256)
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = (a @ b).relu().sum()
y.backward()
assert torch.isfinite(a.grad).all()
"""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.partition(":")[2].split())


@cache
def cpu_bf16() -> bool:
    """Whether bf16 autocast is native and safe on this CPU (see the module docstring)."""
    import torch

    flags = cpu_flags()
    if not flags & set(BF16_FLAGS):
        return False
    from curate.layout import user_cache, write_atomic

    key = hashlib.sha256(" ".join(sorted(flags)).encode() + torch.__version__.encode()).hexdigest()[:16]
    record = user_cache() / "probes" / f"cpu-bf16-{key}.json"
    if record.is_file():
        return bool(json.loads(record.read_text())["ok"])
    try:
        done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, timeout=120)
        ok = done.returncode == 0  # -4: SIGILL, an instruction the VM traps
    except subprocess.TimeoutExpired:
        ok = False
    write_atomic(record, json.dumps({"ok": ok, "flags": sorted(flags & set(BF16_FLAGS)), "torch": torch.__version__}))
    return ok


def autocast_dtype():
    """The dtype to autocast to on this machine (CUDA with bf16, or a CPU that passed the probe), or None."""
    import torch

    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_bf16() else None
