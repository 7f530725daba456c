"""llama.cpp's OpenAI-compatible server (llama-cpp-python's ``python -m llama_cpp.server``) on a free loopback
port, for tests/test_llama_server.py and bench/llm_throughput.py: started with a GGUF, ready once ``/v1/models``
answers, killed with its process group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


class LlamaServer:
    def __init__(self, gguf: Path, log: Path, alias: str = "smollm2", chat_format: str | None = "chatml"):
        """``chat_format`` None: the server renders chats with the GGUF's own ``tokenizer.chat_template``."""
        self.gguf, self.log, self.alias, self.chat_format = gguf, log, alias, chat_format
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, timeout: float = 180) -> None:
        cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--model_alias", self.alias,
               "--host", "127.0.0.1", "--port", str(self.port), "--n_threads", "2", "--n_ctx", "4096",
               *(["--chat_format", self.chat_format] if self.chat_format else [])]  # fmt: skip
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"no /v1/models within {timeout}s: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
