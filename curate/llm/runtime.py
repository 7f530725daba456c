"""The run's LLM client, owned by the driver process: one event loop in a background thread, so synchronous
stages and generators submit coroutines to the same client, limiter, budget and cache for the whole run.

The pipeline opens one runtime before the stages run, hands it to the LLM stages (their context) and
generators (``GenerateContext.llm``), and closes it at the end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from curate.errors import LLMError
from curate.llm.client import LLMClient

T = TypeVar("T")


class LLMRuntime:
    def __init__(self, settings, cache_path: Path | None, seed: int, templates=None, client_class=LLMClient):
        self.settings, self.cache_path, self.seed = settings, cache_path, seed
        self.templates = templates or {}
        self.client_class = client_class  # LLMClient, or the dry run's client that sends nothing
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gristmill-llm", daemon=True)
        self._thread.start()
        self._client: LLMClient | None = None

    @property
    def client(self) -> LLMClient:
        if self._client is None:  # built on first use: a recipe without LLM steps never needs a key
            self._client = self.client_class(self.settings, self.cache_path, seed=self.seed)
        return self._client

    def usage(self) -> dict[str, Any]:
        """The client's usage so far; empty when no LLM step asked for the client."""
        return self._client.usage.as_dict() if self._client is not None else {}

    def run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def map(self, fn: Callable[[Any], Awaitable[T]], items: Iterable[Any]) -> list[T | LLMError]:
        """``fn`` over ``items`` concurrently (the client's limits apply); a failed item gives its LLMError."""

        async def one(item):
            try:
                return await fn(item)
            except LLMError as err:
                return err

        async def gather(items):
            return await asyncio.gather(*(one(item) for item in items))

        self.client  # noqa: B018  (fail on a missing key here, before any request)
        return self.run(gather(list(items)))

    def __enter__(self) -> LLMRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._client is not None:
            self.run(self._client.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


def open_runtime(
    settings, cache_path: Path | None, seed: int, templates: dict[str, Any], client_class=LLMClient
) -> LLMRuntime:
    """The run's LLM runtime; the caller closes it (it is a context manager)."""
    return LLMRuntime(settings, cache_path, seed, templates, client_class)
