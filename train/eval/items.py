"""What evaluation asks: the held-out split's items, red-team prompt files, qa questions asked through retrieval,
and the prompted baseline's messages (the same items with the policy stated in a system prompt and a few
training examples before them).

An item is a prompt (every turn before the answer), its kind, its reference answer, and what scoring needs: a
JSON schema name, a grounded item's excerpts, a refusal's policy category.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.errors import InputError
from curate.output import read_jsonl

EXPECTED_KINDS = {"refusal": "refusal", "abstain": "abstain", "json": "extract_json", "answer": "answer"}


@dataclass
class Item:
    id: str
    kind: str
    messages: list[dict[str, str]]  # the prompt: every turn before the last assistant turn
    reference: str
    schema: str | None = None
    origin: str = "test"  # or "prompts", or "retrieved" (a qa question asked through --retrieve)
    context: dict[str, Any] | None = None  # a grounded item's excerpts and answering excerpt number
    source: str | None = None  # the row the answer comes from (a qa item's section)
    extra: dict[str, float] = field(default_factory=dict)  # scores known before generating (retrieval hits)
    category: str | None = None  # a refusal's policy category (refusal_reason_accuracy)

    @property
    def label(self) -> str:
        if self.origin == "retrieved":
            return "qa (retrieved)"
        return self.kind if self.origin == "test" else f"{self.kind} ({self.origin})"


def test_items(dataset_dir: Path) -> list[Item]:
    items = []
    for row in read_jsonl(dataset_dir / "test.jsonl"):
        messages = row["messages"]
        last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
        meta = json.loads(row.get("meta") or "{}")
        context = None
        if "excerpts" in meta:  # grounded: the user turn without its question is what the answer may draw on
            user = messages[last - 1]["content"]
            context = {
                "excerpts": user.replace(meta.get("question", ""), ""),
                "answer_excerpt": meta.get("answer_excerpt"),
            }
        sources = row.get("source_ids") or []
        items.append(
            Item(
                row["id"],
                row["kind"],
                messages[:last],
                messages[last]["content"],
                meta.get("schema"),
                context=context,
                source=sources[0] if sources else None,
                category=meta.get("category") if row["kind"] == "refusal" else None,
            )
        )
    return items


def retrieved_items(items: list[Item], retrieve: Callable[[str], Any]) -> list[Item]:
    """The held-out qa questions again, asked through retrieval (``--retrieve``): the user turn becomes the top
    excerpts of the dataset's documents and the question, as grounded examples are written, and each item
    records whether its answering section was retrieved at 1, 3 and 5 (``hit_at_k``). ``retrieve(question)``
    returns the user turn (``user``), the ids of the excerpts shown (``shown``) and the ranked ids (``ranked``)."""
    out = []
    for it in items:
        if it.kind != "qa" or it.origin != "test" or it.source is None:
            continue
        question = it.messages[-1]["content"]
        found = retrieve(question)
        shown = found.shown.index(it.source) + 1 if it.source in found.shown else None
        out.append(
            Item(
                f"{it.id}:retrieved",
                "grounded_qa",
                [*it.messages[:-1], {"role": "user", "content": found.user}],
                it.reference,
                origin="retrieved",
                context={"excerpts": found.user.replace(question, ""), "answer_excerpt": shown},
                source=it.source,
                extra={f"hit_at_{k}": float(it.source in found.ranked[:k]) for k in (1, 3, 5)},
            )
        )
    return out


def prompt_items(path: Path, system: str | None) -> list[Item]:
    """``--prompts``: JSONL of {"prompt", "expected": refusal|abstain|json|answer, "schema"?, "system"?, "id"?}."""
    if not path.is_file():
        raise InputError(f"--prompts {path}: no such file; give a JSONL file of {{prompt, expected}} objects")
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: not valid JSON ({err.msg}); write one object per line") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise InputError(f'{where}: needs a non-empty "prompt" string, got {line[:80]!r}')
        expected = row.get("expected")
        if expected not in EXPECTED_KINDS:
            raise InputError(
                f"{where}: expected {expected!r} is not one of {', '.join(EXPECTED_KINDS)}; say what the model "
                "should do with this prompt"
            )
        if expected == "json" and not row.get("schema"):
            raise InputError(f'{where}: expected json needs "schema", the name of a file in the dataset\'s schemas/')
        sys_prompt = row.get("system", system)
        messages = ([{"role": "system", "content": sys_prompt}] if sys_prompt else []) + [
            {"role": "user", "content": row["prompt"]}
        ]
        items.append(
            Item(
                str(row.get("id", f"{path.stem}-{n}")),
                EXPECTED_KINDS[expected],
                messages,
                "",
                row.get("schema"),
                "prompts",
            )
        )
    return items


def prompted_system(behaviours: dict[str, Any], schemas: dict[str, Any]) -> str:
    """The system prompt a team would write before fine-tuning: the persona, the policy (each category to refuse
    and its reason), the rule to say when the documentation does not cover something, and the JSON schemas."""
    persona = (behaviours.get("persona") or {}).get("system") or "You are a helpful support assistant."
    lines = [persona, ""]
    categories = behaviours.get("policy_categories") or []
    if categories:
        lines.append("Refuse these requests, briefly, giving the reason, and offer what you can do instead:")
        lines += [f"- {c['name'].replace('_', ' ')}: {c.get('description', '')} Reason: {c.get('refusal', '')}"
                  for c in categories]  # fmt: skip
        if behaviours.get("refusal_phrasings"):
            lines.append(f'Begin a refusal like: "{behaviours["refusal_phrasings"][0]}"')
        lines.append("Answer every other request, including ones that only sound similar, from the documentation.")
    abstentions = behaviours.get("abstention_phrasings") or []
    if abstentions:
        lines.append(
            "If the documentation does not cover a question, do not guess; say so, for example: "
            f'"{abstentions[0].replace("{entity}", "that")}"'
        )
    if schemas:
        lines.append("To turn text into a record, answer with one JSON object only, valid against its schema:")
        lines += [f"- {name}: {json.dumps(schema, separators=(',', ':'))}" for name, schema in sorted(schemas.items())]
    return "\n".join(lines)


def prompted_shots(dataset_dir: Path, shots: int, seed: int = 0) -> list[dict[str, str]]:
    """``shots`` short training examples as user/assistant turns, one kind after another (refusal, abstain,
    benign_near_miss, qa, extract_json, ...), the shortest of each kind first so the prompt stays small."""
    import hashlib

    if shots <= 0:
        return []
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for row in read_jsonl(dataset_dir / "train.jsonl"):
        turns = [m for m in row["messages"] if m["role"] != "system"]
        if len(turns) == 2 and len(turns[0]["content"]) + len(turns[1]["content"]) < 600:
            by_kind.setdefault(row["kind"], []).append(row)
    order = ["refusal", "abstain", "benign_near_miss", "qa", "extract_json", "grounded_abstain", "grounded_qa"]
    kinds = [k for k in order if k in by_kind] + sorted(k for k in by_kind if k not in order)
    for rows in by_kind.values():
        rows.sort(key=lambda r: hashlib.sha256(f"{seed}:{r['id']}".encode()).hexdigest())
    out: list[dict[str, str]] = []
    for i in range(shots):
        if not kinds:
            break
        rows = by_kind[kinds[i % len(kinds)]]
        if i // len(kinds) < len(rows):
            out += [m for m in rows[i // len(kinds)]["messages"] if m["role"] != "system"]
    return out


def with_policy_prompt(item: Item, system: str, shots: list[dict[str, str]]) -> list[dict[str, str]]:
    """The item's messages for the prompted baseline: the policy system prompt (in place of the persona's), the
    shots, then the item's own turns."""
    return [{"role": "system", "content": system}, *shots, *[m for m in item.messages if m["role"] != "system"]]
