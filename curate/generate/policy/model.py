"""The behaviour policy file (YAML): guardrail categories with refusal style and benign near-misses, and the
questions the documentation does not answer. Validated at the door; errors name the file and the key path.

Requests are slot templates: ``"Give me the address of {person}"`` with ``slots: {person: [...]}``. Each
template is a *family* (slots.py fills them and holds families and values out for test).
"""

from __future__ import annotations

import string
from pathlib import Path

from pydantic import Field, model_validator

from curate.config import Strict, read_yaml, validate_section, yaml_lines
from curate.errors import RecipeError

_FORMATTER = string.Formatter()


def slot_names(template: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name is not None]


class SlotTemplates(Strict):
    requests: list[str] = Field(min_length=1, description="Request templates; {slot} is filled from slots.")
    slots: dict[str, list[str]] = Field(default_factory=dict, description="Values per slot name.")

    @model_validator(mode="after")
    def _slots_defined(self):
        for template in self.requests:
            try:
                names = slot_names(template)
            except ValueError as err:
                raise ValueError(
                    f"request {template!r} is not a valid template ({err}); write slots as {{name}}"
                ) from None
            odd = [n for n in names if not n.isidentifier()]
            if odd:
                raise ValueError(
                    f"request {template!r} has the field {{{odd[0]}}}; write slots by name, as {{name}}, and list "
                    "their values under slots (positional or dotted fields are not slots)"
                )
            missing = [n for n in names if not self.slots.get(n)]
            if missing:
                raise ValueError(f"request {template!r} uses slot {missing[0]!r}, which has no values under slots")
        return self


class Twin(Strict):
    requests: list[str] | None = Field(
        None,
        description="The refused (or abstained) request templates to ask benignly, copied exactly from the "
        "category's requests (or the abstain questions); null: every category request whose slots are all given.",
    )
    slots: dict[str, list[str]] = Field(min_length=1, description="Benign values for those templates' slots.")


class NearMiss(SlotTemplates):
    topic: str = Field(description="Words that find the answering section in the documents.")
    twin: Twin | None = Field(
        None,
        description="Minimal pairs: the refused requests' own frames, filled with benign values the topic's "
        "section answers ('Explain step by step how to {harm}' with harm 'pitch the tent in wind').",
    )


class Category(SlotTemplates):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case name of the category.")
    description: str
    refusal: str = Field(description="Why it is refused, one sentence, in the assistant's voice.")
    alternative: str = Field(description="The allowed alternative offered with the refusal.")
    near_misses: list[NearMiss] = Field(
        default_factory=list, description="Allowed requests that look like this category, answered from the docs."
    )

    @model_validator(mode="after")
    def _twins_fill_requests(self):
        for n, near in enumerate(self.near_misses):
            if near.twin is not None:
                check_twin(near.twin, self.requests, f"near_misses.{n}.twin", "the category's requests")
        return self


class RefusalStyle(Strict):
    openers: list[str] = Field(
        min_length=1, description="How refusals begin; evaluation detects refusals by these phrasings."
    )


class Abstain(Strict):
    response: str = Field(description="The abstention; {entity} names what the question asked about.")
    questions: dict[str, list[str]] = Field(description="Question templates per entity type; {entity} is filled.")
    entities: dict[str, list[str]] = Field(description="Entities per type that the documents must not mention.")
    near_misses: list[NearMiss] = Field(
        default_factory=list,
        description="In-scope questions that look like out-of-scope ones, answered from the docs (benign_near_miss).",
    )

    @model_validator(mode="after")
    def _types_match(self):
        for kind, templates in self.questions.items():
            if not self.entities.get(kind):
                raise ValueError(f"questions.{kind} has no entities.{kind} to fill it; add entities of that type")
            for t in templates:
                if slot_names(t) != ["entity"]:
                    raise ValueError(f"question {t!r} must use exactly one slot, {{entity}}")
        if "{entity}" not in self.response:
            raise ValueError("response must name what was asked about with {entity}")
        questions = [q for templates in self.questions.values() for q in templates]
        for n, near in enumerate(self.near_misses):
            if near.twin is not None:
                if near.twin.requests is None:
                    raise ValueError(f"near_misses.{n}.twin needs requests: the abstain questions its section answers")
                check_twin(near.twin, questions, f"near_misses.{n}.twin", "the abstain questions")
        return self


class Policy(Strict):
    name: str
    version: int = 1
    refusal_style: RefusalStyle | None = None
    categories: list[Category] = Field(default_factory=list)
    abstain: Abstain | None = None

    def category(self, name: str) -> Category:
        return next(c for c in self.categories if c.name == name)

    def abstain_questions(self) -> list[str]:
        return [q for templates in (self.abstain.questions.values() if self.abstain else []) for q in templates]

    @model_validator(mode="after")
    def _unique(self):
        names = [c.name for c in self.categories]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"category names must be unique; {dupes[0]!r} appears twice")
        if self.categories and self.refusal_style is None:
            raise ValueError("categories need refusal_style.openers: how refusals begin")
        return self


def twin_requests(twin: Twin, requests: list[str]) -> list[str]:
    """The refused request templates a twin asks: those it names, or every one whose slots it fills."""
    if twin.requests is not None:
        return list(twin.requests)
    return [r for r in requests if set(slot_names(r)) <= set(twin.slots)]


def check_twin(twin: Twin, requests: list[str], where: str, what: str) -> None:
    """A twin names only ``requests`` (exactly: the point is the same frame), fills all their slots, and asks
    at least one."""
    odd = [r for r in twin.requests or [] if r not in requests]
    if odd:
        raise ValueError(f"{where}.requests has {odd[0]!r}, which is not one of {what}; copy the template exactly")
    chosen = twin_requests(twin, requests)
    if not chosen:
        used = sorted({name for r in requests for name in slot_names(r)})
        raise ValueError(f"{where}.slots {sorted(twin.slots)} complete none of {what} (their slots: {used})")
    missing = sorted({name for r in chosen for name in slot_names(r)} - set(twin.slots))
    if missing:
        raise ValueError(f"{where}.slots has no values for {missing[0]!r}, which its requests use; add them")


PLACEHOLDER = "<FILL IN"  # the marker of text `gristmill init` leaves for a person to write


def _placeholders(value, where: str = "") -> list[str]:
    """The key paths of strings that still hold a placeholder."""
    if isinstance(value, str):
        return [where] if PLACEHOLDER in value.upper() else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _placeholders(v, f"{where}.{k}" if where else str(k))]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in _placeholders(v, f"{where}.{n}")]
    return []


def load_policy(path: str) -> Policy:
    """Read and validate a policy file; a RecipeError names the file and every problem. A policy that still
    holds a ``<FILL IN ...>`` of ``gristmill init`` is refused: a model must never learn placeholder text."""
    raw = read_yaml(Path(path), f"policy file {path!r} does not exist; see sample_data/policies/guardrails.yaml")
    left = _placeholders(raw)
    if left:
        shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
        raise RecipeError(
            f"{path}: {len(left)} placeholder(s) to fill in ({shown}); replace each <FILL IN ...> with your own "
            "text, or comment out the policy kinds (refusal, benign_near_miss, abstain) in the recipe"
        )
    return validate_section(Policy, raw, path, positions=yaml_lines(Path(path).read_text(encoding="utf-8")))
