"""extract_json: structured-output examples. The prompt gives a document (a ticket, a table row, a spec) and
asks for an object of a user-supplied JSON Schema; the response is JSON that validates against it, always.

Request families are the kind's templates (the instruction in the system prompt, in the user turn only, after
the record, ...): a seeded ``holdout`` share of them asks only about records of held-out documents, for test;
the others ask about the other records, for training.

Offline, objects are filled from structured content found in the documents, never invented:

- record fields of .jsonl/.csv inputs (``meta.fields``) with the record's id and title, shown in one of five
  layouts drawn per example (``meta.layout``): the export's field lines, an e-mail, a chat transcript, a web
  form, or running prose. A model that has seen one layout only learns where the fields sit, not what they are;

- ``key: value`` lines in the text (two or more make a record);
- Markdown table rows (header cells are the keys; one record per row).

A schema property takes the record value whose key matches its name (normalised, or close by difflib), or one
listed in the property's ``x-from``. Values are coerced to the property's type (numbers parsed out of "349.00
USD", yes/no to booleans, enums matched case-insensitively, lists split on commas). A property found nowhere
gets the schema's ``default``, null where the type allows it, or a typed empty value; a record that fills
fewer than ``min_coverage`` of the properties does not make an example for that schema. Every object is
validated with jsonschema before it is written; one that fails is a reject with the validation error.
"""

from __future__ import annotations

import difflib
import glob
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from curate.generate.base import GenerateContext, GeneratorConfig, LLMBackend, held_out, pick, register_generator
from curate.llm.client import failure_reason
from curate.rows import loads_obj
from curate.text import markdown_blocks

_KEY_VALUE = re.compile(r"^\s*(?:[-*]\s+)?\**([A-Za-z][\w ()/&.-]{0,40}?)\**\s*:\s+(\S.{0,300})$")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def load_schema(path: str) -> dict[str, Any]:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"schema {path}: cannot read it as JSON ({err})") from None
    if (
        not isinstance(schema, dict)
        or schema.get("type") != "object"
        or not isinstance(schema.get("properties"), dict)
    ):
        raise ValueError(f'schema {path}: must be an object schema with properties ("type": "object")')
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as err:
        raise ValueError(f"schema {path}: not a valid JSON Schema: {err.message}") from None
    return schema


def schema_name(path: str, schema: dict[str, Any]) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", str(schema.get("title") or Path(path).stem).lower()).strip("_")


class ExtractJSONConfig(LLMBackend, GeneratorConfig):
    kind: str = Field("extract_json", pattern="^extract_json$")
    schemas: list[str] = Field(min_length=1, description="JSON Schema files or globs (object schemas).")
    schema_in: Literal["system", "user"] = Field(
        "system", description="Where extract_json.extract shows the schema (the other families have their place)."
    )
    show: Literal["schema", "name"] = Field(
        "schema", description="Show the whole schema, or only its name (a format the model learns by name)."
    )
    min_coverage: float = Field(0.5, gt=0.0, le=1.0, description="Share of properties a record must fill.")
    per_record: int = Field(1, ge=1, description="Examples per record and schema, each from another template.")
    holdout: float = Field(
        0.3, gt=0.0, lt=1.0, description="Share of request families (templates) that only ask about held-out records."
    )
    layouts: list[Literal["export", "email", "chat", "web_form", "prose"]] = Field(
        default_factory=lambda: ["export", "email", "chat", "web_form", "prose"],
        min_length=1,
        description="How a field record (a ticket) may be shown, drawn per example.",
    )
    _schemas: dict[str, tuple[str, dict[str, Any]]] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load(self):
        for pattern in self.schemas:
            paths = sorted(glob.glob(pattern)) or ([pattern] if Path(pattern).is_file() else [])
            if not paths:
                raise ValueError(f"schemas: {pattern!r} matches no file; put JSON Schemas there or fix the path")
            for path in paths:
                schema = load_schema(path)
                name = schema_name(path, schema)
                if name in self._schemas and self._schemas[name][0] != path:
                    raise ValueError(
                        f"schemas {self._schemas[name][0]} and {path} share the name {name!r}; retitle one"
                    )
                self._schemas[name] = (path, schema)
        return self

    @property
    def loaded(self) -> dict[str, dict[str, Any]]:
        return {name: schema for name, (_, schema) in self._schemas.items()}

    def input_files(self) -> list[str]:
        return [path for path, _ in self._schemas.values()]

    def json_schemas(self) -> dict[str, Any]:
        return self.loaded


def norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def records_of(row: dict[str, Any]) -> list[tuple[str, dict[str, str], str | dict[str, str]]]:
    """(label, {key: value}, text shown in the prompt, or {layout: text} for a field record) for each record found
    in a document row."""
    out = []
    fields = loads_obj(row["meta"]).get("fields")
    if isinstance(fields, dict) and fields:
        values = {"id": row["doc_id"], "title": row["title"], "subject": row["title"], "text": row["text"]}
        values.update({k: str(v) for k, v in fields.items() if v not in (None, "")})
        out.append((row["doc_id"], values, field_layouts(values)))
        return out
    pairs = {}
    for line in row["text"].split("\n"):
        m = _KEY_VALUE.match(line)
        if m and not m.group(2).startswith("//"):
            pairs[m.group(1).strip()] = m.group(2).strip()
    if len(pairs) >= 2:
        out.append((row["id"], {"title": row["title"], **pairs}, row["text"]))
    for block in markdown_blocks(row["text"]):
        if block.kind != "table":
            continue
        lines = [ln for ln in block.text.split("\n") if ln.strip().startswith("|")]
        if len(lines) < 3:
            continue
        header = [c.strip() for c in lines[0].strip().strip("|").split("|")]
        for line in lines[2:]:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != len(header) or not cells[0]:
                continue
            intro = row["section"].split(" > ")[-1] if row["section"] else row["title"]
            shown = f"{intro}\n\n{lines[0]}\n{lines[1]}\n{line}"
            out.append((f"{row['id']}:{cells[0]}", dict(zip(header, cells, strict=True)), shown))
    return out


def field_layouts(values: dict[str, str]) -> dict[str, str]:
    """A field record as the export's lines and as four other layouts a person pastes: an e-mail, a chat
    transcript, a web form and running prose. Every field value is in every layout."""
    body = values.get("body") or values.get("text", "")
    subject = values.get("subject") or values.get("title", "")
    ref = values.get("ticket_id") or values["id"]
    rest = {k: v for k, v in values.items() if k not in ("id", "title", "subject", "text", "body", "ticket_id")}

    def label(key: str) -> str:
        return key.replace("_", " ").capitalize()

    export = [f"{label(k)}: {v}" for k, v in values.items() if k not in ("text", "subject")]
    email = [f"Subject: [{ref}] {subject}", *(f"X-{label(k).replace(' ', '-')}: {v}" for k, v in rest.items())]
    chat_facts = ", ".join(f"{label(k).lower()} {v}" for k, v in rest.items())
    form = ["Contact form submission", f"Reference: {ref}", f"Topic: {subject}",
            *(f"{label(k)}: {v}" for k, v in rest.items()), "Message:"]  # fmt: skip
    facts = "; ".join(f"its {label(k).lower()} is {v}" for k, v in rest.items())
    return {
        "export": "\n".join(export) + "\n\n" + body,
        "email": "\n".join(email) + "\n\n" + body,
        "chat": f"Chat transcript, case {ref} ({chat_facts})\nCustomer: {subject}. {body}\nAgent: I have "
        "logged this for the team.",
        "web_form": "\n".join(form) + "\n" + body,
        "prose": f'Case {ref} is about "{subject}"'
        + (f": {facts}" if facts else "")
        + f". The customer wrote: {body}",
    }


def _one(shown: str | dict[str, str]) -> str:
    return shown["export"] if isinstance(shown, dict) else shown


_NO_VALUE = object()


def _types(prop: dict[str, Any]) -> list[str]:
    t = prop.get("type", "string")
    return list(t) if isinstance(t, list) else [t]


def coerce(value: str, prop: dict[str, Any]) -> Any:
    """``value`` as the property's type, or _NO_VALUE when it does not fit."""
    if "enum" in prop:
        by_norm = {norm(str(e)): e for e in prop["enum"]}
        return by_norm.get(norm(value), _NO_VALUE)
    types = [t for t in _types(prop) if t != "null"] or ["string"]
    kind = types[0]
    if kind in ("number", "integer"):
        m = _NUMBER.search(value)
        if not m:
            return _NO_VALUE
        number = float(m.group(0).replace(",", ""))
        return int(number) if kind == "integer" else number
    if kind == "boolean":
        word = value.strip().lower()
        if word in ("yes", "true", "y", "1", "included", "free"):
            return True
        if word in ("no", "false", "n", "0", "none", "-", "not included"):
            return False
        return _NO_VALUE
    if kind == "array":
        items = [v.strip() for v in re.split(r"[,;]", value) if v.strip()]
        item_prop = prop.get("items") or {}
        coerced = [coerce(v, item_prop) for v in items]
        return _NO_VALUE if any(c is _NO_VALUE for c in coerced) else coerced
    return value.strip() if kind == "string" else _NO_VALUE


def default_for(prop: dict[str, Any]) -> Any:
    if "default" in prop:
        return prop["default"]
    types = _types(prop)
    if "null" in types:
        return None
    return {"string": "", "number": 0, "integer": 0, "boolean": False, "array": [], "object": {}}.get(
        types[0], _NO_VALUE
    )


def fill(schema: dict[str, Any], record: dict[str, str]) -> tuple[dict[str, Any], int]:
    """(object, properties filled from the record); properties with no value and no default are left out."""
    by_norm = {norm(k): v for k, v in record.items()}
    obj, found = {}, 0
    for name, prop in schema["properties"].items():
        keys = [norm(k) for k in prop.get("x-from", [])] + [norm(name)]
        key = next((k for k in keys if k in by_norm), None)
        if key is None:
            close = difflib.get_close_matches(norm(name), list(by_norm), n=1, cutoff=0.85)
            key = close[0] if close else None
        value = coerce(by_norm[key], prop) if key is not None else _NO_VALUE
        if value is not _NO_VALUE:
            obj[name], found = value, found + 1
        elif (fallback := default_for(prop)) is not _NO_VALUE:
            obj[name] = fallback
    return obj, found


@register_generator(
    "extract_json",
    config=ExtractJSONConfig,
    variables={"schema_name", "schema_json", "show_schema", "schema_in", "record", "answer", "title"},
)
def generate_extract_json(ctx: GenerateContext, config: ExtractJSONConfig, specs) -> list[dict]:
    """Documents and records to JSON objects of the configured schemas, validated with jsonschema."""
    from jsonschema.validators import validator_for

    schemas = config.loaded
    validators = {name: validator_for(s)(s) for name, s in schemas.items()}
    # Request families (templates): held-out ones ask for the records of held-out documents, the others train.
    held = held_out([spec.name for spec in specs], config.holdout, str(ctx.seed), "extract_json", "families")
    families = {True: [s for s in specs if s.name in held], False: [s for s in specs if s.name not in held]}
    jobs = []  # (row, record label, text shown, schema name, object)
    for row in ctx.documents_for(config):
        for label, record, shown in records_of(row):
            for name, schema in schemas.items():
                obj, found = fill(schema, record)
                if found / len(schema["properties"]) < config.min_coverage:
                    continue
                jobs.append([row, label, shown, name, obj, found])
    if config.uses_llm():  # the LLM fills the object from the text shown; the client validates and repairs
        from curate.templating import Renderer, prompt_messages, prompt_template

        rt, renderer = ctx.llm, Renderer()
        spec = prompt_template(ctx.templates, "prompt.extract_json", {"schema_name", "record"})
        requests = [prompt_messages(renderer, spec, {"schema_name": j[3], "record": _one(j[2])}) for j in jobs]
        ctx.llm_rows += len(requests)
        answers = rt.map(
            lambda job: rt.client.chat_json(job[0], schemas[job[1]], job[1]),
            zip(requests, [j[3] for j in jobs], strict=True),
        )
        for job, answer in zip(jobs, answers, strict=True):
            job[4] = answer if isinstance(answer, Exception) else answer.value
    out = []
    for row, label, shown, name, obj, found in jobs:
        if isinstance(obj, Exception):
            ctx.reject("extract_json", failure_reason(obj), f"{label} as {name}: {obj}", id=label)
            continue
        errors = sorted(validators[name].iter_errors(obj), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            ctx.reject("extract_json", "schema_invalid", f"{label} as {name}: {where}: {errors[0].message}", id=label)
            continue
        rng = ctx.rng("extract_json", name, label)
        test = ctx.is_held_out(row)
        for spec in pick(rng, families[test] or specs, config.per_record):
            layout = rng.choice(sorted(config.layouts)) if isinstance(shown, dict) else None
            variables = {
                "schema_name": name,
                "schema_json": json.dumps(schemas[name], indent=2, ensure_ascii=False),
                "show_schema": config.show == "schema",
                "schema_in": config.schema_in,
                "record": shown[layout] if layout else shown,
                "answer": json.dumps(obj, ensure_ascii=False),
                "title": row["title"],
                "variant": rng.randrange(1_000_000),
            }
            meta = {"schema": name, "record": label, "filled": found, "section": row["section"], "holdout": test}
            if layout:
                meta["layout"] = layout
            if config.uses_llm():
                meta.update(model=ctx.llm.settings.model, writer="prompt.extract_json")
            example = ctx.example(
                "extract_json", spec, variables, source_ids=[row["id"]], group=row["doc_id"], meta=meta
            )
            if example:
                if config.uses_llm():
                    example["generator"] = "llm"
                out.append(example)
    return out
