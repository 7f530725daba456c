"""The patterns that read untrusted text run in linear time: each on 300 KB of the input that made it backtrack (a
heading followed by thousands of spaces, URL-encoded text, PEM headers without an end), in a subprocess under a
timeout far above normal. Linear, the whole takes seconds (about 5 on a 2-core machine); one quadratic pattern
alone needs some 10^11 steps there, hours. No timing ratio: a shared machine's noise cannot fail it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = r"""
import sys
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
for name, (fn,) in CASES.items():
    print(name, flush=True)  # the case running when the timeout strikes is the last one printed
    fn(300_000)
print("done", flush=True)
"""
TIMEOUT_S = 180


def test_untrusted_text_patterns_run_in_linear_time():
    command = [sys.executable, "-c", SCRIPT.replace("REPO", repr(str(REPO)))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        started = (err.stdout or b"").decode().splitlines()
        pytest.fail(f"still running after {TIMEOUT_S} s: {started[-1] if started else 'the first case'} backtracks")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "done"
