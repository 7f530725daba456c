"""``gristmill curate --dry-run``'s LLM estimate: the curation runs into a scratch directory with a client that
sends nothing. Each request it would send is looked up in the run's request cache (a hit costs
nothing) and otherwise counted, with its prompt tokens estimated at 4 characters each and its completion at
``max_tokens`` (an upper bound); it answers with the smallest object its schema accepts, so later steps run and
are counted too. Writers asked for lists answer with one item, so judge calls are a lower bound.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.llm.cache import RequestCache, request_key
from curate.llm.client import Answer, Usage, estimate_tokens, initial_json_mode, json_request


def minimal_instance(schema: dict[str, Any]) -> Any:
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind == "object":
        props = schema.get("properties", {})
        return {name: minimal_instance(props.get(name, {})) for name in schema.get("required", list(props))}
    if kind == "array":
        return [minimal_instance(schema.get("items", {})) for _ in range(max(1, schema.get("minItems", 1)))]
    if kind in ("integer", "number"):  # the top of a range passes "at least" thresholds, so later steps run
        return schema.get("maximum", schema.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    return None


@dataclass
class Estimate:
    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class DryRunClient:
    def __init__(self, settings, cache_path: Path | None, seed: int):
        self.settings, self.seed = settings, seed
        self.cache = RequestCache(cache_path) if cache_path is not None and cache_path.is_file() else None
        self.estimate = Estimate()
        self.usage = Usage()  # stays empty: nothing is sent
        self.json_mode = initial_json_mode(settings)

    async def chat(self, messages: list[dict[str, str]], **extra: Any) -> Answer:
        params = {"temperature": self.settings.temperature, "max_tokens": self.settings.max_tokens, "seed": self.seed}
        key = request_key(self.settings.model, messages, {**params, **extra}, base_url=self.settings.base_url)
        if self.cache is not None and self.cache.get(key):
            self.estimate.cache_hits += 1
        else:
            prompt = sum(estimate_tokens(m["content"]) for m in messages)
            price = self.settings.prices.get(self.settings.model)
            self.estimate.requests += 1
            self.estimate.prompt_tokens += prompt
            self.estimate.completion_tokens += params["max_tokens"]
            if price:
                self.estimate.cost_usd += (
                    prompt * price.input_per_1m + params["max_tokens"] * price.output_per_1m
                ) / 1e6
        return Answer("{}", False, 0, 0)

    async def chat_json(self, messages, schema, name: str = "answer") -> Answer:
        convo, extra = json_request(messages, schema, name, self.json_mode)  # the request the client sends
        answer = await self.chat(convo, **extra)
        answer.value = minimal_instance(schema)
        return answer

    async def aclose(self) -> None:
        if self.cache is not None:
            self.cache.close()


def estimate_llm(recipe, limit: int | None = None) -> Estimate:
    """Run the curation into a scratch directory, with a client that sends nothing, and return what the LLM steps
    would send. Finished checkpoints of the real run count as done (read there, never written), and the real
    run's request cache tells which requests would be answered without a call."""
    from curate.errors import GristmillError
    from curate.layout import RunLayout
    from curate.llm.runtime import open_runtime
    from curate.pipeline import curate
    from curate.templating import load_templates

    real = recipe.layout
    scratch = Path(tempfile.mkdtemp(prefix="gristmill-dry-run-"))
    try:
        templates = load_templates(recipe.templates.dirs)
        with open_runtime(recipe.llm, real.llm_cache, recipe.seed, templates, client_class=DryRunClient) as rt:
            try:
                curate(recipe, limit=limit, layout=RunLayout.create(scratch), runtime=rt, reuse=real.steps)
            except GristmillError:
                pass  # an empty or failing result still tells what was asked
            return rt.client.estimate
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
