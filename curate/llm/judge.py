"""The LLM decline judge (``eval.judge: llm``): each (request, answer) pair labelled refused, abstained or
answered (and partial) through the recipe's ``llm`` endpoint, with the ``prompt.judge_decline`` rubric (a
template, so a team can write its own). Answers are cached by the LLM client's request cache: re-judging the same
answers sends nothing. A pair the endpoint fails to judge comes back as its LLMError; evaluation then falls back
to the rule detector for it and says how many.
"""

from __future__ import annotations

from typing import Any

from curate.errors import LLMError

VERDICT = {
    "type": "object",
    "properties": {
        "outcome": {"enum": ["refused", "abstained", "answered"]},
        "partial": {"type": "boolean"},
        "reason": {"type": "string"},
    },
    "required": ["outcome", "partial"],
}
RUBRIC = "prompt.judge_decline"


def judge_answers(runtime, templates: dict[str, Any], pairs: list[tuple[str, str]]) -> list[dict[str, Any] | LLMError]:
    """{outcome, partial, reason} per (request, answer) pair, or the LLMError of a pair that could not be judged."""
    from curate.templating import Renderer

    spec, renderer = templates[RUBRIC], Renderer()

    async def one(pair: tuple[str, str]) -> dict[str, Any]:
        turns = renderer.render(spec, {"prompt": pair[0], "answer": pair[1]})
        messages = [{"role": "system", "content": turns["system"]}, {"role": "user", "content": turns["user"]}]
        return (await runtime.client.chat_json(messages, VERDICT, "verdict")).value

    return runtime.map(one, pairs)
