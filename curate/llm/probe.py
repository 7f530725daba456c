"""``gristmill llm check``: probe an endpoint before a run spends anything on it.

It sends a handful of tiny requests (a few tokens each) and reports: whether chat completions work and their
latency; which JSON forms the endpoint accepts and honours: JSON object mode (``response_format:
json_object``), a JSON schema in OpenAI's form (``json_schema``) and in llama.cpp's (``json_object`` with a
``schema``), a schema counting as honoured only when the answer follows a schema the prompt never shows; and
the highest concurrency, doubling from 1 up to a ceiling, at which every request of a burst succeeded (no 429,
no 5xx, no timeout), with the burst's throughput. The recommended ``json_mode`` follows from what worked, and
is recorded in the user cache for the endpoint and model, where ``json_mode: auto`` finds it.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from curate.errors import RecipeError
from curate.llm.client import record_json_mode, redact_url

PROBE_SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}
# A schema the prompt does not spell out: only a server that constrains the output to it gets this right.
HIDDEN_SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": ["red", "green"]}, "count": {"type": "integer"}},
    "required": ["colour", "count"],
    "additionalProperties": False,
}


async def _call(sdk, model: str, max_tokens: int = 20, **kwargs) -> tuple[bool, float, str]:
    start = time.perf_counter()
    try:
        response = await sdk.chat.completions.create(model=model, max_tokens=max_tokens, temperature=0, **kwargs)
        content = response.choices[0].message.content or ""
        return True, time.perf_counter() - start, content
    except Exception as err:  # reported, not raised: a probe says what does not work
        status = getattr(err, "status_code", None)
        return False, time.perf_counter() - start, f"HTTP {status}" if status else type(err).__name__


def _json_ok(content: str, schema: dict[str, Any] | None = PROBE_SCHEMA) -> bool:
    """Whether ``content`` is a JSON object (valid against ``schema`` when one is given)."""
    from jsonschema.validators import validator_for

    try:
        value = json.loads(content)
    except ValueError:
        return False
    return isinstance(value, dict) and (schema is None or validator_for(schema)(schema).is_valid(value))


async def probe(settings, ceiling: int = 32) -> dict[str, Any]:
    from openai import AsyncOpenAI

    key = os.environ.get(settings.api_key_env)
    if not settings.base_url or not settings.model:
        raise RecipeError("llm check needs llm.base_url and llm.model (in the recipe, or --base-url and --model)")
    if key is None:
        raise RecipeError(f"the environment variable {settings.api_key_env} is not set; export the API key there")
    sdk = AsyncOpenAI(base_url=settings.base_url, api_key=key, max_retries=0, timeout=settings.timeout_s)
    ask = [{"role": "user", "content": 'Reply with the JSON object {"ok": true} and nothing else.'}]
    report: dict[str, Any] = {"base_url": redact_url(settings.base_url), "model": settings.model}
    try:
        ok, latency, detail = await _call(sdk, settings.model, messages=ask)
        report["chat"] = {"ok": ok, "latency_s": round(latency, 3), "detail": detail[:80]}
        if not ok:
            return report
        ok, _, detail = await _call(sdk, settings.model, messages=ask, response_format={"type": "json_object"})
        report["json_object"] = {"ok": ok and _json_ok(detail, None), "detail": detail[:80]}
        hidden = [{"role": "user", "content": "Describe a traffic light as a JSON object."}]
        forms = {
            "json_schema": {"type": "json_schema", "json_schema": {"name": "probe", "schema": HIDDEN_SCHEMA}},
            "json_object_schema": {"type": "json_object", "schema": HIDDEN_SCHEMA},
        }
        for name, fmt in forms.items():
            ok, _, detail = await _call(sdk, settings.model, messages=hidden, response_format=fmt, max_tokens=40)
            report[name] = {"ok": ok and _json_ok(detail, HIDDEN_SCHEMA), "accepted": ok, "detail": detail[:80]}
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
        modes = {"schema": "json_schema", "object_schema": "json_object_schema", "object": "json_object"}
        report["recommended_json_mode"] = next((m for m, check in modes.items() if report[check]["ok"]), "prompt")
        record_json_mode(settings.base_url, settings.model, report["recommended_json_mode"])
    finally:
        await sdk.close()
    return report
