"""LLM client throughput against concurrency, on the loopback OpenAI-protocol server (tests/openai_server.py)
at a fixed latency, in the same process tree. Baseline: the single-request rate (concurrency 1).

    python bench/llm_throughput.py [--latency 0.05] [--max-concurrency 32]
    python bench/llm_throughput.py --llama-server [--max-concurrency 4]

The server runs in its own process (a Python server in the client's process would share its GIL). For each
concurrency c it sends max(40, 8c) distinct requests through the run's client (limiter, retries, no cache) and
prints requests/s, the ratio to c x the single-request rate (target >= 0.9), and the client's own overhead per
request: the wall time per request at concurrency 1 minus the server's latency.

``--llama-server`` measures a real server instead: llama.cpp's (llama-cpp-python, ``pip install
'llama-cpp-python[server]'``) serving the SmolLM2-135M GGUF on 2 threads, 8 short requests per concurrency of
at most 16 new tokens each. It decodes one request at a time, so the ratio shows what concurrency buys there
(the client's queueing, not the server's parallelism).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _serve(latency: float, queue) -> None:
    from tests.openai_server import FakeOpenAI

    server = FakeOpenAI(latency=latency).start()
    queue.put(server.base_url)
    server.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--max-concurrency", type=int, default=32)
    parser.add_argument("--llama-server", action="store_true", help="measure llama.cpp's server with SmolLM2")
    args = parser.parse_args()
    if args.llama_server:
        return llama_server(min(args.max_concurrency, 8))

    import multiprocessing

    from rich.console import Console
    from rich.table import Table

    from curate.llm.runtime import LLMRuntime
    from curate.recipe import LLMSection

    queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(args.latency, queue), daemon=True)
    server.start()
    base_url = queue.get(timeout=30)
    os.environ["GRISTMILL_BENCH_KEY"] = "bench"
    table = Table("concurrency", "requests", "requests/s", "x single rate", "target 0.9 x c")
    single_rate = overhead = None
    c = 1
    while c <= args.max_concurrency:
        settings = LLMSection(base_url=base_url, model="bench", api_key_env="GRISTMILL_BENCH_KEY",
                              max_concurrency=c, cache=False)  # fmt: skip
        n = max(40, 8 * c)
        rt = LLMRuntime(settings, None, 0)
        rt.client  # noqa: B018  (connect outside the timing)
        start = time.perf_counter()
        rt.map(lambda i, client=rt.client: client.chat([{"role": "user", "content": f"request {i}"}]), range(n))
        wall = time.perf_counter() - start
        rt.close()
        rate = n / wall
        if c == 1:
            single_rate, overhead = rate, wall / n - args.latency
        ratio = rate / (c * single_rate)
        table.add_row(str(c), str(n), f"{rate:.1f}", f"{ratio:.2f}", "ok" if ratio >= 0.9 else "missed")
        c *= 2
    server.terminate()
    console = Console()
    console.print(table)
    console.print(f"client overhead per request at concurrency 1: {overhead * 1000:.2f} ms (latency {args.latency}s)")


ASK = "Name one thing to pack for a camping trip."


def llama_server(max_concurrency: int) -> None:
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from curate.llm.runtime import LLMRuntime
    from curate.recipe import LLMSection
    from tests.llama_server import LlamaServer
    from train.base_models import base_gguf

    os.environ["GRISTMILL_BENCH_KEY"] = "bench"
    with tempfile.TemporaryDirectory() as tmp:
        server = LlamaServer(base_gguf("smollm2-135m", print), Path(tmp) / "server.log")
        server.start()
        try:
            table = Table("concurrency", "requests", "requests/s", "x single rate", title="llama.cpp server, SmolLM2")
            single, c = None, 1
            while c <= max_concurrency:
                settings = LLMSection(base_url=server.base_url, model="smollm2", api_key_env="GRISTMILL_BENCH_KEY",
                                      max_concurrency=c, cache=False, max_tokens=16, timeout_s=120)  # fmt: skip
                n = 8
                rt = LLMRuntime(settings, None, 0)
                rt.client  # noqa: B018
                start = time.perf_counter()
                rt.map(lambda i, client=rt.client: client.chat([{"role": "user", "content": f"{i}. {ASK}"}]), range(n))
                rate = n / (time.perf_counter() - start)
                rt.close()
                single = single or rate
                table.add_row(str(c), str(n), f"{rate:.2f}", f"{rate / single:.2f}")
                c *= 2
        finally:
            server.kill()
    Console().print(table)


if __name__ == "__main__":
    main()
