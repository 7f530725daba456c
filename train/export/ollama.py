"""``export/ollama/Modelfile``: Ollama's recipe for the GGUF, with the chat template translated into Ollama's
Go ``text/template`` (Ollama does not run Jinja; a template it does not recognise is why exported models answer
gibberish there).

The translation is built from the template's per-message pieces (template.ChatParts), which were checked to
reproduce the Jinja template exactly; the Go template writes the same pieces around each of ``.Messages``, adds
the generation prompt after a last message that is not the assistant's, and, as Ollama's own templates do,
leaves a last assistant message open (Ollama continues it). No BOS is written: llama.cpp adds it when the GGUF
says ``add_bos_token``. ``SYSTEM`` is the persona, one ``PARAMETER stop`` per end token, temperature 0 and
no repeat penalty.
"""

from __future__ import annotations

from curate.errors import TrainError
from train.export.template import ROLES, ChatParts


def _literal(text: str) -> str:
    """``text`` as Go template text: only the action delimiter is special."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(parts: ChatParts) -> str:
    branches = []
    for role in ROLES:
        close = _literal(parts.suffix[role])
        if role == "assistant":
            close = f"{{{{ if not $last }}}}{close}{{{{ end }}}}" if close else ""
        keyword = "if" if not branches else "else if"
        head = f'{{{{ {keyword} eq $m.Role "{role}" }}}}{_literal(parts.prefix[role])}'
        branches.append(f"{head}{{{{ $m.Content }}}}{close}")
    return (
        "{{ range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 }}"
        + "".join(branches)
        + "{{ end }}"
        + f'{{{{ if and $last (ne $m.Role "assistant") }}}}{_literal(parts.generation_prompt)}{{{{ end }}}}'
        + "{{ end }}"
    )


def _quoted(text: str, what: str) -> str:
    if '"""' in text:
        raise TrainError(f'the {what} contains """, which a Modelfile cannot quote; remove it')
    return f'"""{text}"""'


def modelfile(gguf_relative: str, parts: ChatParts, end_tokens: list[str], system: str | None) -> str:
    lines = [
        "# Written by gristmill export. Create the model with: ollama create <name> -f Modelfile",
        f"FROM {gguf_relative}",
        f"TEMPLATE {_quoted(go_template(parts), 'chat template')}",
    ]
    if system:
        lines.append(f"SYSTEM {_quoted(system, 'persona system prompt')}")
    lines += [f'PARAMETER stop "{t}"' for t in end_tokens]
    # greedy and unpenalised, as the model was evaluated: Ollama's default repeat_penalty is 1.1, which ends JSON
    # answers early and changes what a served model says
    lines += ["PARAMETER temperature 0", "PARAMETER repeat_penalty 1"]
    return "\n".join(lines) + "\n"
