"""The recipe: one YAML file, validated at the door. Unknown keys are errors that name the key path.

``load_recipe(path, overrides)`` reads the file, applies ``--set a.b=c`` overrides to the raw mapping (the full
path, or a short form one section alone has: ``sft.max_steps`` is ``train.sft.max_steps``),
validates it with pydantic, then validates each stage's ``with`` and each generator entry against the
config model that stage or generator registered. Every error names the key path, the bad value and a fix.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from curate import __version__
from curate.blocklist import Blocklist
from curate.config import Budgeted, Strict, apply_overrides, format_errors, problems_error, read_yaml, yaml_lines
from curate.errors import GristmillError, RecipeError
from curate.layout import RunLayout
from curate.llm.client import redact_url
from curate.readers.base import ReadOptions
from train.config import EvalSection, ExportSection, TrainSection


class FieldsSection(Strict):
    text: str = Field("text", description="Field holding the document text in .jsonl and .csv inputs.")
    id: str | None = Field("id", description="Field holding the record id; it becomes doc_id. Null: hash ids.")
    title: str | None = Field("title", description="Field holding the title (a ticket subject, say).")


_DEFAULTS = ReadOptions()


class InputSection(Strict):
    paths: list[str] = Field(min_length=1, description="Files, folders (read recursively) or globs, from the cwd.")
    fields: FieldsSection = Field(default_factory=FieldsSection, description="Field names for jsonl/csv records.")
    max_file_bytes: int = Field(
        _DEFAULTS.max_file_bytes,
        ge=1,
        description="A bigger file is a file_too_large reject (256 MiB); JSONL and mbox are streamed, never capped.",
    )
    max_unpacked_bytes: int = Field(
        _DEFAULTS.max_unpacked_bytes,
        ge=1,
        description="A DOCX/PPTX/XLSX whose parts unpack past this is a zip_bomb (512 MiB).",
    )
    max_pages: int = Field(_DEFAULTS.max_pages, ge=1, description="A PDF with more pages is a too_many_pages reject.")
    sheets: list[str] | None = Field(None, description="Spreadsheet sheets to read (.xlsx, .xls); default every one.")
    html_main_content: bool = Field(
        False,
        description="Keep only a web page's main content (trafilatura drops menus, banners and footers); "
        "pip install 'gristmill[web]'.",
    )

    @field_validator("html_main_content")
    @classmethod
    def _web_extra(cls, on: bool) -> bool:
        if on:
            from curate.readers.html import trafilatura_module

            try:
                trafilatura_module()
            except ImportError as err:
                raise ValueError(str(err)) from None
        return on

    @property
    def options(self) -> ReadOptions:
        return ReadOptions(
            self.max_file_bytes,
            self.max_unpacked_bytes,
            self.max_pages,
            tuple(self.sheets) if self.sheets else None,
            self.html_main_content,
        )


class TemplatesSection(Strict):
    dirs: list[str] = Field(default_factory=list, description="Extra template folders, searched before built-ins.")


class StageStep(Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    use: str = Field(description="The stage, as family.name (see `gristmill stages`).")
    version: int | None = Field(None, ge=1, description="Pin a stage version; default the newest.")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with", description="The stage's config.")


class PersonaSection(Strict):
    name: str = Field(description="The assistant's name.")
    system: str = Field(description="System prompt put on every example.")
    description: str | None = Field(None, description="One line on what the assistant is, used in its answers.")
    company: str | None = Field(None, description="The company the assistant works for.")


class ReviewSection(Strict):
    file: str = Field(description="The decisions file `gristmill review` writes (<run>/review/decisions.jsonl).")
    only_accepted: bool = Field(False, description="Keep only examples a reviewer accepted (or edited).")


class MixSection(Strict):
    caps: dict[str, int] = Field(default_factory=dict, description="Most examples kept per kind.")
    ratios: dict[str, float] = Field(default_factory=dict, description="Relative shares of the listed kinds.")
    exclude_ids: list[str] | str = Field(
        default_factory=list, description="Example ids dropped after review: a list, or a file of ids."
    )
    review: ReviewSection | None = Field(
        None,
        description="Review decisions applied by mix: the decisions file, or {file, only_accepted}. Rejected "
        "examples leave (excluded_by_review), edited ones train as edited.",
    )

    @field_validator("review", mode="before")
    @classmethod
    def _file_alone(cls, value: Any) -> Any:
        return {"file": value} if isinstance(value, str) else value


class SplitSection(Strict):
    holdout_documents: float = Field(
        0.2, ge=0.0, lt=1.0, description="Share of whole documents held out of training (their kinds test on them)."
    )
    test_fraction: float = Field(0.15, gt=0.0, lt=1.0, description="Share of examples without a side, for test.")
    min_test_per_kind: int = Field(30, ge=0, description="Test examples wanted per kind (at most half the kind).")
    max_test_per_kind: int | None = Field(
        None, ge=1, description="Most test examples per kind, a seeded choice (evaluation time grows with them)."
    )


class LLMSection(Budgeted):
    base_url: str | None = Field(None, description="An OpenAI-compatible endpoint; null: offline templates only.")
    model: str | None = Field(None, description="Model name at that endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Name of the environment variable holding the key.")
    max_concurrency: int = Field(8, ge=1, description="Requests in flight at once, for the whole run.")
    rpm: int | None = Field(None, ge=1, description="Requests per minute (token bucket); null: no limit.")
    tpm: int | None = Field(None, ge=1, description="Tokens per minute (estimated before, corrected after).")
    timeout_s: float = Field(60.0, gt=0, description="Seconds without a byte before a request counts as timed out.")
    request_deadline_s: float = Field(
        300.0, gt=0, description="Seconds a request may take in all, however slowly the server sends."
    )
    max_retry_after_s: float = Field(
        120.0, ge=0, description="Longest wait a server's Retry-After can ask for (inf or a day are clamped to this)."
    )
    max_response_bytes: int = Field(8 * 2**20, ge=1024, description="Longest response body read (8 MiB).")
    max_retries: int = Field(4, ge=0, description="Retries on 429, 5xx, timeouts and connection errors.")
    backoff_base_s: float = Field(0.5, ge=0, description="First backoff; doubles per retry, with full jitter.")
    backoff_max_s: float = Field(30.0, ge=0, description="Longest backoff (Retry-After can ask for more).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature of every request.")
    max_tokens: int = Field(512, ge=1, description="Completion tokens per request.")
    extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description="Request fields beyond OpenAI's that the server takes, sent with every request "
        "(llama-cpp-python's server: {repeat_penalty: 1.0}, since its default is 1.1).",
    )
    json_mode: Literal["auto", "schema", "object_schema", "object", "prompt"] = Field(
        "prompt",
        description="JSON via response_format json_schema (OpenAI), json_object with a schema (llama.cpp), "
        "json_object, or the prompt only; auto: what `gristmill llm check` recorded for the endpoint, else "
        "schema; a form the server refuses falls back to the next. Answers are always validated.",
    )
    json_repair_attempts: int = Field(1, ge=0, description="Repair turns for an answer that fails its schema.")
    max_failure_ratio: float = Field(
        0.1, ge=0, le=1, description="The run fails when more than this share of LLM rows failed after retries."
    )
    cache: bool = Field(True, description="Keep responses in <run>/work/llm_cache.sqlite (re-runs send nothing).")


class OutputSection(Strict):
    dir: str = Field(description="The run directory: work/, dataset/, model/, eval/ go under it.")


class Recipe(Strict):
    name: str = Field(description="Name of the dataset.")
    seed: int = Field(13, description="Seeds every choice: templates, phrasings, caps, the split.")
    executor: Literal["local", "ray"] = Field(
        "local",
        description="Where stages run: 'local' (datasets.map) or 'ray' (Ray Data; RAY_ADDRESS or a local Ray).",
    )
    num_proc: int = Field(1, ge=1, description="Processes for batch stages (measure before raising).")
    batch_size: int = Field(256, ge=1, description="Rows per batch given to a stage.")
    license: str = Field("other", description="Licence written into the dataset card.")
    input: InputSection
    templates: TemplatesSection = Field(default_factory=TemplatesSection)
    stages: list[StageStep] = Field(default_factory=list, description="Stages, run in this order.")
    generate: list[dict[str, Any]] = Field(default_factory=list, description="Generators, by kind.")
    persona: PersonaSection | None = None
    blocklist: Blocklist = Field(
        default_factory=Blocklist, description="Terms no generated response may mention (rejected in mix)."
    )
    mix: MixSection = Field(default_factory=MixSection)
    split: SplitSection = Field(default_factory=SplitSection)
    llm: LLMSection = Field(default_factory=LLMSection)
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    export: ExportSection | None = Field(None, description="Export the trained model at the end of run.")
    output: OutputSection | None = Field(None, description="Default: runs/<name>.")
    gristmill_version: str | None = Field(None, description="Written into recipe.resolved.yaml; not read.")

    _stages: list = PrivateAttr(default_factory=list)  # [(Stage, config)]
    _generators: list = PrivateAttr(default_factory=list)  # [(Generator, config)]

    @property
    def run_dir(self) -> Path:
        return Path(self.output.dir if self.output else f"runs/{self.name}")

    @property
    def layout(self) -> RunLayout:
        return RunLayout.create(self.run_dir, self.train.output_dir, self.input.paths)

    @property
    def resolved_stages(self) -> list:
        return self._stages

    @property
    def resolved_generators(self) -> list:
        return self._generators

    def resolved(self) -> dict[str, Any]:
        """The recipe as run: defaults filled, stage versions and full configs, the package version."""
        data = self.model_dump(mode="json", by_alias=True)
        data["stages"] = [
            {"use": s.name, "version": s.version, "with": cfg.model_dump(mode="json")} for s, cfg in self._stages
        ]
        data["generate"] = [cfg.model_dump(mode="json") for _, cfg in self._generators]
        data["output"] = {"dir": self.run_dir.as_posix()}
        data["llm"]["base_url"] = redact_url(self.llm.base_url)  # credentials come from the environment only
        data["gristmill_version"] = __version__
        return data


def _resolve_parts(raw: dict[str, Any]) -> tuple[list[str], list, list]:
    """Validate each stage's ``with`` and each generator entry against their registered configs.

    Works on the raw mapping, so these problems are reported together with the top-level ones."""
    from curate.generate import get_generator
    from curate.stages import get_stage

    problems: list[str] = []
    stages, generators = [], []
    for i, step in enumerate(raw.get("stages") or []):
        if not isinstance(step, dict) or not isinstance(step.get("use"), str):
            continue  # the top-level validation reports its shape
        try:
            stage = get_stage(step["use"], step.get("version") if isinstance(step.get("version"), int) else None)
        except GristmillError as err:
            problems.append(f"stages.{i}.use: {err}")
            continue
        try:
            stages.append((stage, stage.config.model_validate(step.get("with") or {})))
        except ValidationError as err:
            problems += format_errors(err, f"stages.{i}.with", stage.config)
    for i, entry in enumerate(raw.get("generate") or []):
        kind = entry.get("kind") if isinstance(entry, dict) else None
        if not kind:
            problems.append(f"generate.{i}: each entry needs a kind, for example {{kind: qa, per_doc: 3}}")
            continue
        try:
            generator = get_generator(kind)
        except GristmillError as err:
            problems.append(f"generate.{i}.kind: {err}")
            continue
        try:
            generators.append((generator, generator.config.model_validate(entry)))
        except ValidationError as err:
            problems += format_errors(err, f"generate.{i}", generator.config)
        if kind == "persona" and not raw.get("persona"):
            problems.append(
                f"generate.{i}: kind persona needs a persona section; add persona: {{name: ..., system: ...}}"
            )
    return problems, stages, generators


def validate_recipe(raw: Any, source: str = "recipe", positions: dict[tuple, int] | None = None) -> Recipe:
    if not isinstance(raw, dict):
        raise RecipeError(f"{source}: a recipe is a YAML mapping (name:, input:, ...), got {type(raw).__name__}")
    problems, stages, generators = _resolve_parts(raw)
    try:
        recipe = Recipe.model_validate(raw)
    except ValidationError as err:
        problems = format_errors(err, "", Recipe, positions) + problems
    if problems:
        raise problems_error(source, problems)
    recipe._stages, recipe._generators = stages, generators
    return recipe


def _sections() -> dict[str, type[BaseModel]]:
    """The recipe's top-level keys whose value is a section (a model with keys of its own)."""
    out = {}
    for name, field in Recipe.model_fields.items():
        for kind in (field.annotation, *get_args(field.annotation)):
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                out[name] = kind
    return out


def full_override(item: str) -> str:
    """``--set`` with the full path (``train.sft.max_steps=20``), or the short form where one section alone has
    its first key (``sft.max_steps=20`` is train's): the same keys on every command. A short form two sections
    share, or a key no section has, is an error that names the full paths to use."""
    path, sep, _ = item.partition("=")
    first = path.split(".", 1)[0]
    if not sep or not first or first in Recipe.model_fields:
        return item
    owners = [name for name, section in _sections().items() if first in section.model_fields]
    if len(owners) == 1:
        return f"{owners[0]}.{item}"
    if owners:
        paths = " or ".join(f"{o}.{path}" for o in owners)
        raise RecipeError(f"--set {item!r}: {first} is a key of {' and '.join(owners)}; give the full path: {paths}")
    known = [*Recipe.model_fields, *(f"{n}.{k}" for n, s in _sections().items() for k in s.model_fields)]
    close = difflib.get_close_matches(path, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise RecipeError(
        f"--set {item!r}: {first} is no recipe key; give the full path from the top of the recipe "
        f"(train.sft.max_steps=20, split.test_fraction=0.2){hint}"
    )


def train_override(item: str) -> str:
    """A ``--set`` of ``gristmill train``, read as on every command (``full_override``), where a train key is
    never ambiguous (``model=`` is ``train.model``, ``seed=`` is ``train.seed``); a key of another section is an
    error, since the data is already curated."""

    if item.partition("=")[0].split(".", 1)[0] in TrainSection.model_fields:
        return f"train.{item}"
    full = full_override(item)
    if not full.startswith("train."):
        raise RecipeError(
            f"--set {item!r}: train takes train.* keys; {full.partition('=')[0]} shapes the curated data, so "
            "set it on `gristmill curate` or `gristmill run`"
        )
    return full


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    raw = read_yaml(path, f"recipe {str(path)!r} not found; write one with `gristmill init DOCS_DIR`")
    if isinstance(raw, dict):
        raw = apply_overrides(raw, [full_override(o) for o in overrides or []])
    return validate_recipe(raw, str(path), yaml_lines(path.read_text(encoding="utf-8")))
