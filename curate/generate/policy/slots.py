"""Filling a policy's slot templates, with whole families and slot values held out for the test split.

``fill_slots`` makes training requests only from the other templates and values, so a test prompt never
shares both its family and its slot values with a training prompt: evaluation sees phrasings and subjects the
model never trained on.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass

from curate.generate.base import held_out
from curate.generate.policy.model import slot_names
from curate.rows import short_hash


@dataclass(frozen=True)
class Filled:
    text: str
    family: str  # "<scope>/t<template index>": the template the text came from
    values: dict[str, str]
    holdout: bool  # a held-out family filled with held-out values: the test split's


def held_templates(templates: list[str], holdout: float, seed: int, scope: str) -> set[str]:
    """The templates (their text) that ``fill_slots`` holds out for test in ``scope``."""
    indices = held_out([str(i) for i in range(len(templates))], holdout, str(seed), scope, "templates")
    return {templates[int(i)] for i in indices}


def fill_slots(
    templates: list[str],
    slots: dict[str, list[str]],
    *,
    scope: str,
    count: int,
    holdout: float,
    seed: int,
    held: set[str] | None = None,
) -> list[Filled]:
    """About ``count`` distinct filled requests, ``holdout`` of them from held-out templates x held-out values.

    Train combinations use only the other templates and values, so the two sides share no family and no value
    of a slot with several values. Templates take turns (round robin), so every phrasing is used. ``held``
    names the held-out templates instead (a twin follows the side of the refused template it mirrors)."""
    test_templates = held_templates(templates, holdout, seed, scope) if held is None else held & set(templates)
    held_values = {name: held_out(values, holdout, str(seed), scope, name) for name, values in slots.items()}
    rng = random.Random(short_hash(str(seed), scope, "fill"))
    pools: dict[bool, list[list[Filled]]] = {True: [], False: []}
    for i, template in enumerate(templates):
        test = template in test_templates
        names = list(dict.fromkeys(slot_names(template)))
        choices = [[v for v in slots[n] if (v in held_values[n]) == test or not held_values[n]] for n in names]
        combos = [dict(zip(names, values, strict=True)) for values in itertools.product(*choices)]
        rng.shuffle(combos)
        family = f"{scope}/t{i}"
        pools[test].append([Filled(template.format(**c), family, c, test) for c in combos])
    n_test = math.ceil(count * holdout) if test_templates else 0
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
