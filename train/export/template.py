"""The chat template a model trained with, as the runtimes that serve it need it.

Training templates carry ``{% generation %}`` markers (for assistant-only loss, chat_template.py); vLLM's and
llama.cpp's template engines do not know the tag, so the serving template is the training one without them,
and is checked to render every test conversation byte for byte as the training template did.

``ChatParts`` reads a template as per-message pieces (a prefix and a suffix per role, and the generation
prompt), by rendering conversations with sentinel contents. It is what Ollama's Go template is built from and
what names the end-of-turn token; a template that is not a plain concatenation of its messages (one that
injects a default system prompt, or renders a message by its position) is refused with the reason, since no
per-message translation of it would be faithful.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from curate.errors import TrainError

GENERATION_TAG = re.compile(r"\{%-?\s*(?:end)?generation\s*-?%\}")
ROLES = ("system", "user", "assistant")

# Conversations every export renders with both templates (and the Ollama test with Go): first turns, several
# turns, no system prompt, Unicode, a newline at the end of a message, an empty assistant turn.
CONVERSATIONS = [
    [{"role": "system", "content": "You are Ada."}, {"role": "user", "content": "How do I return a tent?"}],
    [
        {"role": "system", "content": "You are Ada, Acme's assistant.\nBe brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Rückgabe in 30 Tagen? 返品は"},
    ],
    [{"role": "user", "content": "Summarise:\n\n- one\n- two\n"}],
    [
        {"role": "user", "content": "Extract the ticket as JSON."},
        {"role": "assistant", "content": '{"ticket_id": "T-1"}'},
        {"role": "user", "content": ""},
    ],
]


def serving_template(training_template: str) -> str:
    return GENERATION_TAG.sub("", training_template)


def render(tokenizer, template: str, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(
        messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
    )


def check_serving_template(tokenizer, training: str, serving: str) -> None:
    """The serving template renders every conversation (with and without the generation prompt) as the training
    template does; else a TrainError naming the first difference."""
    for messages in CONVERSATIONS:
        for gen in (True, False):
            want, got = render(tokenizer, training, messages, gen), render(tokenizer, serving, messages, gen)
            if want != got:
                pairs = enumerate(zip(want, got, strict=False))
                at = next((i for i, (a, b) in pairs if a != b), min(len(want), len(got)))
                raise TrainError(
                    f"the chat template without its generation markers renders differently from the training one "
                    f"at character {at} ({want[at : at + 40]!r} vs {got[at : at + 40]!r}); the template's whitespace "
                    "control depends on the markers: keep {% generation %} tags free of '-' trims"
                )


@dataclass(frozen=True)
class ChatParts:
    prefix: dict[str, str]  # role -> the text before a message's content
    suffix: dict[str, str]  # role -> the text after it
    generation_prompt: str  # what add_generation_prompt appends
    bos_in_template: bool  # the template writes the BOS token itself (a runtime must not add another)

    @property
    def end_of_turn(self) -> str:
        """The assistant's end text, stripped of trailing whitespace: ``<|im_end|>`` for ChatML."""
        return self.suffix["assistant"].rstrip()

    def render(self, messages: list[dict], add_generation_prompt: bool) -> str:
        out = "".join(self.prefix[m["role"]] + m["content"] + self.suffix[m["role"]] for m in messages)
        return out + (self.generation_prompt if add_generation_prompt else "")


def chat_parts(tokenizer, template: str) -> ChatParts:
    """The per-role pieces of ``template``, checked to reproduce it on CONVERSATIONS; TrainError if it is not a
    per-message template."""
    bos = tokenizer.bos_token or ""

    def rendered(messages: list[dict], gen: bool = False) -> str:
        try:
            return render(tokenizer, template, messages, gen)
        except Exception as err:  # jinja raises many types: a template that refuses a system turn, say
            raise TrainError(f"the chat template cannot render {[m['role'] for m in messages]} ({err})") from None

    # a template that writes the BOS token names it (Llama 3's "{{ bos_token }}"); SmolLM2's BOS is <|im_start|>,
    # which every ChatML turn starts with, so the rendered text alone cannot tell
    probe = rendered([{"role": "user", "content": "x"}])
    bos_in_template = bool(bos) and "bos_token" in template and probe.startswith(bos)

    def text(messages: list[dict], gen: bool = False) -> str:
        out = rendered(messages, gen)
        return out.removeprefix(bos) if bos_in_template else out

    prefix, suffix = {}, {}
    for role in ROLES:
        before = [{"role": "user", "content": "Hi"}] if role == "assistant" else []
        content = f"GRISTMILL-{role}-7F3A"
        head, whole = text(before) if before else "", text([*before, {"role": role, "content": content}])
        if not whole.startswith(head) or whole[len(head) :].count(content) != 1:
            raise TrainError(f"the chat template does not write a {role} message after the ones before it")
        prefix[role], _, suffix[role] = whole[len(head) :].partition(content)
    user = [{"role": "user", "content": "Hi"}]
    parts = ChatParts(prefix, suffix, text(user, True)[len(text(user)) :], bos_in_template)
    for messages in CONVERSATIONS:  # the pieces reproduce the template itself, or it is not per-message
        for gen in (True, False):
            if parts.render(messages, gen) != text(messages, gen):
                raise TrainError(
                    "the chat template is not a plain concatenation of its messages (it adds a default system "
                    "prompt, or renders a message by its position), so it cannot be translated message by message"
                )
    return parts
