"""The shortcut audit: the words of the training prompts that give a behaviour kind away.

A model that learns "thanks" means "decline" has learned a shortcut, not the behaviour, and it fails on the first
prompt that thanks it for an answerable question. For each audited kind, the audit finds the word n-grams (1 to
``max_n`` words) of its training prompts (the last user turn) that predict the kind: ``precision``, the share of
the training prompts containing the n-gram (of every kind) that are of this kind, at least ``min_precision``, and
``support``, the prompts of this kind containing it, at least ``min_support``.

Those split in two:

- **content**: an n-gram with a word that carries the behaviour. The policy names them (slot values, near-miss
  topics, category descriptions, reasons and alternatives, abstain entities), and so do the example's own source
  documents (a qa question about the warranty says "warranty"). A refusal's "pipe bomb" is content.
- **give-away**: every word is outside that content (a function word, or a word only the frame or decoration
  brings): greetings, thanks, hedges and request frames that only one kind uses. These are shortcuts.

An n-gram counts as a give-away when most of its occurrences in the kind are outside content. Only the shortest
give-aways are listed ("thanks", not also "thanks in advance").

For each policy request frame (a request template with its slots as wildcards), the audit also counts the
training prompts of every kind that use it: a frame only one kind uses teaches the frame, not the request.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from curate.text import FUNCTION_WORDS, words

# The kinds that compete for one decision on the same kind of prompt: answer, decline, or say the docs don't
# cover it. summary, extract_json and persona prompts name their task; they count in every precision, but
# their own n-grams are the task's instruction, not a shortcut.
AUDITED_KINDS = ("refusal", "benign_near_miss", "abstain", "qa", "grounded_qa", "grounded_abstain")
# The two behaviours a prompt decides between: a word all declines share gives the decision away as surely as
# a word one kind uses.
BEHAVIOURS = {
    "decline": ("refusal", "abstain", "grounded_abstain"),
    "answer": ("qa", "benign_near_miss", "grounded_qa"),
}


# Never content, whatever a policy's prose says ("within one hour" is a topic, "quick one" a decoration):
# function words, and the greetings, thanks and fillers any request may carry.
NOT_CONTENT = FUNCTION_WORDS | frozenset(
    "one get there some any just also need want please thanks thank hi hello hey ok okay".split()
)


@dataclass(frozen=True)
class Thresholds:
    min_precision: float = 0.9
    min_support: int = 5
    max_n: int = 3


def prompt_of(example: dict[str, Any]) -> str:
    """The request the model decides on: the question of a grounded example (its excerpts are the documents'
    words), else the last user turn."""
    meta = example.get("meta")
    meta = json.loads(meta) if isinstance(meta, str) and meta else meta or {}
    if meta.get("question"):
        return meta["question"]
    users = [m["content"] for m in example["messages"] if m["role"] == "user"]
    return users[-1] if users else ""


def cited(example: dict[str, Any]) -> list[str]:
    """The document rows an example draws on: its sources, and a grounded question's target section."""
    meta = example.get("meta")
    meta = json.loads(meta) if isinstance(meta, str) and meta else meta or {}
    return [*(example.get("source_ids") or []), *([meta["target"]] if meta.get("target") else [])]


def policy_content(policy) -> set[str]:
    """The words a policy gives its behaviours: slot values, topics, descriptions, reasons, alternatives and
    entities. Function words and fillers (NOT_CONTENT) never count."""
    texts: list[str] = []

    def slots(block) -> None:
        texts.extend(v for values in block.slots.values() for v in values)
        twin = getattr(block, "twin", None)
        texts.extend(v for values in (twin.slots.values() if twin else []) for v in values)

    for category in policy.categories:
        texts += [category.name.replace("_", " "), category.description, category.refusal, category.alternative]
        slots(category)
        for near in category.near_misses:
            texts.append(near.topic)
            slots(near)
    if policy.abstain is not None:
        texts += [v for values in policy.abstain.entities.values() for v in values]
        texts += [t.replace("_", " ") for t in policy.abstain.questions]
        for near in policy.abstain.near_misses:
            texts.append(near.topic)
            slots(near)
    return {w for t in texts for w in words(t)} - NOT_CONTENT


def policy_frames(policy) -> list[tuple[str, str]]:
    """(kind, request template) for every request frame of the policy."""
    frames = [("refusal", r) for c in policy.categories for r in c.requests]
    frames += [("benign_near_miss", r) for c in policy.categories for n in c.near_misses for r in n.requests]
    if policy.abstain is not None:
        frames += [("abstain", r) for templates in policy.abstain.questions.values() for r in templates]
        frames += [("benign_near_miss", r) for n in policy.abstain.near_misses for r in n.requests]
    return list(dict.fromkeys(frames))


def frame_pattern(template: str) -> re.Pattern:
    """The template's words in order, each slot one or more words: matched against a prompt's words joined by
    single spaces, so punctuation and case do not matter."""
    parts = re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", template)
    pieces = [" ".join(words(p)) for p in parts]
    regex = r"(?:^| )" + r" (?:\S+ )+?".join(re.escape(p) for p in pieces if p) + r"(?: |$)"
    return re.compile(regex)


def _ngrams(tokens: list[str], max_n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)}


def audit(
    train: list[dict[str, Any]],
    *,
    content: set[str] = frozenset(),
    source_words: dict[str, set[str]] | None = None,
    frames: list[tuple[str, str]] = (),
    thresholds: Thresholds = Thresholds(),
    kinds: tuple[str, ...] = AUDITED_KINDS,
) -> dict[str, Any]:
    """The audit of the training examples: give-away and content n-grams per kind (then per behaviour, decline
    or answer, for what no single kind explains: "thanks" in refusals and abstentions alike), and the policy
    frames' use by kind.

    ``content``: words that carry a behaviour (``policy_content``); ``source_words``: per document id, the
    words of that document, content for the examples that cite it; ``frames``: (kind, template) pairs."""
    source_words = source_words or {}
    prompts, grams, owns = [], [], []
    for ex in train:
        own = set(content)
        for source in cited(ex):
            own |= source_words.get(source, set())
        prompts.append(prompt_of(ex))
        grams.append(_ngrams(words(prompts[-1]), thresholds.max_n))
        owns.append(own - NOT_CONTENT)
    kind_of = [ex["kind"] for ex in train]
    with_gram: Counter = Counter(g for gs in grams for g in gs)
    targets = [(k, {k}) for k in kinds] + [(name, set(members) & set(kinds)) for name, members in BEHAVIOURS.items()]
    giveaways, content_rows, seen = [], [], set()
    for name, members in targets:
        rows = [i for i, k in enumerate(kind_of) if k in members]
        support: Counter = Counter(g for i in rows for g in grams[i])
        outside: Counter = Counter(g for i in rows for g in grams[i] if not owns[i].intersection(g))
        flagged = []
        for gram, n in support.items():
            precision = n / with_gram[gram]
            if n < thresholds.min_support or precision < thresholds.min_precision or (gram, name) in seen:
                continue
            if name in kinds:  # one kind explains it: not listed again for its behaviour group
                seen.update((gram, group) for group in BEHAVIOURS)
            example = next(prompts[i] for i in rows if gram in grams[i])
            row = {"ngram": " ".join(gram), "kind": name, "support": n, "prompts": with_gram[gram],
                   "precision": round(precision, 3), "n": len(gram), "example": example}  # fmt: skip
            (flagged if outside[gram] * 2 > n else content_rows).append((gram, row))
        giveaways += _covering(flagged, [grams[i] for i in rows])
    order = {name: i for i, (name, _) in enumerate(targets)}

    def rank(row: dict) -> tuple:
        return order[row["kind"]], -row["support"], row["n"], row["ngram"]

    giveaways.sort(key=rank)
    content_list = sorted((row for _, row in content_rows), key=rank)
    joined = [" ".join(words(p)) for p in prompts]
    frame_rows = []
    for kind, template in frames:
        pattern = frame_pattern(template)
        used = Counter(k for k, text in zip(kind_of, joined, strict=True) if pattern.search(text))
        if used.get(kind):
            others = {k: n for k, n in sorted(used.items()) if k != kind}
            frame_rows.append({"kind": kind, "frame": template, "train": used[kind], "other_kinds": others})
    return {
        "thresholds": asdict(thresholds),
        "prompts": dict(sorted(Counter(kind_of).items())),
        "kinds": list(kinds),
        "behaviours": {name: sorted(members) for name, members in BEHAVIOURS.items()},
        "giveaways": giveaways,
        "content": content_list,
        "frames": frame_rows,
        "unshared_frames": sum(1 for f in frame_rows if not f["other_kinds"]),
    }


def _covering(flagged: list[tuple[tuple[str, ...], dict]], prompts: list[set]) -> list[dict]:
    """The give-aways that explain the kind's prompts, the most precise, shortest and most supported first: one
    is left out when every prompt it occurs in already has a kept give-away sharing a word with it ("thanks in
    advance" beside "thanks", "one how" and "quick" beside "quick one")."""
    where = {gram: {i for i, grams in enumerate(prompts) if gram in grams} for gram, _ in flagged}
    kept: list[tuple[tuple[str, ...], dict]] = []
    for gram, row in sorted(flagged, key=lambda f: (-f[1]["precision"], len(f[0]), -f[1]["support"], f[0])):
        covered = set().union(*(where[g] for g, _ in kept if set(g) & set(gram)))
        if not where[gram] <= covered:
            kept.append((gram, row))
    return [row for _, row in kept]


def warning(section: dict[str, Any] | None) -> str | None:
    """One line for the curate summary when the audit found give-aways or unshared frames, else None."""
    if not section or not (section["giveaways"] or section["unshared_frames"]):
        return None
    shown = ", ".join(f"{r['ngram']!r} ({r['kind']} {r['support']}/{r['prompts']})" for r in section["giveaways"][:5])
    more = len(section["giveaways"]) - 5
    parts = []
    if section["giveaways"]:
        parts.append(f"{len(section['giveaways'])} give-away n-grams: {shown}" + (f" and {more} more" * (more > 0)))
    if section["unshared_frames"]:
        parts.append(f"{section['unshared_frames']} of {len(section['frames'])} policy frames used by one kind only")
    return "shortcut audit: " + "; ".join(parts) + " (gristmill inspect RUN --shortcuts)"


def audit_recipe(recipe, train: list[dict[str, Any]], documents: dict[str, str]) -> dict[str, Any]:
    """The audit with what the recipe knows: its policies' content words and frames, and the cited documents'
    words (``documents``: text by id)."""
    content: set[str] = set()
    frames: list[tuple[str, str]] = []
    from curate.generate.policy.base import PolicyConfig

    for _, config in recipe.resolved_generators:
        if isinstance(config, PolicyConfig):
            content |= policy_content(config.loaded)
            frames += policy_frames(config.loaded)
    ids = {i for ex in train for i in cited(ex)}
    source_words = {i: set(words(documents[i])) for i in ids if i in documents}
    return audit(train, content=content, source_words=source_words, frames=list(dict.fromkeys(frames)))
