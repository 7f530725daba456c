"""Choosing the chat template a model trains with: assistant-only loss needs ``{% generation %}`` markers.

1. The tokenizer's own template has the markers: it is used as it is.
2. TRL knows the template and has a training version of it (``get_training_chat_template``): TRL's is used.
3. Otherwise, or without any template: the bundled ChatML template below, with markers around each assistant
   turn and its end-of-turn token, so the model learns to stop. Missing ChatML tokens are added and the
   embeddings resized; the choice is reported so nobody is surprised by it.
"""

from __future__ import annotations

from dataclasses import dataclass

IM_START, IM_END = "<|im_start|>", "<|im_end|>"

CHATML_WITH_GENERATION = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{% generation %}{{- message['content'] + '<|im_end|>' }}{% endgeneration %}{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class TemplateChoice:
    source: str  # "tokenizer" | "trl" | "bundled-chatml"
    added_tokens: int = 0

    @property
    def message(self) -> str:
        return {
            "tokenizer": "the tokenizer's chat template (it has {% generation %} markers)",
            "trl": "TRL's training version of the tokenizer's chat template",
            "bundled-chatml": f"gristmill's ChatML template with generation markers (+{self.added_tokens} tokens)",
        }[self.source]


def ensure_training_template(tokenizer, model=None) -> TemplateChoice:
    """Give ``tokenizer`` a chat template with generation markers (in place); resize ``model`` if tokens are added."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    if template and has_generation_markers(template):
        return TemplateChoice("tokenizer")
    if template:
        try:
            patched = get_training_chat_template(tokenizer)
        except (ValueError, TypeError, NotImplementedError):
            patched = None
        if patched:
            tokenizer.chat_template = patched
            return TemplateChoice("trl")
    missing = [t for t in (IM_START, IM_END) if t not in tokenizer.get_vocab()]
    added = tokenizer.add_special_tokens({"additional_special_tokens": missing}) if missing else 0
    tokenizer.chat_template = CHATML_WITH_GENERATION
    tokenizer.eos_token = IM_END
    if tokenizer.pad_token is None:
        tokenizer.pad_token = IM_END
    if added and model is not None:
        model.resize_token_embeddings(len(tokenizer))
    return TemplateChoice("bundled-chatml", added)
