"""abstain: questions in the documents' domain that the documents do not answer, answered with the policy's
abstention ("I don't have information about X in the documentation...").

Questions come from the policy's ``abstain`` section: templates per entity type filled with entities. Every
entity is checked against the whole kept corpus first, and one the corpus mentions is a reject, not an
example: training a model to say "not in the docs" about something that is in the docs teaches it to lie.
"""

from __future__ import annotations

import re

from pydantic import Field, model_validator

from curate.generate.base import GenerateContext, register_generator
from curate.generate.policy.base import PolicyConfig, filled_distinct, paraphrased, policy_example
from curate.generate.policy.slots import Filled
from curate.retrieval import STOP_WORDS


class AbstainConfig(PolicyConfig):
    kind: str = Field("abstain", pattern="^abstain$")

    @model_validator(mode="after")
    def _has_section(self):
        if self.loaded.abstain is None:
            raise ValueError(f"{self.policy} has no abstain section (response, questions, entities); add one")
        return self


class Corpus:
    """The kept documents' lowercased words and text, to check that an entity is truly absent."""

    def __init__(self, documents: list[dict]):
        self.text = "\n".join(f"{d['title']}\n{d['section']}\n{d['text']}" for d in documents).lower()
        self.words = set(re.findall(r"\w+", self.text))

    def mentions(self, entity: str) -> str | None:
        """What of ``entity`` the corpus contains (its phrase, a proper-noun word, or every content word),
        or None when it is absent."""
        if re.search(r"(?<!\w)" + re.escape(entity.lower()) + r"(?!\w)", self.text):
            return f"the phrase {entity!r}"
        tokens = re.findall(r"\w+", entity)
        for token in tokens:
            if token[0].isupper() and not token.isdigit() and token.lower() in self.words:
                return f"the name {token!r}"
        content = [t.lower() for t in tokens if len(t) >= 4 and t.lower() not in STOP_WORDS]
        if content and all(t in self.words for t in content):
            return f"all of its words ({', '.join(content)})"
        return None


@register_generator("abstain", config=AbstainConfig, variables={"request", "response", "entity", "entity_type"})
def generate_abstain(ctx: GenerateContext, config: AbstainConfig, specs) -> list[dict]:
    """Questions about entities absent from the documents, answered with the configured abstention."""
    section = config.loaded.abstain
    corpus = Corpus(ctx.documents)
    out = []
    for entity_type, templates in sorted(section.questions.items()):
        absent = []
        for entity in section.entities[entity_type]:
            found = corpus.mentions(entity)
            if found:
                ctx.reject(
                    "abstain",
                    "entity_in_corpus",
                    f"{entity_type} {entity!r}: the documents mention {found}, so 'not in the docs' would be "
                    "false; remove it from abstain.entities",
                )
            else:
                absent.append(entity)
        if not absent:
            continue
        filled: list[Filled] = filled_distinct(
            templates, {"entity": absent}, scope=f"abstain/{entity_type}", config=config, seed=ctx.seed
        )
        if config.uses_llm():
            filled = [f for f in paraphrased(ctx, "abstain", filled) if f.values["entity"].lower() in f.text.lower()]
        for i, item in enumerate(filled):
            entity = item.values["entity"]
            variables = {
                "request": item.text,
                "response": section.response.replace("{entity}", entity),
                "entity": entity,
                "entity_type": entity_type,
                "variant": ctx.rng("abstain", item.text).randrange(1_000_000),
            }
            example = policy_example(
                ctx, "abstain", specs[i % len(specs)], variables, item, {"entity": entity, "entity_type": entity_type}
            )
            if example:
                out.append(example)
    return out
