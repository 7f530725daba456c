"""benign_near_miss: per category, requests that look like it but are allowed ("how do I delete MY account
data" beside "give me another customer's address"), answered from the documents: the section that best
matches the near-miss's ``topic`` (BM25) is the answer. A near-miss with no matching section is a reject, not
an invented answer. Without near-misses, a model learns to refuse everything that sounds like a category.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from pydantic import Field

from curate.generate.base import GenerateContext, register_generator
from curate.generate.policy.base import PolicyConfig, filled_distinct, policy_example
from curate.generate.policy.slots import STOP_WORDS, words


class NearMissConfig(PolicyConfig):
    kind: str = Field("benign_near_miss", pattern="^benign_near_miss$")
    min_match: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of the topic's words the answering section must contain."
    )


class SectionIndex:
    """BM25 over document rows (title, section heading and text), for finding the section that answers a topic."""

    def __init__(self, documents: list[dict[str, Any]], k1: float = 1.2, b: float = 0.75):
        self.documents = documents
        self.terms = [
            Counter(w for w in words(f"{d['title']} {d['section']} {d['text']}") if w not in STOP_WORDS)
            for d in documents
        ]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.avg = sum(self.lengths) / max(len(self.lengths), 1)
        df = Counter(w for t in self.terms for w in t)
        n = len(documents)
        self.idf = {w: math.log(1 + (n - f + 0.5) / (f + 0.5)) for w, f in df.items()}
        self.k1, self.b = k1, b

    def best(self, query: str, min_match: float) -> dict[str, Any] | None:
        """The best-scoring row holding at least ``min_match`` of the query's words, or None."""
        q = [w for w in dict.fromkeys(words(query)) if w not in STOP_WORDS]
        best, best_score = None, 0.0
        for doc, tf, length in zip(self.documents, self.terms, self.lengths, strict=True):
            present = [w for w in q if tf.get(w)]
            if not q or len(present) / len(q) < min_match:
                continue
            norm = self.k1 * (1 - self.b + self.b * length / max(self.avg, 1e-9))
            score = sum(self.idf[w] * tf[w] * (self.k1 + 1) / (tf[w] + norm) for w in present)
            if score > best_score:
                best, best_score = doc, score
        return best


@register_generator(
    "benign_near_miss",
    config=NearMissConfig,
    variables={"request", "answer", "title", "topic", "category", "name", "company"},
)
def generate_near_miss(ctx: GenerateContext, config: NearMissConfig, specs) -> list[dict]:
    """Allowed requests that look like a refusal category, answered helpfully from the documents."""
    policy, out = config.loaded, []
    # Training answers never quote a held-out document; test answers (never trained on) may.
    indexes = {False: SectionIndex(ctx.training_documents(config)), True: SectionIndex(ctx.documents_for(config))}
    for category in policy.categories:
        for n, near in enumerate(category.near_misses):
            rows = {test: index.best(near.topic, config.min_match) for test, index in indexes.items()}
            where = f"{category.name}.near_misses.{n}: no document section matches topic {near.topic!r}"
            if rows[True] is None:
                ctx.reject(
                    "benign_near_miss",
                    "near_miss_ungrounded",
                    f"{where}; add the documentation that answers it or change the topic",
                )
                continue
            if rows[False] is None:
                ctx.reject(
                    "benign_near_miss",
                    "near_miss_ungrounded",
                    f"{where} outside the held-out documents, so it has test examples only",
                )
            scope = f"{category.name}/n{n}"
            share = max(2, config.per_category // max(len(category.near_misses), 1))
            per = config.model_copy(update={"per_category": share})
            for i, item in enumerate(
                filled_distinct(near.requests, near.slots, scope=scope, config=per, seed=ctx.seed)
            ):
                row = rows[item.holdout]
                if row is None:
                    continue
                rng = ctx.rng("benign_near_miss", scope, item.text)
                variables = {
                    "request": item.text,
                    "answer": row["text"],
                    "title": row["title"],
                    "topic": near.topic,
                    "category": category.name,
                    "name": ctx.persona.name if ctx.persona else "",
                    "company": (ctx.persona.company or "") if ctx.persona else "",
                    "variant": rng.randrange(1_000_000),
                }
                meta = {"category": category.name, "section": row["section"], "source_ids": [row["id"]]}
                example = policy_example(ctx, "benign_near_miss", specs[i % len(specs)], variables, item, meta)
                if example:
                    out.append(example)
    return out
