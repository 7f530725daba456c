"""``LLMClient``: chat completions against any OpenAI-compatible endpoint, safe to point at a cheap tier.

One ``AsyncOpenAI`` (its own retries off: ours honour Retry-After and are counted) behind:

- a semaphore (``max_concurrency`` requests in flight);
- token buckets for requests and tokens per minute (``rpm``, ``tpm``; tokens estimated at 4 characters each
  plus ``max_tokens`` before the call, corrected by the reported usage after it);
- retries on 429, 5xx, timeouts and connection errors: exponential backoff with full jitter, at least the
  server's Retry-After, up to ``max_retries``; other 4xx are not retried;
- the request cache (cache.py), read before and written after every call; a hit costs nothing;
- usage and cost per model (prices from the recipe), and a budget: once spent (plus the next call's estimate)
  would pass ``budget_usd``, new calls raise ``BudgetExceeded`` and nothing more is sent;
- JSON output: ``response_format`` with the JSON schema (``json_mode: schema``), JSON object mode
  (``object``), or only the instruction in the prompt (``prompt``); the answer is always parsed and validated
  with jsonschema, and an invalid one gets up to ``json_repair_attempts`` repair turns that show the model
  its own answer and the validation error.

The API key is read from the environment variable the recipe names, passed to the SDK, and never logged,
cached or written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import BudgetExceeded, InvalidJSON, LLMError, RecipeError
from curate.llm.cache import RequestCache, request_key

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def estimate_tokens(text: str) -> int:
    """About 4 characters per token (English text with BPE vocabularies); used before a call is made."""
    return max(1, len(text) // 4)


class TokenBucket:
    """``per_minute`` units, refilled continuously, with bursts of at most one second's worth (so a cheap tier's
    per-minute limit is never hit in the first seconds); ``take`` waits until enough have refilled."""

    def __init__(self, per_minute: float | None):
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = max(1.0, (per_minute or 0) / 60.0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    async def take(self, amount: float) -> None:
        if self.rate is None:
            return
        amount = min(amount, self.capacity)
        async with self.lock:  # first come, first served
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= amount:
                    self.level -= amount
                    return
                await asyncio.sleep((amount - self.level) / self.rate)

    def refund(self, amount: float) -> None:
        if self.rate is not None:
            self.level = min(self.capacity, self.level + amount)


@dataclass
class Usage:
    requests: int = 0  # sent to the server (retries included)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    retries: int = 0
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "failures": self.failures,
            "retries": self.retries,
            "by_model": self.by_model,
        }


@dataclass
class Answer:
    content: str
    cached: bool
    prompt_tokens: int
    completion_tokens: int
    value: Any = None  # the parsed JSON, for json calls


class LLMClient:
    def __init__(self, settings, cache_path: Path | None, *, seed: int = 0):
        from openai import AsyncOpenAI

        if not settings.base_url or not settings.model:
            raise RecipeError("llm.base_url and llm.model are needed for LLM stages and generators; set both")
        key = os.environ.get(settings.api_key_env)
        if key is None:
            raise RecipeError(
                f"the environment variable {settings.api_key_env} (llm.api_key_env) is not set; export the API key "
                "there (a local server without auth takes any value)"
            )
        self.settings = settings
        self.seed = seed
        self._sdk = AsyncOpenAI(base_url=settings.base_url, api_key=key, max_retries=0, timeout=settings.timeout_s)
        self.cache = RequestCache(cache_path) if cache_path is not None and settings.cache else None
        self.usage = Usage()
        self._semaphore: asyncio.Semaphore | None = None
        self._requests = self._tokens = None
        self._in_flight = 0
        self.stopped = False

    # Limiters are created on first use, inside the running event loop.
    def _limits(self):
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.settings.max_concurrency)
            self._requests = TokenBucket(self.settings.rpm)
            self._tokens = TokenBucket(self.settings.tpm)
        return self._semaphore, self._requests, self._tokens

    def _price(self, model: str) -> tuple[float, float]:
        price = self.settings.prices.get(model)
        return (price.input_per_1m, price.output_per_1m) if price else (0.0, 0.0)

    def estimate_cost(self, prompt_tokens: int, completion_tokens: int, model: str | None = None) -> float:
        p_in, p_out = self._price(model or self.settings.model)
        return (prompt_tokens * p_in + completion_tokens * p_out) / 1e6

    def _params(self, extra: dict[str, Any]) -> dict[str, Any]:
        return {
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "seed": self.seed,
            **extra,
        }

    async def chat(self, messages: list[dict[str, str]], **extra: Any) -> Answer:
        """One chat completion (from the cache when this exact request was answered before)."""
        model = self.settings.model
        params = self._params(extra)
        key = request_key(model, messages, params)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.usage.cache_hits += 1
            return Answer(hit["content"], True, hit["prompt_tokens"], hit["completion_tokens"])
        prompt_estimate = sum(estimate_tokens(m["content"]) for m in messages)
        budget = self.settings.budget_usd
        if budget is not None:
            if (
                self.stopped
                or self.usage.cost_usd + self.estimate_cost(prompt_estimate, params["max_tokens"]) > budget
            ):
                self.stopped = True
                raise BudgetExceeded(f"budget llm.budget_usd={budget} reached (spent {self.usage.cost_usd:.4f} USD)")
        semaphore, requests, tokens = self._limits()
        expected = prompt_estimate + params["max_tokens"]
        last_error = "no attempt"
        for attempt in range(self.settings.max_retries + 1):
            await requests.take(1)
            await tokens.take(expected)
            async with semaphore:
                self.usage.requests += 1
                try:
                    response = await self._sdk.chat.completions.create(model=model, messages=messages, **params)
                except Exception as err:  # classified below; anything else is not retried
                    retry_after, last_error = _classify(err)
                    if retry_after is None:
                        self.usage.failures += 1
                        raise LLMError(last_error) from None
                else:
                    content, p_tok, c_tok = _read_response(response)
                    if content is None:
                        last_error, retry_after = "the server sent a response with no message content", 0.0
                    else:
                        tokens.refund(max(0, expected - p_tok - c_tok))
                        self._account(model, p_tok or prompt_estimate, c_tok)
                        if self.cache is not None:
                            self.cache.put(key, model, content, p_tok, c_tok)
                        return Answer(content, False, p_tok, c_tok)
            if attempt == self.settings.max_retries:
                break
            self.usage.retries += 1
            backoff = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
            await asyncio.sleep(max(retry_after, random.uniform(0, backoff)))
        self.usage.failures += 1
        raise LLMError(f"failed after {self.settings.max_retries + 1} attempts: {last_error}")

    def _account(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        cost = self.estimate_cost(prompt_tokens, completion_tokens, model)
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self.usage.cost_usd += cost
        entry = self.usage.by_model.setdefault(model, {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
        entry["prompt_tokens"] += prompt_tokens
        entry["completion_tokens"] += completion_tokens
        entry["cost_usd"] = round(entry["cost_usd"] + cost, 6)

    async def chat_json(self, messages: list[dict[str, str]], schema: dict[str, Any], name: str = "answer") -> Answer:
        """A JSON answer that validates against ``schema`` (response_format where configured, always checked),
        with up to ``json_repair_attempts`` repair turns; InvalidJSON when it never validates."""
        from jsonschema.validators import validator_for

        convo, extra = json_request(messages, schema, name, self.settings.json_mode)
        validator = validator_for(schema)(schema)
        problem = ""
        for attempt in range(self.settings.json_repair_attempts + 1):
            answer = await self.chat(convo, **extra)
            try:
                value = json.loads(_strip_fence(answer.content))
            except ValueError as err:
                problem = f"not valid JSON: {err}"
            else:
                errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
                if not errors:
                    answer.value = value
                    return answer
                where = "/".join(str(p) for p in errors[0].path) or "(root)"
                problem = f"does not validate against the schema at {where}: {errors[0].message}"
            if attempt < self.settings.json_repair_attempts:
                convo = [
                    *convo,
                    {"role": "assistant", "content": answer.content},
                    {"role": "user", "content": f"Your answer {problem}. Reply again with only the corrected JSON."},
                ]
        raise InvalidJSON(f"the answer {problem} (after {self.settings.json_repair_attempts} repair attempts)")

    async def aclose(self) -> None:
        await self._sdk.close()
        if self.cache is not None:
            self.cache.close()


def json_request(
    messages: list[dict[str, str]], schema: dict[str, Any], name: str, mode: str
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """(messages with the JSON instruction appended to the last one, extra request parameters) for a JSON call."""
    extra: dict[str, Any] = {}
    if mode == "schema":
        extra["response_format"] = {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}
    elif mode == "object":
        extra["response_format"] = {"type": "json_object"}
    instruction = (
        "Answer with one JSON object only, no prose and no code fence, that validates against this JSON "
        f"Schema:\n{json.dumps(schema, ensure_ascii=False)}"
    )
    last = messages[-1]
    return [*messages[:-1], {"role": last["role"], "content": last["content"] + "\n\n" + instruction}], extra


def _strip_fence(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()


def _read_response(response) -> tuple[str | None, int, int]:
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None, 0, 0
    usage = getattr(response, "usage", None)
    return content, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)


def _classify(err: Exception) -> tuple[float | None, str]:
    """(seconds to wait at least before retrying, or None when not retryable; a description without secrets)."""
    import openai

    if isinstance(err, openai.APITimeoutError):
        return 0.0, "timed out"
    if isinstance(err, openai.APIConnectionError):
        return 0.0, f"connection error: {type(err.__cause__ or err).__name__}"
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        description = f"HTTP {status}"
        if status in RETRY_STATUS or status >= 500:
            header = err.response.headers.get("retry-after") if err.response is not None else None
            try:
                wait = float(header) if header else 0.0
            except ValueError:
                wait = 0.0
            return wait, description
        return None, f"{description} (not retried): {str(err.message)[:200]}"
    if isinstance(err, (json.JSONDecodeError, ValueError)):  # a body that is not JSON
        return 0.0, f"malformed response: {type(err).__name__}"
    return None, f"{type(err).__name__}: {str(err)[:200]}"
