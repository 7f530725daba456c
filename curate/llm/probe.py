"""``gristmill llm check``: probe an endpoint before a run spends anything on it.

It sends a handful of tiny requests (a few tokens each) and reports: whether chat completions work and their
latency, whether JSON object mode (``response_format: json_object``) and JSON-schema output
(``response_format: json_schema``) are accepted and honoured, and the highest concurrency, doubling from 1 up
to a ceiling, at which every request of a burst succeeded (no 429, no 5xx, no timeout), with the burst's
throughput. The recommended ``json_mode`` follows from what worked.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from curate.errors import RecipeError

PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


async def _call(sdk, model: str, **kwargs) -> tuple[bool, float, str]:
    start = time.perf_counter()
    try:
        response = await sdk.chat.completions.create(model=model, max_tokens=20, temperature=0, **kwargs)
        content = response.choices[0].message.content or ""
        return True, time.perf_counter() - start, content
    except Exception as err:  # reported, not raised: a probe says what does not work
        status = getattr(err, "status_code", None)
        return False, time.perf_counter() - start, f"HTTP {status}" if status else type(err).__name__


def _json_ok(content: str) -> bool:
    from jsonschema.validators import validator_for

    try:
        return validator_for(PROBE_SCHEMA)(PROBE_SCHEMA).is_valid(json.loads(content))
    except ValueError:
        return False


async def probe(settings, ceiling: int = 32) -> dict[str, Any]:
    from openai import AsyncOpenAI

    key = os.environ.get(settings.api_key_env)
    if not settings.base_url or not settings.model:
        raise RecipeError("llm check needs llm.base_url and llm.model (in the recipe, or --base-url and --model)")
    if key is None:
        raise RecipeError(f"the environment variable {settings.api_key_env} is not set; export the API key there")
    sdk = AsyncOpenAI(base_url=settings.base_url, api_key=key, max_retries=0, timeout=settings.timeout_s)
    ask = [{"role": "user", "content": 'Reply with the JSON object {"ok": true} and nothing else.'}]
    report: dict[str, Any] = {"base_url": settings.base_url, "model": settings.model}
    try:
        ok, latency, detail = await _call(sdk, settings.model, messages=ask)
        report["chat"] = {"ok": ok, "latency_s": round(latency, 3), "detail": detail[:80]}
        if not ok:
            return report
        ok, _, detail = await _call(sdk, settings.model, messages=ask, response_format={"type": "json_object"})
        report["json_object"] = {"ok": ok and _json_ok(detail), "detail": detail[:80]}
        fmt = {"type": "json_schema", "json_schema": {"name": "probe", "schema": PROBE_SCHEMA, "strict": True}}
        ok, _, detail = await _call(sdk, settings.model, messages=ask, response_format=fmt)
        report["json_schema"] = {"ok": ok and _json_ok(detail), "detail": detail[:80]}
        best, bursts, n = 0, [], 1
        while n <= ceiling:
            start = time.perf_counter()
            results = await asyncio.gather(*(_call(sdk, settings.model, messages=ask) for _ in range(n)))
            wall = time.perf_counter() - start
            failures = [d for ok, _, d in results if not ok]
            bursts.append({"concurrency": n, "ok": not failures, "requests_per_s": round(n / wall, 2),
                           "failures": failures[:3]})  # fmt: skip
            if failures:
                break
            best, n = n, n * 2
        report["concurrency"] = {"highest_ok": best, "bursts": bursts}
        report["recommended_json_mode"] = (
            "schema" if report["json_schema"]["ok"] else "object" if report["json_object"]["ok"] else "prompt"
        )
    finally:
        await sdk.close()
    return report
