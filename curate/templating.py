"""Templates are data: jinja2 files with YAML front matter, rendered in a sandbox with StrictUndefined.

A template file looks like::

    ---
    name: qa.what_about          # family.name; the family is the kind
    version: 1
    kind: qa
    requires: [topic, text]       # variables the template uses; checked before any work
    description: Asks what the docs say about the section's topic.
    ---
    {% block user %}What does our documentation say about {{ topic }}?{% endblock %}
    {% block assistant %}{{ text }}{% endblock %}

Blocks ``user`` and ``assistant`` are required, ``system`` is optional. Every template also gets ``variant``,
a seeded integer, to pick one of several phrasings (``asks[variant % asks|length]``), and the filter
``decorate(variant)``, which adds a greeting, thanks or hedge from one list shared by every kind (or nothing,
half the time). Document text reaches a
template only as a variable, so ``{{ 7*7 }}`` inside a document stays literal.

Built-in templates ship inside the wheel (``curate/templates``, force-included from the repo's
``templates/``); ``templates.dirs`` from the recipe are searched first, so a user template with the same
name replaces a built-in one.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from curate.errors import TemplateError

BLOCKS_REQUIRED = ("user", "assistant")
# Templates of kind "prompt" are requests to an LLM (labelling, generation, judging): system and user blocks.
PROMPT_KIND = "prompt"
ALWAYS_PROVIDED = frozenset({"variant"})


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    version: int
    kind: str
    requires: tuple[str, ...]
    description: str
    path: str
    body: str  # the jinja source with the front matter replaced by blank lines (line numbers stay right)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


def builtin_templates_dir() -> Path:
    """The shipped templates: inside the installed package, or the repo's templates/ in a source checkout."""
    packaged = importlib.resources.files("curate") / "templates"
    if packaged.is_dir():
        return Path(str(packaged))
    source_tree = Path(__file__).resolve().parent.parent / "templates"
    if source_tree.is_dir():
        return source_tree
    raise TemplateError("the built-in templates are missing from this installation; reinstall gristmill")


# The decorations a person adds to a request, one list for every kind and both splits, so none of them tells
# a refusal from an answer (a model trained on "thanks" only in refusals learns to decline thanks): half the
# requests go plain. Templates draw one with ``{{ request | decorate(variant) }}``; the shortcut audit
# (curate/shortcuts.py) checks that no kind owns a decoration.
DECORATIONS = (
    *["{}"] * 12,
    "Hi, {}", "Hi! {}", "Hello, {}", "Hey, {}",
    "{} Thanks!", "{} Thanks.", "{} Thanks in advance.", "Hi! {} Thanks.",
    "Quick question: {}", "Quick one: {}", "{} A short answer is fine.", "I need help. {}",
)  # fmt: skip


def decorate(request: str, variant: int) -> str:
    """``request`` with the decoration ``variant`` draws (a hash of it, so the draw is independent of the
    phrasing ``variant % n`` picks); after "Hi, " a capital that starts a sentence is lowered."""
    frame = DECORATIONS[(int(variant) * 2654435761 >> 8) % len(DECORATIONS)]
    if frame.split("{}")[0].endswith(", ") and request[:2].istitle() and not request.startswith(("I ", "I'")):
        request = request[0].lower() + request[1:]
    return frame.format(request)


def _environment():
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False
    )
    env.filters["decorate"] = decorate
    return env


def parse_template(path: Path) -> TemplateSpec:
    """Read one template file and check its front matter and syntax (no rendering)."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        raise TemplateError(f"{path}: no front matter; start the file with a '---' block naming name, version, kind")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise TemplateError(f"{path}: the front matter is not closed; add a '---' line after it")
    try:
        front = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as err:
        raise TemplateError(f"{path}: front matter is not valid YAML: {err}") from None
    missing = [k for k in ("name", "version", "kind") if k not in front]
    if missing:
        raise TemplateError(f"{path}: front matter lacks {', '.join(missing)}; add them")
    unknown = set(front) - {"name", "version", "kind", "requires", "description"}
    if unknown:
        raise TemplateError(
            f"{path}: unknown front matter keys {sorted(unknown)}; allowed: name, version, kind, requires, description"
        )
    name, kind, version = str(front["name"]), str(front["kind"]), front["version"]
    if not isinstance(version, int) or version < 1:
        raise TemplateError(f"{path}: version must be a positive integer, got {version!r}")
    if name.split(".", 1)[0] != kind or "." not in name:
        raise TemplateError(f"{path}: name {name!r} must be '{kind}.<name>' (its family is its kind)")
    requires = front.get("requires") or []
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise TemplateError(f"{path}: requires must be a list of variable names, got {requires!r}")
    body = "\n" * (text[: end + 5].count("\n")) + text[end + 5 :]
    spec = TemplateSpec(name, version, kind, tuple(requires), str(front.get("description", "")), str(path), body)
    _check_source(spec)
    return spec


def _check_source(spec: TemplateSpec) -> None:
    from jinja2 import TemplateSyntaxError, meta, nodes

    env = _environment()
    try:
        ast = env.parse(spec.body)
        compiled = env.from_string(spec.body)
    except TemplateSyntaxError as err:
        raise TemplateError(f"{spec.path}:{err.lineno}: template syntax error: {err.message}") from None
    required = ("user",) if spec.kind == PROMPT_KIND else BLOCKS_REQUIRED
    missing_blocks = [b for b in required if b not in compiled.blocks]
    if missing_blocks:
        what = "a prompt template needs a user block" if spec.kind == PROMPT_KIND else "user and assistant blocks"
        raise TemplateError(f"{spec.path}: no {{% block {missing_blocks[0]} %}}; {what}")
    # Names the template assigns itself ({% set %} in every branch of an if) are not inputs.
    assigned = {n.name for n in ast.find_all(nodes.Name) if n.ctx == "store"}
    undeclared = meta.find_undeclared_variables(ast) - assigned - set(spec.requires) - ALWAYS_PROVIDED
    if undeclared:
        raise TemplateError(f"{spec.path}: uses {sorted(undeclared)} without declaring them; add them to requires")


def load_templates(extra_dirs: list[str] | None = None) -> dict[str, TemplateSpec]:
    """Every template by name; folders in ``extra_dirs`` are searched first and win over built-in names."""
    found: dict[str, TemplateSpec] = {}
    dirs = [Path(d) for d in (extra_dirs or [])]
    for d in dirs:
        if not d.is_dir():
            raise TemplateError(f"templates.dirs: {str(d)!r} is not a folder; create it or remove it from the recipe")
    for d in [*dirs, builtin_templates_dir()]:
        for path in sorted(d.rglob("*.jinja")):
            spec = parse_template(path)
            found.setdefault(spec.name, spec)
    return found


def templates_for(
    kind: str, templates: dict[str, TemplateSpec], names: list[str] | None, provided: set[str]
) -> list[TemplateSpec]:
    """The templates a generator of ``kind`` will use, checked against the variables it provides."""
    if names:
        unknown = [n for n in names if n not in templates]
        if unknown:
            raise TemplateError(f"no template named {unknown[0]!r}; run `gristmill templates` to list them")
        chosen = [templates[n] for n in names]
    else:
        chosen = sorted((t for t in templates.values() if t.kind == kind), key=lambda t: t.name)
    if not chosen:
        raise TemplateError(f"no templates of kind {kind!r}; add one under templates/{kind}/ or to templates.dirs")
    for spec in chosen:
        if spec.kind != kind:
            raise TemplateError(f"template {spec.name} is of kind {spec.kind!r}, not {kind!r}")
        lacking = set(spec.requires) - provided - ALWAYS_PROVIDED
        if lacking:
            raise TemplateError(
                f"{spec.path}: requires {sorted(lacking)}, which {kind} generators do not provide; "
                f"available: {sorted(provided)}"
            )
    return chosen


class Renderer:
    """Compiles each template once and renders its blocks."""

    def __init__(self) -> None:
        self._env = _environment()
        self._compiled: dict[str, Any] = {}

    def render(self, spec: TemplateSpec, variables: dict[str, Any]) -> dict[str, str]:
        from jinja2 import TemplateError as JinjaError

        missing = [r for r in spec.requires if r not in variables]
        if missing:
            raise TemplateError(f"{spec.path}: needs {missing}, which were not given")
        compiled = self._compiled.get(spec.path)
        if compiled is None:
            compiled = self._compiled[spec.path] = self._env.from_string(spec.body)
        out = {}
        try:
            context = compiled.new_context(dict(variables))
            for block, render_block in compiled.blocks.items():
                out[block] = "".join(render_block(context)).strip()
        except JinjaError as err:
            raise TemplateError(f"{spec.path} ({spec.ref}): rendering failed: {err}") from None
        except Exception as err:  # a filter on the wrong type, a division by zero: still the template's fault
            raise TemplateError(f"{spec.path} ({spec.ref}): rendering failed: {type(err).__name__}: {err}") from None
        return out


def prompt_messages(renderer: Renderer, spec: TemplateSpec, variables: dict[str, Any]) -> list[dict[str, str]]:
    """A prompt template rendered as chat messages for the LLM (system when not empty, then user)."""
    turns = renderer.render(spec, variables)
    system = [{"role": "system", "content": turns["system"]}] if turns.get("system") else []
    return [*system, {"role": "user", "content": turns["user"]}]


def prompt_template(templates: dict[str, TemplateSpec], name: str, provided: set[str]) -> TemplateSpec:
    """The prompt template ``name``, checked to be of kind prompt and to need only ``provided`` variables."""
    return templates_for(PROMPT_KIND, templates, [name], provided)[0]
