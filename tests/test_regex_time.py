"""The patterns that read untrusted text run in linear time: each on about 5 KB and 50 KB of the input that made
it backtrack (a heading followed by thousands of spaces, URL-encoded text, PEM headers without an end), in a
subprocess with a timeout, best of 3: the larger may take at most 15x as long (linear is 10x)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = r"""
import json, sys, time
sys.path.insert(0, REPO)
from curate.text import markdown_blocks
from curate.readers.text import read_markdown
from curate.stages.pii import PIIConfig, scrub
from pathlib import Path

config = PIIConfig()
CASES = {
    "heading then spaces": (lambda n: markdown_blocks("# Title" + " " * n + "x"), ),
    "h1 title then spaces": (lambda n: list(read_markdown(Path("a.md"), ("# Title" + " " * n + "x").encode())), ),
    "rule-like line": (lambda n: markdown_blocks("-" + " " * n + "x"), ),
    "url-encoded text": (lambda n: scrub("https://example.com/?q=" + "%20" * (n // 3), config), ),
    "url-encoded words": (lambda n: scrub("a%20b" * (n // 5), config), ),
    "private key headers, no end": (lambda n: scrub("-----BEGIN PRIVATE KEY-----\nabc\n" * (n // 32), config), ),
    "digit groups": (lambda n: scrub("12 34 " * (n // 6), config), ),
    "hex colons": (lambda n: scrub("ab:" * (n // 3) + "zz", config), ),
    "dotted words": (lambda n: scrub("a." * (n // 2) + "@", config), ),
    "password assignments": (lambda n: scrub("password= " * (n // 10), config), ),
    "bearer words": (lambda n: scrub("Bearer " * (n // 7), config), ),
    "dashes and digits": (lambda n: scrub("1-" * (n // 2), config), ),
}
out = {}
for name, (fn,) in CASES.items():
    times = []
    for n in (5_000, 50_000):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            fn(n)
            best = min(best, time.perf_counter() - start)
        times.append(best)
    out[name] = times
print(json.dumps(out))
"""


def test_untrusted_text_patterns_run_in_linear_time():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("REPO", repr(str(REPO)))], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    times = json.loads(done.stdout)
    slow = {
        name: f"{small * 1000:.1f} ms -> {large * 1000:.1f} ms"
        for name, (small, large) in times.items()
        if large > 15 * max(small, 2e-4)  # under 0.2 ms the clock's noise is the measurement
    }
    assert not slow, slow
