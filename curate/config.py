"""Config is data, validated at the door: the strict pydantic base of every config section (the recipe, policy
files, the train section), key-path error messages with "did you mean", YAML reading with line and column, and
``--set a.b.c=value`` overrides.

Every problem is reported at once, each naming the key path, the bad value and a fix::

    stages.2.with.max_wrds: unknown key (value 150); did you mean 'max_words'?
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from curate.errors import RecipeError


class Strict(BaseModel):
    """A config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class PriceSection(Strict):
    input_per_1m: float = Field(ge=0, description="USD per million prompt tokens.")
    output_per_1m: float = Field(ge=0, description="USD per million completion tokens.")


class Budgeted(Strict):
    """An endpoint's budget and what it costs: a budget with no way to count the cost is an error, never a
    budget that is silently not enforced."""

    prices: dict[str, PriceSection] = Field(default_factory=dict, description="Prices per model, for the cost.")
    cost_reported: bool = Field(
        False, description="The endpoint reports each response's cost (usage.cost, as OpenRouter): no price needed."
    )
    budget_usd: float | None = Field(
        None, ge=0, description="Send no request that could pass this (counting the requests in flight)."
    )

    @model_validator(mode="after")
    def _budget_is_enforceable(self):
        model = getattr(self, "model", None)
        if self.budget_usd is not None and model and model not in self.prices and not self.cost_reported:
            raise ValueError(
                f"budget_usd={self.budget_usd} cannot be enforced: prices has no price for model {model!r}; add "
                f"prices: {{{model}: {{input_per_1m: ..., output_per_1m: ...}}}}, or cost_reported: true when the "
                "endpoint reports usage.cost"
            )
        return self


def describe_value(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def format_errors(
    err: ValidationError, prefix: str, model: type[BaseModel] | None, positions: dict[tuple, int] | None = None
) -> list[str]:
    """One line per problem: the key path under ``prefix``, the bad value and a fix; with ``positions`` (from
    ``yaml_lines``), the line in the file too."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in (prefix, *e["loc"]) if p != "")
        before = len(lines)
        if e["type"] == "extra_forbidden":
            allowed = allowed_keys(model, e["loc"][:-1]) if model else []
            close = difflib.get_close_matches(str(e["loc"][-1]), allowed, n=1)
            fix = (
                f"did you mean {close[0]!r}?"
                if close
                else f"allowed keys: {', '.join(allowed)}"
                if allowed
                else "remove it"
            )
            lines.append(f"{loc}: unknown key (value {describe_value(e['input'])}); {fix}")
        elif e["type"] == "missing":
            lines.append(f"{loc}: required, but missing; add it")
        else:
            lines.append(f"{loc}: {e['msg']} (got {describe_value(e['input'])})")
        path = tuple(e["loc"])
        while path and path not in (positions or {}):
            path = path[:-1]
        if positions and path in positions and len(lines) > before:
            lines[-1] += f" (line {positions[path]})"
    return lines


def allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """Field names (aliases where set) of the model at ``loc`` inside ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        field = current.model_fields.get(str(part)) or next(
            (f for f in current.model_fields.values() if f.alias == part), None
        )
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        for arg in list(candidates):
            candidates += list(getattr(arg, "__args__", ()))
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    if current is None:
        return []
    return [f.alias or name for name, f in current.model_fields.items()]


def problems_error(source: str, problems: list[str]) -> RecipeError:
    """One RecipeError listing every problem of ``source`` (a file, or a section)."""
    return RecipeError(f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems))


def validate_section(
    model: type[BaseModel], raw: Any, source: str, prefix: str = "", positions: dict[tuple, int] | None = None
):
    """``model`` validated from ``raw``, or a RecipeError naming ``source`` and every problem (with its line, given
    ``positions``)."""
    try:
        return model.model_validate(raw)
    except ValidationError as err:
        raise problems_error(source, format_errors(err, prefix, model, positions)) from None


def yaml_lines(text: str) -> dict[tuple, int]:
    """{key path: line number} of every node in a YAML document (keys as written, list items by index)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    out: dict[tuple, int] = {}

    def walk(node, path: tuple) -> None:
        out[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, value in enumerate(node.value):
                walk(value, (*path, i))

    if root is not None:
        walk(root, ())
    return out


def read_yaml(path: Path, missing: str) -> Any:
    """A YAML file's content; RecipeError with ``missing`` when absent, with line and column when malformed."""
    if not path.is_file():
        raise RecipeError(missing)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise RecipeError(f"{path}{where}: not valid YAML: {getattr(err, 'problem', err)}") from None


_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides (values parsed as YAML; list items by index) to the raw mapping."""
    for item in overrides:
        path, sep, value_text = item.partition("=")
        if not sep or not path:
            raise RecipeError(f"--set {item!r}: expected key.path=value, for example --set split.test_fraction=0.2")
        try:
            value = yaml.safe_load(value_text) if value_text else ""
        except yaml.YAMLError:
            value = value_text
        if isinstance(value, str) and _FLOAT.fullmatch(value):  # YAML 1.1 reads 2e-3 (no dot) as a string
            value = float(value)
        parts = path.split(".")
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise RecipeError(f"--set {item!r}: {where} is not an index of a {len(node)}-item list")
                node = node[int(part)]
            else:
                if node.get(part) is None:
                    node[part] = {}
                node = node[part]
                if not isinstance(node, (dict, list)):
                    raise RecipeError(f"--set {item!r}: {where} is a value, not a section")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise RecipeError(f"--set {item!r}: {path} is not an index of a {len(node)}-item list")
            node[int(last)] = value
        else:
            node[last] = value
    return raw
