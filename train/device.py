"""What the CPU can do, found by trying rather than by reading flags.

bfloat16 autocast halves the memory traffic of every matrix product and, on CPUs with bf16 instructions (AMX,
AVX-512-BF16), runs them natively: measured on SmolLM2-135M with LoRA on a 2-core AVX-512-BF16 machine, a
training step 1.55x and greedy generation 1.6x faster than float32. But a virtual machine can advertise AMX and
trap its instructions, which kills the process with SIGILL, and a CPU without the instructions emulates bf16
slowly. So bf16 is used only when the CPU reports bf16 support and a short probe (a small Llama block's forward
and backward pass under autocast, against float32, in a subprocess) exits cleanly. A SIGILL or wrong numbers
mean float32, kept in the user cache, keyed by the CPU's flags and the torch version; a timeout or a kill (a
loaded machine, the OOM killer) means float32 this time only, and the probe runs again next time.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from functools import cache
from pathlib import Path

BF16_FLAGS = ("amx_bf16", "avx512_bf16")

# The probe: one small Llama block (attention, RMSNorm, rotary, SwiGLU), forward and backward under bf16
# autocast, checked against float32. Exit 3: the numbers are wrong (a broken emulation); a SIGILL: a trapped
# instruction. Only those two say "no bf16" for good.
PROBE = """
import sys, torch
from transformers import LlamaConfig, LlamaForCausalLM
torch.manual_seed(0)
config = LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=172, num_hidden_layers=1,
                     num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
model = LlamaForCausalLM(config)
ids = torch.randint(0, 256, (2, 32))
with torch.no_grad():
    reference = model(input_ids=ids, labels=ids).loss.item()
with torch.autocast("cpu", dtype=torch.bfloat16):
    loss = model(input_ids=ids, labels=ids).loss
loss.backward()
finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
if not finite or abs(loss.item() - reference) > 0.05 * abs(reference):
    print(f"bf16 loss {loss.item():.4f} against float32 {reference:.4f}, finite gradients {finite}")
    sys.exit(NUMERICS)
"""
NUMERICS = 3  # the probe's exit code for wrong numbers
SIGILL = -4  # subprocess's return code for a process killed by SIGILL
PROBE_TIMEOUT_S = 300


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

    key = hashlib.sha256(" ".join(sorted(flags)).encode() + torch.__version__.encode() + PROBE.encode()).hexdigest()
    key = key[:16]
    record = user_cache() / "probes" / f"cpu-bf16-{key}.json"
    if record.is_file():
        return bool(json.loads(record.read_text())["ok"])
    verdict = _run_probe()
    if verdict is None:  # killed, timed out or crashed otherwise (a loaded machine): try again next time
        return False
    write_atomic(
        record, json.dumps({"ok": verdict, "flags": sorted(flags & set(BF16_FLAGS)), "torch": torch.__version__})
    )
    return verdict


def _run_probe() -> bool | None:
    """True: bf16 works; False: a trapped instruction or wrong numbers (kept); None: no answer this time (an
    OOM kill, a timeout, an error that is not the CPU's), so nothing is kept."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", PROBE.replace("NUMERICS", str(NUMERICS))],
            capture_output=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode == 0:
        return True
    if done.returncode in (SIGILL, NUMERICS):
        return False
    return None


def autocast_dtype():
    """The dtype to autocast to on this machine (CUDA with bf16, or a CPU that passed the probe), or None."""
    import torch

    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_bf16() else None
