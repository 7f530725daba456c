"""``LLMClient``: chat completions against any OpenAI-compatible endpoint, safe to point at a cheap tier.

One ``AsyncOpenAI`` (its own retries off: ours honour Retry-After and are counted) behind:

- a semaphore (``max_concurrency`` requests in flight);
- token buckets for requests and tokens per minute (``rpm``, ``tpm``; tokens estimated at 4 characters each
  plus ``max_tokens`` before the call, corrected by the reported usage after it);
- retries on 429, 5xx, timeouts and connection errors: exponential backoff with full jitter, at least the
  server's Retry-After, up to ``max_retries``; other 4xx are not retried, nor a 5xx whose body is a
  request-validation error (llama.cpp's server answers a request it cannot parse with HTTP 500);
- the request cache (cache.py), read before and written after every call; a hit costs nothing;
- usage and cost per model (prices from the recipe, or the ``usage.cost`` an endpoint reports), and a budget:
  a request holds its worst-case cost until it is settled, waits (with no slot) while other holds may still
  settle lower, and is refused (``BudgetExceeded``, a ``budget_exhausted`` reject that the next run retries)
  only when it cannot fit with nothing held: the spend stays within ``budget_usd`` plus one request's estimate;
- JSON output: ``response_format`` with the JSON schema in OpenAI's form (``json_mode: schema``), JSON object
  mode carrying the schema as llama.cpp's servers take it (``object_schema``), plain JSON object mode
  (``object``), or only the instruction in the prompt (``prompt``); ``auto`` uses what ``gristmill llm check``
  recorded for the endpoint. A form the server refuses falls back to the next one for the rest of the run,
  with a note in the usage. The answer is always parsed and validated with jsonschema, and an invalid one gets
  up to ``json_repair_attempts`` repair turns that show the model its own answer and the validation error.

The API key is read from the environment variable the recipe names, passed to the SDK, and never logged,
cached or written anywhere.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import BudgetExceeded, InvalidJSON, LLMError, RecipeError, RequestRejected
from curate.layout import user_cache, write_atomic
from curate.llm.cache import RequestCache, request_key
from curate.text import strip_fence

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
# JSON modes, each falling back to the next when the server refuses its response_format.
JSON_FALLBACK = {"schema": "object_schema", "object_schema": "object", "object": "prompt"}
# A 5xx body in these words is the server's request validation (FastAPI/pydantic, llama.cpp), not an outage.
_VALIDATION_WORDS = ("validation error", "input should be", "field required", "extra inputs", "unprocessable")
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "grammar")


def estimate_tokens(text: str) -> int:
    """About 4 characters per token (English text with BPE vocabularies); used before a call is made."""
    return max(1, len(text) // 4)


class TokenBucket:
    """``per_minute`` units, refilled continuously, with bursts of at most one second's worth (so a cheap tier's
    per-minute limit is never hit in the first seconds). ``take`` waits until the bucket holds the amount, or is
    full when the amount is more than a second's worth: such a request goes through and leaves the bucket in
    debt, which later requests wait out, so the rate holds for large requests too. ``charge`` and ``refund``
    correct an estimate once the real usage is known."""

    def __init__(self, per_minute: float | None):
        self.rate = per_minute / 60.0 if per_minute else None
        self.capacity = max(1.0, (per_minute or 0) / 60.0)
        self.level = self.capacity
        self.stamp = time.monotonic()
        self.lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    async def take(self, amount: float) -> None:
        if self.rate is None:
            return
        async with self.lock:  # first come, first served
            while True:
                self._refill()
                needed = min(amount, self.capacity)
                if self.level >= needed:
                    self.level -= amount  # may go below zero: debt
                    return
                await asyncio.sleep((needed - self.level) / self.rate)

    def refund(self, amount: float) -> None:
        if self.rate is not None and amount > 0:
            self._refill()
            self.level = min(self.capacity, self.level + amount)

    def charge(self, amount: float) -> None:
        if self.rate is not None and amount > 0:
            self._refill()
            self.level -= amount


@dataclass
class Usage:
    requests: int = 0  # sent to the server (retries included)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    failures: int = 0
    budget_refused: int = 0  # requests never sent: they could not fit in llm.budget_usd
    retries: int = 0
    free_repairs: int = 0  # answers json-repair fixed (a trailing comma, single quotes, a cut-off object)
    paid_repairs: int = 0  # repair turns sent to the model
    by_model: dict[str, dict[str, float]] = field(default_factory=dict)
    json_mode: str = ""  # the JSON mode requests used last (after any fallback)
    notes: list[str] = field(default_factory=list)  # what a person should know (a JSON mode the server refused)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "cache_hits": self.cache_hits,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": round(self.cost_usd, 6),
            "failures": self.failures,
            "budget_refused": self.budget_refused,
            "retries": self.retries,
            "free_repairs": self.free_repairs,
            "paid_repairs": self.paid_repairs,
            "by_model": self.by_model,
            **({"json_mode": self.json_mode} if self.json_mode else {}),
            **({"notes": self.notes} if self.notes else {}),
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
        self._sdk = AsyncOpenAI(
            base_url=settings.base_url,
            api_key=key,
            max_retries=0,
            timeout=settings.timeout_s,
            http_client=capped_http_client(settings.max_response_bytes, settings.timeout_s),
        )
        self.cache = RequestCache(cache_path) if cache_path is not None and settings.cache else None
        self.usage = Usage()
        self._semaphore: asyncio.Semaphore | None = None
        self._requests = self._tokens = None
        self._reserved = 0.0  # the estimated cost of the requests in flight, held against the budget
        self._holders = 0  # how many requests hold a part of it
        self._settled: asyncio.Condition | None = None  # notified whenever a hold is released
        self._dearest_reported = 0.0  # the highest usage.cost an endpoint reported for one response

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
        params = {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens, "seed": self.seed}
        if getattr(self.settings, "extra_body", None):  # the SDK merges it into the request's JSON body
            params["extra_body"] = dict(self.settings.extra_body)
        return {**params, **extra}

    async def _reserve(self, estimate: float) -> None:
        """Hold ``estimate`` (the request's worst case: its prompt and ``max_tokens`` of answer) against the budget
        until the request is settled. When spent plus held plus this would pass the budget, wait while other
        requests hold estimates (they usually settle lower, freeing room); with nothing held, refuse only this
        request (``BudgetExceeded``): a smaller one may still fit, and a later run with a larger budget goes on.
        A waiting request holds no concurrency slot, so a holder that must retry always gets one."""
        budget = self.settings.budget_usd
        if budget is None:
            return
        if self._settled is None:
            self._settled = asyncio.Condition()
        async with self._settled:
            while self.usage.cost_usd + self._reserved + estimate > budget:
                if not self._holders:
                    self._refuse_unless_fits(estimate)
                await self._settled.wait()
            self._reserved += estimate
            self._holders += 1

    def _refuse_unless_fits(self, estimate: float) -> None:
        budget = self.settings.budget_usd
        if budget is not None and self.usage.cost_usd + self._reserved + estimate > budget:
            self.usage.budget_refused += 1
            raise BudgetExceeded(
                f"budget llm.budget_usd={budget} reached: spent {self.usage.cost_usd:.4f} USD, and this "
                f"request may cost up to {estimate:.4f} USD; raise the budget and run again to send it"
            )

    async def _release(self, estimate: float) -> None:
        """Settle a hold (the request's real cost is accounted by now) and wake the requests waiting for room."""
        if self._settled is None or not self._holders:
            return
        async with self._settled:
            self._holders -= 1
            # Counted, not inferred from the sum: float sums leave a residue that would keep waiters waiting.
            self._reserved = self._reserved - estimate if self._holders else 0.0
            self._settled.notify_all()

    async def chat(self, messages: list[dict[str, str]], **extra: Any) -> Answer:
        """One chat completion (from the cache when this exact request was answered before)."""
        model = self.settings.model
        params = self._params(extra)
        key = request_key(model, messages, params, base_url=self.settings.base_url)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.usage.cache_hits += 1
            return Answer(hit["content"], True, hit["prompt_tokens"], hit["completion_tokens"])
        prompt_estimate = sum(estimate_tokens(m["content"]) for m in messages)
        estimate = self.estimate_cost(prompt_estimate, params["max_tokens"])
        semaphore, requests, tokens = self._limits()
        expected = prompt_estimate + params["max_tokens"]
        last_error = "no attempt"
        # With no price for the model (the endpoint reports usage.cost), the dearest response so far stands in.
        held = estimate or self._dearest_reported
        await self._reserve(held)  # held until the request is settled, retries included
        try:
            for attempt in range(self.settings.max_retries + 1):
                await requests.take(1)
                await tokens.take(expected)
                async with semaphore:
                    if not held:  # no price: the cost of the dearest response so far, known by now, must fit
                        self._refuse_unless_fits(self._dearest_reported)
                    self.usage.requests += 1
                    try:
                        response = await asyncio.wait_for(
                            self._sdk.chat.completions.create(model=model, messages=messages, **params),
                            timeout=self.settings.request_deadline_s,
                        )
                    except Exception as err:  # classified below; anything else is not retried
                        retry_after, last_error, refused = _classify(err, self.settings.request_deadline_s)
                        if retry_after is None:
                            self.usage.failures += 1
                            raise (RequestRejected if refused else LLMError)(last_error) from None
                        retry_after = min(retry_after, self.settings.max_retry_after_s)
                    else:
                        content, p_tok, c_tok, cost = _read_response(response)
                        if content is None:
                            last_error, retry_after = "the server sent a response with no message content", 0.0
                        else:
                            # No usage in the response: estimate it from the text, so the budget still counts it.
                            p_tok, c_tok = p_tok or prompt_estimate, c_tok or estimate_tokens(content)
                            used = p_tok + c_tok
                            tokens.refund(expected - used)
                            tokens.charge(used - expected)
                            self._account(model, p_tok, c_tok, cost)
                            if self.cache is not None:
                                self.cache.put(key, model, content, p_tok, c_tok)
                            return Answer(content, False, p_tok, c_tok)
                if attempt == self.settings.max_retries:
                    break
                self.usage.retries += 1
                backoff = min(self.settings.backoff_max_s, self.settings.backoff_base_s * 2**attempt)
                await asyncio.sleep(max(retry_after, random.uniform(0, backoff)))
        finally:
            await self._release(held)
        self.usage.failures += 1
        raise LLMError(f"failed after {self.settings.max_retries + 1} attempts: {last_error}")

    def _account(self, model: str, prompt_tokens: int, completion_tokens: int, reported: float | None = None) -> None:
        """Count a response: its cost as the endpoint reported it (``usage.cost``, as OpenRouter sends), else
        from ``llm.prices``."""
        cost = reported if reported is not None else self.estimate_cost(prompt_tokens, completion_tokens, model)
        self._dearest_reported = max(self._dearest_reported, reported or 0.0)
        self.usage.prompt_tokens += prompt_tokens
        self.usage.completion_tokens += completion_tokens
        self.usage.cost_usd += cost
        entry = self.usage.by_model.setdefault(model, {"prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0})
        entry["prompt_tokens"] += prompt_tokens
        entry["completion_tokens"] += completion_tokens
        entry["cost_usd"] = round(entry["cost_usd"] + cost, 6)

    async def chat_json(self, messages: list[dict[str, str]], schema: dict[str, Any], name: str = "answer") -> Answer:
        """A JSON answer that validates against ``schema`` (response_format where configured, always checked).
        An answer that is not JSON first goes through json-repair (free: a trailing comma, single quotes, an object
        cut off); only then, up to ``json_repair_attempts`` repair turns show the model its answer and the error.
        The stored value is what was parsed, re-serialised. InvalidJSON when it never validates."""
        from jsonschema.validators import validator_for

        validator = validator_for(schema)(schema)
        problem = ""
        convo = with_json_instruction(messages, schema)
        for attempt in range(self.settings.json_repair_attempts + 1):
            answer = await self._json_call(convo, schema, name)
            value, problem, repaired = _parse_json(answer.content)
            if value is not None:
                errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
                if not errors:
                    self.usage.free_repairs += repaired
                    answer.value = value
                    answer.content = json.dumps(value, ensure_ascii=False)
                    return answer
                where = "/".join(str(p) for p in errors[0].path) or "(root)"
                problem = f"does not validate against the schema at {where}: {errors[0].message}"
            if attempt < self.settings.json_repair_attempts:
                self.usage.paid_repairs += 1
                convo = [
                    *convo,
                    {"role": "assistant", "content": answer.content},
                    {"role": "user", "content": f"Your answer {problem}. Reply again with only the corrected JSON."},
                ]
        raise InvalidJSON(f"the answer {problem} (after {self.settings.json_repair_attempts} repair attempts)")

    async def _json_call(self, convo: list[dict[str, str]], schema: dict[str, Any], name: str) -> Answer:
        """One JSON request in the run's JSON mode; when the server refuses that mode's response_format, the
        next mode (JSON_FALLBACK) for this and every later request, with a note in the usage."""
        while True:
            mode = self.json_mode
            try:
                return await self.chat(convo, **response_format(schema, name, mode))
            except RequestRejected as err:
                if mode not in JSON_FALLBACK or not any(w in str(err).lower() for w in _FORMAT_WORDS):
                    raise
                if self.json_mode == mode:  # a request in flight may have moved the run on already
                    self.json_mode = JSON_FALLBACK[mode]
                    self.usage.notes.append(
                        f"the endpoint refused json_mode {mode!r} ({str(err)[:160]}); using "
                        f"{self.json_mode!r} for the rest of the run"
                    )

    @property
    def json_mode(self) -> str:
        if not self.usage.json_mode:
            self.usage.json_mode = initial_json_mode(self.settings)
        return self.usage.json_mode

    @json_mode.setter
    def json_mode(self, mode: str) -> None:
        self.usage.json_mode = mode

    async def aclose(self) -> None:
        await self._sdk.close()
        if self.cache is not None:
            self.cache.close()


# Reject reasons of rows whose LLM call failed or was never sent: the next run retries them, and
# llm.max_failure_ratio counts them.
LLM_RETRIED = ("llm_failed", "budget_exhausted")


def failure_reason(err: Exception) -> str:
    """The reject reason of a row whose LLM call failed: ``budget_exhausted`` (never sent: the budget was spent),
    ``schema_invalid`` (the answer never validated), else ``llm_failed`` (what llm.max_failure_ratio counts)."""
    if isinstance(err, BudgetExceeded):
        return "budget_exhausted"
    return "schema_invalid" if isinstance(err, InvalidJSON) else "llm_failed"


def _record_path() -> Path:
    """Where `gristmill llm check` records the JSON mode each endpoint and model honours."""
    return user_cache() / "probes" / "llm-json-modes.json"


def endpoint_key(base_url: str | None, model: str | None) -> str:
    return f"{redact_url(base_url or '')} {model or ''}"


def recorded_json_mode(base_url: str | None, model: str | None) -> str | None:
    """The json_mode ``gristmill llm check`` recommended for this endpoint and model, if it ran."""
    try:
        records = json.loads(_record_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    found = records.get(endpoint_key(base_url, model))
    return found.get("json_mode") if isinstance(found, dict) else None


def record_json_mode(base_url: str | None, model: str | None, mode: str) -> None:
    path = _record_path()
    try:
        records = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        records = {}
    records[endpoint_key(base_url, model)] = {"json_mode": mode, "checked": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_atomic(path, json.dumps(records, indent=2, sort_keys=True))


def initial_json_mode(settings) -> str:
    """The JSON mode a run starts in: the recipe's, with ``auto`` resolved to what ``gristmill llm check``
    recorded for the endpoint and model, else ``schema`` (falling back from there when refused)."""
    if settings.json_mode != "auto":
        return settings.json_mode
    return recorded_json_mode(settings.base_url, settings.model) or "schema"


def response_format(schema: dict[str, Any], name: str, mode: str) -> dict[str, Any]:
    """The extra request parameters of a JSON call in ``mode`` (none for ``prompt``)."""
    if mode == "schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
    if mode == "object_schema":  # llama.cpp (its server and llama-cpp-python's) constrain output to the schema
        return {"response_format": {"type": "json_object", "schema": schema}}
    if mode == "object":
        return {"response_format": {"type": "json_object"}}
    return {}


def with_json_instruction(messages: list[dict[str, str]], schema: dict[str, Any]) -> list[dict[str, str]]:
    """The messages with the JSON instruction (and the schema) appended to the last one: sent in every mode,
    since a server may ignore response_format without saying so."""
    instruction = (
        "Answer with one JSON object only, no prose and no code fence, that validates against this JSON "
        f"Schema:\n{json.dumps(schema, ensure_ascii=False)}"
    )
    last = messages[-1]
    return [*messages[:-1], {"role": last["role"], "content": last["content"] + "\n\n" + instruction}]


def json_request(
    messages: list[dict[str, str]], schema: dict[str, Any], name: str, mode: str
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """(messages with the JSON instruction, extra request parameters) for a JSON call."""
    return with_json_instruction(messages, schema), response_format(schema, name, mode)


def _parse_json(text: str) -> tuple[Any, str, bool]:
    """(value or None, the problem, whether json-repair was needed)."""
    stripped = strip_fence(text)
    try:
        return json.loads(stripped), "", False
    except ValueError as err:
        problem = f"not valid JSON: {err}"
    from json_repair import repair_json

    try:
        value = repair_json(stripped, return_objects=True)
    except Exception:  # json-repair gives up on some input: then the model is asked
        return None, problem, False
    if isinstance(value, (dict, list)) and value:
        return value, "", True
    return None, problem, False


def _read_response(response) -> tuple[str | None, int, int, float | None]:
    """(content, prompt tokens, completion tokens, the cost the endpoint reported in ``usage.cost`` or None)."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None, 0, 0, None
    usage = getattr(response, "usage", None)
    cost = getattr(usage, "cost", None) if usage is not None else None
    try:
        cost = float(cost) if cost is not None and float(cost) >= 0 else None
    except (TypeError, ValueError):
        cost = None
    prompt, completion = getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)
    return content, int(prompt or 0), int(completion or 0), cost


def _classify(err: Exception, deadline: float | None = None) -> tuple[float | None, str, bool]:
    """(seconds to wait at least before retrying, or None when not retryable; a description without secrets;
    whether the server refused the request itself, a 4xx or a 5xx request-validation error)."""
    import openai

    if isinstance(err, asyncio.TimeoutError):
        return 0.0, f"no complete response within llm.request_deadline_s={deadline}", False
    if isinstance(err, ResponseTooLarge):
        return None, str(err), False
    if isinstance(err, openai.APITimeoutError):
        return 0.0, "timed out", False
    if isinstance(err, openai.APIConnectionError):
        return 0.0, f"connection error: {type(err.__cause__ or err).__name__}", False
    if isinstance(err, openai.APIStatusError):
        status = err.status_code
        description = f"HTTP {status}"
        message = f"{err.message} {_body_text(err)}"
        if status >= 500 and any(w in message.lower() for w in _VALIDATION_WORDS):
            return None, f"{description}, a request-validation error (not retried): {message[:300]}", True
        if status in RETRY_STATUS or status >= 500:
            header = err.response.headers.get("retry-after") if err.response is not None else None
            try:
                wait = float(header) if header else 0.0
            except ValueError:
                wait = 0.0
            wait = 0.0 if math.isnan(wait) or wait < 0 else wait  # inf stays, for max_retry_after_s to clamp
            return wait, description, False
        return None, f"{description} (not retried): {message[:300]}", True
    if isinstance(err, (json.JSONDecodeError, ValueError)):  # a body that is not JSON
        return 0.0, f"malformed response: {type(err).__name__}", False
    return None, f"{type(err).__name__}: {str(err)[:200]}", False


def _body_text(err) -> str:
    """The error response's body as text (the SDK's message may leave the details out)."""
    body = getattr(err, "body", None)
    if body is None and getattr(err, "response", None) is not None:
        try:
            return err.response.text[:2000]
        except Exception:  # a streamed body that cannot be read again
            return ""
    return json.dumps(body)[:2000] if not isinstance(body, str) else body[:2000]


class ResponseTooLarge(Exception):
    """A response body longer than llm.max_response_bytes (never retried)."""


def capped_http_client(max_bytes: int, timeout: float):
    """The SDK's HTTP client with a cap on every response body: a server (or a proxy) that streams without end
    is cut off at ``max_bytes`` instead of filling memory."""
    try:  # the HTTP library the installed openai SDK is built on: httpx2 (openai 3), httpx before
        import httpx2 as httpx
    except ImportError:
        import httpx

    class CappedStream(httpx.AsyncByteStream):
        def __init__(self, stream):
            self.stream, self.read = stream, 0

        async def __aiter__(self):
            async for chunk in self.stream:
                self.read += len(chunk)
                if self.read > max_bytes:
                    raise ResponseTooLarge(f"response over llm.max_response_bytes={max_bytes}")
                yield chunk

        async def aclose(self):
            await self.stream.aclose()

    class CappedTransport(httpx.AsyncHTTPTransport):
        async def handle_async_request(self, request):
            response = await super().handle_async_request(request)
            length = response.headers.get("content-length")
            if length and length.isdigit() and int(length) > max_bytes:
                await response.aclose()
                raise ResponseTooLarge(f"response of {length} bytes, over llm.max_response_bytes={max_bytes}")
            response.stream = CappedStream(response.stream)
            return response

    return httpx.AsyncClient(transport=CappedTransport(), timeout=timeout)


def redact_url(url: str | None) -> str | None:
    """``url`` without credentials or a query string, for anything written or shown (resolved recipe, dry run,
    llm check, messages): ``https://user:pass@host/v1?key=...`` becomes ``https://***@host/v1?***``."""
    if not url:
        return url
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    if parts.username or parts.password:
        netloc = "***@" + netloc
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))
