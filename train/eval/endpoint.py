"""The endpoint backend: the same items answered by any OpenAI-compatible server (llama.cpp, vLLM, Ollama, a
hosted API), through the project's one LLM client (curate.llm): its request cache, concurrency and rate limits,
budget and retries. Greedy (temperature 0), each item with its kind's token budget.

A re-run sends nothing (every answer is in the cache, ``<user cache>/eval-endpoints.sqlite``); a request that
failed after its retries fails the evaluation with the count, and the next run sends only those again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from curate.errors import TrainError
from curate.layout import user_cache


def endpoint_cache() -> Path:
    return user_cache() / "eval-endpoints.sqlite"


def generate_via_endpoint(
    settings,
    prompts: dict[str, tuple[list[dict[str, str]], int]],
    *,
    on_batch: Callable[[int], None] | None = None,
    cache_path: Path | None = None,
) -> dict[str, str]:
    """{prompt id: answer} for ``prompts`` ({id: (messages, budget)}) from the endpoint ``settings`` describes
    (an ``llm`` recipe section: base_url, model, api_key_env, limits, budget)."""
    from curate.errors import LLMError
    from curate.llm.runtime import open_runtime

    ids = sorted(prompts)

    async def ask(pid: str) -> str:
        messages, budget = prompts[pid]
        answer = await runtime.client.chat(messages, max_tokens=budget, temperature=0.0)
        if on_batch:
            on_batch(1)
        return answer.content.strip()

    with open_runtime(settings, cache_path or endpoint_cache(), seed=0, templates={}) as runtime:
        answers = runtime.map(ask, ids)
    failed = [(pid, a) for pid, a in zip(ids, answers, strict=True) if isinstance(a, LLMError)]
    if failed:
        raise TrainError(
            f"{len(failed)} of {len(ids)} requests to {settings.base_url} ({settings.model}) failed after retries, "
            f"first: {failed[0][1]}; answered requests are cached, so running the same eval again sends only these"
        )
    return dict(zip(ids, answers, strict=True))
