"""The LLM layer: one async client on the ``openai`` SDK for any OpenAI-compatible endpoint, owned by the driver
process, so one limiter, one budget and one request cache govern the whole run.

- ``client.py``: ``LLMClient`` (bounded concurrency, requests- and tokens-per-minute token buckets, retries
  with exponential backoff and jitter that honour Retry-After, JSON output validated with jsonschema and a
  bounded repair retry, usage and cost accounting, a budget cap);
- ``cache.py``: the on-disk request cache (SQLite in WAL mode), written as each response arrives;
- ``runtime.py``: the run's client, built from the recipe's ``llm`` section by the pipeline;
- ``probe.py``: ``gristmill llm check``.
"""
