"""LLM-backed generation: a writer prompt asks the LLM for JSON (question/answer pairs, a summary, a rewrite),
then every candidate goes to a grounding judge that receives the source text. The judge answers whether the
response is faithful (with an evidence quote) and whether the question stands on its own; the quote must really
occur in the source. Failures are rejects with the judge's reason; calls that fail after their retries are
``llm_failed`` rejects. Every example records its model, writer and judge templates and the verdict in ``meta``.

Prompts are templates of kind ``prompt`` (templates/prompt/), so users override them like any template.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from curate.llm.client import failure_reason
from curate.templating import Renderer, prompt_messages, prompt_template

JUDGE_SCHEMA = {
    "type": "object",
    "properties": {
        "faithful": {"type": "boolean"},
        "evidence": {"type": "string"},
        "standalone": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["faithful", "evidence", "standalone", "reason"],
    "additionalProperties": False,
}
JUDGE_VARIABLES = {"source", "question", "answer"}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u2019", "'")).strip().lower()


def evidence_found(quote: str, source: str) -> bool:
    """The judge's quote occurs in the source (whitespace, case and apostrophes normalised; at least 3 words)."""
    quote = _norm(quote).strip(" .\"'")
    return len(quote.split()) >= 3 and quote in _norm(source)


def write_and_judge(
    ctx,
    kind: str,
    config,
    items: list[dict[str, Any]],
    *,
    writer: str,
    writer_variables: set[str],
    schema: dict[str, Any],
    to_pairs: Callable[[dict[str, Any], Any], list[tuple[str, str, dict[str, Any]]]],
    judge: str = "prompt.judge_grounding",
) -> list[dict[str, Any]]:
    """For each item ``{variables, source, source_ids, group, meta}``: the writer's JSON answer, turned into
    (user, assistant, extra meta) triples by ``to_pairs(item, value)``, each kept only when the judge passes it."""
    rt = ctx.llm
    renderer = Renderer()
    write_spec = prompt_template(ctx.templates, writer, writer_variables)
    judge_spec = prompt_template(ctx.templates, judge, JUDGE_VARIABLES)
    requests = [prompt_messages(renderer, write_spec, item["variables"]) for item in items]
    ctx.llm_rows += len(requests)
    written = rt.map(lambda messages: rt.client.chat_json(messages, schema, kind), requests)
    candidates = []
    for item, answer in zip(items, written, strict=True):
        if isinstance(answer, Exception):
            ctx.reject(kind, failure_reason(answer), f"{item['label']}: {answer}", id=item["label"])
            continue
        candidates += [(item, user, assistant, extra) for user, assistant, extra in to_pairs(item, answer.value)]
    judge_requests = [
        prompt_messages(renderer, judge_spec, {"source": item["source"], "question": user, "answer": assistant})
        for item, user, assistant, _ in candidates
    ]
    ctx.llm_rows += len(judge_requests)
    verdicts = rt.map(lambda messages: rt.client.chat_json(messages, JUDGE_SCHEMA, "verdict"), judge_requests)
    out = []
    for (item, user, assistant, extra), verdict in zip(candidates, verdicts, strict=True):
        label = f"{item['label']}: {user[:80]!r}"
        if isinstance(verdict, Exception):
            ctx.reject(kind, failure_reason(verdict), f"{label}: judge: {verdict}", id=item["label"])
            continue
        v = verdict.value
        problems = []
        if not v["faithful"]:
            problems.append("not faithful to the source")
        elif not evidence_found(v["evidence"], item["source"]):
            problems.append(f"the evidence quote {v['evidence'][:80]!r} is not in the source")
        if not v["standalone"]:
            problems.append("the question does not stand on its own")
        if problems:
            ctx.reject(
                kind, "judge_rejected", f"{label}: {'; '.join(problems)} (judge: {v['reason']})", id=item["label"]
            )
            continue
        meta = {
            **item.get("meta", {}),
            **extra,
            "model": rt.settings.model,
            "writer": write_spec.ref,
            "judge": {"template": judge_spec.ref, **v},
        }
        example = ctx.llm_example(kind, user, assistant, item["source_ids"], item["group"], write_spec.ref, meta)
        out.append(example)
    return out


def rewrite_answers(
    ctx,
    kind: str,
    config,
    examples: list[dict[str, Any]],
    *,
    writer: str,
    writer_variables: set[str],
    variables: Callable[[dict[str, Any]], dict[str, Any]],
    source: Callable[[dict[str, Any]], str],
    field: str,
) -> list[dict[str, Any]]:
    """Template examples whose answers the LLM rewrites (a summary, the persona's voice), each rewrite judged
    against ``source(example)``; the user turn stays the template's."""
    import json

    items = [
        {
            "label": ex["id"],
            "variables": variables(ex),
            "source": source(ex),
            "source_ids": ex["source_ids"],
            "group": ex["group"],
            "meta": json.loads(ex["meta"] or "{}"),
            "user": next(m["content"] for m in ex["messages"] if m["role"] == "user"),
        }
        for ex in examples
    ]
    schema = {"type": "object", "properties": {field: {"type": "string", "minLength": 1}}, "required": [field]}
    return write_and_judge(
        ctx,
        kind,
        config,
        items,
        writer=writer,
        writer_variables=writer_variables,
        schema=schema,
        to_pairs=lambda item, value: [(item["user"], value[field], {})],
    )
