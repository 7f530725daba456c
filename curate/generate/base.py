"""The generator registry and what every generator shares: the context, seeded choices, and example rows.

A generator turns the kept document rows into example rows of one ``kind``. Template generators render
jinja2 templates (templating.py); each declares the variables it gives templates, so a template asking for
anything else fails before any work. Every choice is seeded from (recipe seed, kind, row id), never from
order of arrival, so the same recipe always gives the same examples.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from curate.errors import StageError
from curate.rows import dumps, example_id, reject_envelope, short_hash
from curate.templating import Renderer, TemplateSpec, templates_for

# Part of the generate step's checkpoint key: bump it when a generator's code changes what it writes (a template
# change needs no bump; its text is in the key), so an earlier run's generate checkpoint is not reused.
GENERATORS_VERSION = 2  # 2: extract_json shows field records in five layouts


class GeneratorConfig(BaseModel):
    """Fields every generator accepts."""

    model_config = ConfigDict(extra="forbid")

    templates: list[str] | None = Field(
        None, description="Template names to use; default: every template of the kind."
    )
    sources: list[str] | None = Field(
        None, description="Glob patterns on the document source path; only matching documents feed this generator."
    )

    def input_files(self) -> list[str]:
        """Files the generator reads besides the documents (a policy, schemas): their content keys the checkpoint."""
        return []

    def uses_llm(self) -> bool:
        """Whether this generator calls the LLM (it then runs with the run's client)."""
        return False

    def behaviours(self) -> dict[str, list[Any]]:
        """What behaviours.json records of this generator (phrasings, policy categories), by key."""
        return {}

    def json_schemas(self) -> dict[str, Any]:
        """JSON Schemas by name that this generator's examples may name in ``meta.schema``."""
        return {}


class LLMBackend(BaseModel):
    """The ``backend`` choice of generators that can call the LLM (the recipe's ``llm`` section)."""

    backend: Literal["template", "llm"] = Field(
        "template", description="template: offline jinja2 only; llm: the LLM writes (or paraphrases), a judge checks."
    )

    def uses_llm(self) -> bool:
        return self.backend == "llm"


@dataclass
class GenerateContext:
    documents: list[dict[str, Any]]  # kept document rows, in ordinal order
    templates: dict[str, TemplateSpec]
    seed: int
    persona: Any  # recipe.PersonaSection | None
    renderer: Renderer
    rejects: list[dict[str, Any]] = field(default_factory=list)  # what a generator could not make, and why
    llm: Any = None  # the run's LLMRuntime, when a generator uses the LLM
    llm_rows: int = 0  # LLM requests made for examples (the denominator of the failure ratio)
    held_out: frozenset[str] = frozenset()  # doc_ids of the held-out documents: nothing of them trains
    notes: list[str] = field(default_factory=list)  # for stats.json and the dataset card
    question_holdout: float = 0.3  # share of the qa question templates held out (the qa generator's ``holdout``)
    # the refusal and abstain generators' ``holdout``: a near-miss twin of a refused template follows its side
    policy_holdout: dict[str, float] = field(default_factory=dict)

    @functools.cached_property
    def casing(self):
        """How the documents write each word mid-sentence (phrasing.Truecaser), read once for every generator."""
        from curate.generate.phrasing import Truecaser

        return Truecaser(d["text"] for d in self.documents)

    def held_question_templates(self) -> set[str]:
        """Names of the qa question templates held out for test. qa, grounded_qa and grounded_abstain all ask the
        qa templates' questions, so the held-out wordings are drawn once, over the whole family, and shared: a
        wording tested in one kind never trains in another."""
        names = sorted(s.name for s in self.templates.values() if s.kind == "qa")
        return held_out(names, self.question_holdout, str(self.seed), "qa", "templates")

    def is_held_out(self, row: dict[str, Any]) -> bool:
        return row["doc_id"] in self.held_out

    def training_documents(self, config: GeneratorConfig) -> list[dict[str, Any]]:
        """The generator's documents outside the held-out set: the only ones a training example may quote."""
        return [d for d in self.documents_for(config) if not self.is_held_out(d)]

    def reject(self, kind: str, reason: str, detail: str, *, id: str = "", row: dict[str, Any] | None = None) -> None:
        self.rejects.append(
            reject_envelope(stage="generate", reason=reason, detail=f"{kind}: {detail}", row=row, id=id)
        )

    def documents_for(self, config: GeneratorConfig) -> list[dict[str, Any]]:
        if not config.sources:
            return self.documents
        return [d for d in self.documents if any(fnmatch.fnmatch(d["source"], p) for p in config.sources)]

    def rng(self, *parts: str) -> random.Random:
        return random.Random(short_hash(str(self.seed), *parts))

    def messages(self, user: str, assistant: str, system: str = "") -> list[dict[str, str]]:
        parts = [s for s in ((self.persona.system if self.persona else ""), system) if s]
        return ([{"role": "system", "content": "\n\n".join(parts)}] if parts else []) + [
            {"role": "user", "content": user},
            {"role": "assistant", "content": assistant},
        ]

    def row(self, messages, kind: str, source_ids, group: str, template: str, generator: str, meta: dict) -> dict:
        """An example row (the persona's name added to ``meta``)."""
        info = {**meta, **({"persona": self.persona.name} if self.persona else {})}
        return {
            "id": example_id(messages),
            "messages": messages,
            "kind": kind,
            "source_ids": source_ids,
            "group": group,
            "template": template,
            "generator": generator,
            "meta": dumps(info),
        }

    def llm_example(
        self, kind: str, user: str, assistant: str, source_ids: list[str], group: str, template: str, meta: dict
    ) -> dict[str, Any]:
        return self.row(self.messages(user, assistant), kind, source_ids, group, template, "llm", meta)

    def example(
        self,
        kind: str,
        spec: TemplateSpec,
        variables: dict[str, Any],
        *,
        source_ids: list[str],
        group: str,
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Render ``spec`` into an example row; None when the template rendered an empty turn."""
        turns = self.renderer.render(spec, variables)
        if not turns.get("user") or not turns.get("assistant"):
            return None
        messages = self.messages(turns["user"], turns["assistant"], turns.get("system", ""))
        info = {"variant": variables.get("variant", 0), **(meta or {})}
        return self.row(messages, kind, source_ids, group, spec.ref, "template", info)


@dataclass(frozen=True)
class Generator:
    kind: str
    config: type[GeneratorConfig]
    fn: Callable[[GenerateContext, Any, list[TemplateSpec]], list[dict[str, Any]]]
    variables: frozenset[str]
    # The template variables for one document row (None: the kind is not made from documents); `render` uses it.
    row_variables: Callable[[dict[str, Any], Any], dict[str, Any] | None] | None = None

    @property
    def summary(self) -> str:
        return (self.fn.__doc__ or "").strip().splitlines()[0]

    def run(self, ctx: GenerateContext, config: GeneratorConfig) -> list[dict[str, Any]]:
        specs = templates_for(self.kind, ctx.templates, config.templates, set(self.variables))
        return self.fn(ctx, config, specs)


GENERATORS: dict[str, Generator] = {}


def register_generator(kind: str, *, config: type[GeneratorConfig], variables: set[str], row_variables=None):
    def wrap(fn):
        GENERATORS[kind] = Generator(kind, config, fn, frozenset(variables), row_variables)
        return fn

    return wrap


def get_generator(kind: str) -> Generator:
    if kind not in GENERATORS:
        close = difflib.get_close_matches(kind, list(GENERATORS), n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise StageError(f"unknown generator kind {kind!r}.{hint} Known kinds: {', '.join(sorted(GENERATORS))}.")
    return GENERATORS[kind]


def held_out(items: list[str], fraction: float, *key: str) -> set[str]:
    """A seeded share of ``items`` for test: none of a single item (it must also train), else at least one."""
    if len(items) < 2:
        return set()
    ranked = sorted(items, key=lambda item: short_hash(*key, item))
    return set(ranked[: max(1, min(len(items) - 1, math.floor(fraction * len(items) + 0.5)))])


def section_topic(row: dict[str, Any], separator: str = " > ") -> str:
    """What a section is about: its last heading, or the document title when it has none."""
    return row["section"].split(separator)[-1] if row["section"] else row["title"]


def pick(rng: random.Random, specs: list[TemplateSpec], n: int) -> list[TemplateSpec]:
    return rng.sample(specs, min(n, len(specs)))


def examples_per_document(
    ctx: GenerateContext,
    kind: str,
    config: Any,
    specs: list[TemplateSpec],
    variables_for: Callable[[dict[str, Any], Any], dict[str, Any] | None],
    extra_meta: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """For each document row that ``variables_for`` accepts: ``config.per_doc`` templates drawn with a seed
    from (kind, row id), one example each, grounded in that row and grouped by its document. The prompt carries
    the document, so a held-out document's examples are test and the others train (``meta.holdout``)."""
    out = []
    for row in ctx.documents_for(config):
        variables = variables_for(row, config)
        if variables is None:
            continue
        rng = ctx.rng(kind, row["id"])
        meta = {"section": row["section"], "holdout": ctx.is_held_out(row), **(extra_meta or {})}
        for spec in pick(rng, specs, config.per_doc):
            example = ctx.example(
                kind,
                spec,
                {**variables, "variant": rng.randrange(1_000_000)},
                source_ids=[row["id"]],
                group=row["doc_id"],
                meta=meta,
            )
            if example:
                out.append(example)
    return out
