"""label.llm: labels from an LLM judge, written to ``labels.llm``: a topic from the user's list, the audience,
the sensitivity, and quality 1-5 with a rationale. It never judges a row out; ``select.threshold`` applies
thresholds afterwards (``{field: labels.llm.quality, op: ">=", value: 3}``). A row whose call still fails after
the client's retries goes to rejects as ``llm_failed`` with the error: a row without its labels cannot be
selected on.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field

from curate.llm.client import failure_reason
from curate.rows import REJECT_DETAIL, REJECT_REASON, dumps
from curate.stages.registry import Batch, register

AUDIENCES = ["customer", "employee", "partner", "general"]
SENSITIVITY = ["public", "internal", "confidential", "restricted"]


class LabelLLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topics: list[str] = Field(default_factory=list, description="Topics to choose from ('other' is added).")
    template: str = Field("prompt.label", description="The judge's prompt template (kind prompt).")
    max_chars: int = Field(6000, ge=100, description="Text beyond this many characters is cut from the prompt.")


def label_schema(topics: list[str]) -> dict:
    return {
        "type": "object",
        "properties": {
            "topic": {"enum": [*topics, "other"]},
            "audience": {"enum": AUDIENCES},
            "sensitivity": {"enum": SENSITIVITY},
            "quality": {"type": "integer", "minimum": 1, "maximum": 5},
            "rationale": {"type": "string"},
        },
        "required": ["topic", "audience", "sensitivity", "quality", "rationale"],
        "additionalProperties": False,
    }


@register("label.llm", version=1, config=LabelLLMConfig, uses_llm=True)
def label_llm(batch: Batch, config: LabelLLMConfig, context) -> Batch:
    """Topic, audience, sensitivity and quality 1-5 with a rationale from an LLM judge, into labels.llm."""
    from curate.templating import Renderer, prompt_messages, prompt_template

    rt = context.llm
    spec = prompt_template(rt.templates, config.template, {"title", "section", "text", "topics"})
    renderer, schema = Renderer(), label_schema(config.topics)
    requests = [
        prompt_messages(
            renderer, spec, {"title": t, "section": s, "text": x[: config.max_chars], "topics": config.topics}
        )
        for t, s, x in zip(batch["title"], batch["section"], batch["text"], strict=True)
    ]
    answers = rt.map(lambda messages: rt.client.chat_json(messages, schema, "labels"), requests)
    labels, reasons, details = [], [], []
    for existing, answer in zip(batch["labels"], answers, strict=True):
        merged = json.loads(existing or "{}")
        if isinstance(answer, Exception):
            reasons.append(failure_reason(answer))
            details.append(str(answer))
        else:
            merged["llm"] = {**answer.value, "model": rt.settings.model, "template": spec.ref}
            reasons.append("")
            details.append("")
        labels.append(dumps(merged))
    return {**batch, "labels": labels, REJECT_REASON: reasons, REJECT_DETAIL: details}
