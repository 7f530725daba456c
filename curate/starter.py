"""``gristmill init``: a commented starter recipe for a folder of documents."""

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


def starter_recipe(docs_dir: Path, name: str | None = None) -> str:
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
    return f"""# gristmill recipe, written by `gristmill init`.
# Run it with: gristmill curate THIS_FILE      (relative paths are read from the current directory)
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

persona:
  name: Assistant
  company: {_scalar(name)}
  description: the documentation assistant
  system: You are Assistant, a helpful assistant who answers from the company's documentation.

mix: {{caps: {{}}, exclude_ids: []}}
split: {{test_fraction: 0.15, min_test_per_kind: 30}}
output: {_scalar({"dir": output_dir_for(docs_dir, name)})}
"""
