"""The behaviour policy file (YAML): guardrail categories with refusal style and benign near-misses, and the
questions the documentation does not answer. Validated at the door; errors name the file and the key path.

Requests are slot templates: ``"Give me the address of {person}"`` with ``slots: {person: [...]}``. Each
template is a *family*. ``fill_slots`` holds out whole families and slot values for the test split, so a test
prompt never shares both its family and its slot values with a training prompt: evaluation sees phrasings and
subjects the model never trained on.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import string
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.errors import RecipeError
from curate.rows import short_hash

_FORMATTER = string.Formatter()


def slot_names(template: str) -> list[str]:
    return [name for _, name, _, _ in _FORMATTER.parse(template) if name]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SlotTemplates(_Strict):
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


class RefusalStyle(_Strict):
    openers: list[str] = Field(
        min_length=1, description="How refusals begin; evaluation detects refusals by these phrasings."
    )


class Abstain(_Strict):
    response: str = Field(description="The abstention; {entity} names what the question asked about.")
    questions: dict[str, list[str]] = Field(description="Question templates per entity type; {entity} is filled.")
    entities: dict[str, list[str]] = Field(description="Entities per type that the documents must not mention.")

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


class Policy(_Strict):
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
    from curate.recipe import _format_errors, read_yaml

    raw = read_yaml(Path(path), f"policy file {path!r} does not exist; see sample_data/policies/guardrails.yaml")
    try:
        return Policy.model_validate(raw)
    except ValidationError as err:
        problems = _format_errors(err, "", Policy)
        raise RecipeError(f"{path}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems)) from None


@dataclass(frozen=True)
class Filled:
    text: str
    family: str  # "<scope>/t<template index>": the template the text came from
    values: dict[str, str]
    holdout: bool  # a held-out family filled with held-out values: the test split's


def _held_out(items: list[str], fraction: float, *key: str) -> set[str]:
    """A seeded share of ``items`` for test: none of a single item (it must also train), else at least one."""
    if len(items) < 2:
        return set()
    ranked = sorted(items, key=lambda item: short_hash(*key, item))
    return set(ranked[: max(1, min(len(items) - 1, math.floor(fraction * len(items) + 0.5)))])


def fill_slots(
    templates: list[str], slots: dict[str, list[str]], *, scope: str, count: int, holdout: float, seed: int
) -> list[Filled]:
    """About ``count`` distinct filled requests, ``holdout`` of them from held-out templates x held-out values.

    Train combinations use only the other templates and values, so the two sides share no family and no value
    of a slot with several values. Templates take turns (round robin), so every phrasing is used."""
    held_templates = _held_out([str(i) for i in range(len(templates))], holdout, str(seed), scope, "templates")
    held_values = {name: _held_out(values, holdout, str(seed), scope, name) for name, values in slots.items()}
    rng = random.Random(short_hash(str(seed), scope, "fill"))
    pools: dict[bool, list[list[Filled]]] = {True: [], False: []}
    for i, template in enumerate(templates):
        test = str(i) in held_templates
        names = list(dict.fromkeys(slot_names(template)))
        choices = [[v for v in slots[n] if (v in held_values[n]) == test or not held_values[n]] for n in names]
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*choices)]
        rng.shuffle(combos)
        family = f"{scope}/t{i}"
        pools[test].append([Filled(template.format(**c), family, c, test) for c in combos])
    n_test = math.ceil(count * holdout) if held_templates else 0
    return _round_robin(pools[False], count - n_test) + _round_robin(pools[True], n_test)


def _round_robin(groups: list[list[Filled]], n: int) -> list[Filled]:
    out: list[Filled] = []
    iterators = [iter(g) for g in groups]
    while len(out) < n and iterators:
        for it in list(iterators):
            item = next(it, None)
            if item is None:
                iterators.remove(it)
            elif len(out) < n:
                out.append(item)
    return out


_WORD = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())
