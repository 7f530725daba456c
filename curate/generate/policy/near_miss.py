"""benign_near_miss: per category, requests that look like it but are allowed ("how do I delete MY account data"
beside "give me another customer's address"), answered from the documents: the section that best matches the near-
miss's ``topic`` (BM25 of curate/retrieval.py) answers, quoted in its few sentences nearest the request (a whole
section is more than a small model can learn to recite, and it then invents the rest). A near-miss with no
matching section is a reject, not an invented answer. Without near-misses, a model learns to refuse everything
that sounds like a category.

A near-miss's ``twin`` also asks the refused requests' own frames with benign values (minimal pairs: "Explain
step by step how to pitch the tent in wind" beside "... how to start a wildfire"), so a frame alone never decides.
"""

from __future__ import annotations

import itertools

from pydantic import Field

from curate.generate.base import GenerateContext, register_generator
from curate.generate.policy.base import PolicyConfig, filled_distinct, policy_example
from curate.generate.policy.model import twin_requests
from curate.generate.policy.slots import held_templates
from curate.retrieval import STOP_WORDS, SectionIndex
from curate.text import markdown_blocks, split_sentences, words


class NearMissConfig(PolicyConfig):
    kind: str = Field("benign_near_miss", pattern="^benign_near_miss$")
    min_match: float = Field(
        0.5, gt=0.0, le=1.0, description="Share of the topic's words the answering section must contain."
    )
    answer_sentences: int | None = Field(
        3,
        ge=1,
        description="The answer quotes this many sentences of the section, those sharing most words with the "
        "request and topic, in their order (null: the whole section).",
    )


def relevant_sentences(text: str, query: str, n: int | None) -> str:
    """The ``n`` sentences of ``text`` sharing most (non-stop) words with ``query``, in document order; tables,
    list items and code count as one sentence each. The whole text when it has no more than ``n``."""
    if n is None:
        return text
    located = [(b, s) for b, block in enumerate(markdown_blocks(text)) for s in _sentences(block)]
    pieces = [s for _, s in located]
    if len(pieces) <= n:
        return text
    wanted = {w for w in words(query) if w not in STOP_WORDS}
    scores = [(len(wanted & set(words(p))), -i) for i, p in enumerate(pieces)]
    keep = sorted(sorted(range(len(pieces)), key=lambda i: scores[i], reverse=True)[:n])
    # sentences of one paragraph run on; a table, a list item or another paragraph starts on its own lines, so a
    # quoted table stays a table
    out = pieces[keep[0]]
    for prev, i in itertools.pairwise(keep):
        same = located[prev][0] == located[i][0] and "\n" not in pieces[i] and not pieces[i].startswith("|")
        out += (" " if same else "\n\n") + pieces[i]
    return out


def _sentences(block) -> list[str]:
    if block.kind != "paragraph":
        return [block.text] if block.kind in ("table", "code") else []
    lines = block.text.split("\n")
    if all(line.lstrip().startswith(("-", "*", "1", "2", "3", "4", "5", "6", "7", "8", "9")) for line in lines):
        return [" ".join(line.split()) for line in lines]  # list items
    return split_sentences(block.text)


def refused_frames(ctx: GenerateContext, policy, parent: str) -> tuple[list[str], set[str]]:
    """The request templates a near-miss of ``parent`` (a category, or "abstain") mirrors, and those of them
    the refusal (or abstain) generator holds out for test: a twin trains beside the frames that train."""
    if parent == "abstain":
        holdout = ctx.policy_holdout.get("abstain", 0.3)
        held = {
            t
            for kind, templates in policy.abstain.questions.items()
            for t in held_templates(templates, holdout, ctx.seed, f"abstain/{kind}")
        }
        return policy.abstain_questions(), held
    requests = policy.category(parent).requests
    return requests, held_templates(requests, ctx.policy_holdout.get("refusal", 0.3), ctx.seed, parent)


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
    # A category's near-misses look like its refusals; the abstain section's look like out-of-scope questions.
    groups = [(c.name, c.near_misses) for c in policy.categories]
    if policy.abstain is not None and policy.abstain.near_misses:
        groups.append(("abstain", policy.abstain.near_misses))
    for category_name, near_misses in groups:
        for n, near in enumerate(near_misses):
            rows = {test: index.best(near.topic, config.min_match) for test, index in indexes.items()}
            where = f"{category_name}.near_misses.{n}: no document section matches topic {near.topic!r}"
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
            share = max(2, config.per_category // max(len(near_misses), 1))
            per = config.model_copy(update={"per_category": share})
            # The near-miss's own requests, then its twins: the refused (or abstained) frames, filled benignly.
            asked = [("", near.requests, near.slots, None)]
            if near.twin is not None:
                refused, held = refused_frames(ctx, policy, category_name)
                asked.append(("twin", twin_requests(near.twin, refused), near.twin.slots, held))
            for group, templates, slots, held in asked:
                scope = f"{category_name}/n{n}" + (f"/{group}" if group else "")
                filled = filled_distinct(templates, slots, scope=scope, config=per, seed=ctx.seed, held=held)
                for i, item in enumerate(filled):
                    row = rows[item.holdout]
                    if row is None:
                        continue
                    rng = ctx.rng("benign_near_miss", scope, item.text)
                    answer = relevant_sentences(row["text"], f"{near.topic} {item.text}", config.answer_sentences)
                    variables = {
                        "request": item.text,
                        "answer": answer,
                        "title": row["title"],
                        "topic": near.topic,
                        "category": category_name,
                        "name": ctx.persona.name if ctx.persona else "",
                        "company": (ctx.persona.company or "") if ctx.persona else "",
                        "variant": rng.randrange(1_000_000),
                    }
                    meta = {"category": category_name, "section": row["section"], "source_ids": [row["id"]]}
                    meta |= {"twin": True} if group else {}
                    example = policy_example(ctx, "benign_near_miss", specs[i % len(specs)], variables, item, meta)
                    if example:
                        out.append(example)
    return out
