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


class NearMiss(SlotTemplates):
    topic: str = Field(description="Words that find the answering section in the documents.")


class Category(SlotTemplates):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="snake_case name of the category.")
    description: str
    refusal: str = Field(description="Why it is refused, one sentence, in the assistant's voice.")
    alternative: str = Field(description="The allowed alternative offered with the refusal.")
    near_misses: list[NearMiss] = Field(
        default_factory=list, description="Allowed requests that look like this category, answered from the docs."
    )


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
        return self


class Policy(Strict):
    name: str
    version: int = 1
    refusal_style: RefusalStyle | None = None
    categories: list[Category] = Field(default_factory=list)
    abstain: Abstain | None = None

    @model_validator(mode="after")
    def _unique(self):
        names = [c.name for c in self.categories]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"category names must be unique; {dupes[0]!r} appears twice")
        if self.categories and self.refusal_style is None:
            raise ValueError("categories need refusal_style.openers: how refusals begin")
        return self


def load_policy(path: str) -> Policy:
    """Read and validate a policy file; a RecipeError names the file and every problem."""
    raw = read_yaml(Path(path), f"policy file {path!r} does not exist; see sample_data/policies/guardrails.yaml")
    return validate_section(Policy, raw, path, positions=yaml_lines(Path(path).read_text(encoding="utf-8")))
