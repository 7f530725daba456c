"""The layering rules, read from the source with ``ast`` (imports inside functions count too):

- no import cycle between modules of ``curate/`` and ``train/`` (importing ``a.b.c`` also runs ``a.b``);
- no private name (``_x``) imported from another module;
- ``train`` imports only ``curate.errors``, ``curate.config``, ``curate.layout`` and ``curate.output`` (the dataset
  contract) and ``curate.text`` (the one word tokenizer and fence parser, pure standard library); evaluation's
  endpoint backend also imports ``curate.llm`` (one client for every OpenAI-compatible call); outside
  ``curate/cli/``, ``curate`` imports only ``train.config``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

TRAIN_MAY_IMPORT = {"curate", "curate.errors", "curate.config", "curate.layout", "curate.output", "curate.text"}
# The endpoint backend (and the eval's model descriptions) go through the project's one LLM client.
ENDPOINT_MAY_IMPORT = {"curate.llm", "curate.llm.client", "curate.llm.runtime"}
ENDPOINT_MODULES = {"train.eval.endpoint", "train.eval.run"}
CURATE_MAY_IMPORT = {"train", "train.config"}


def modules(root: Path = REPO) -> dict[str, Path]:
    found = {}
    for package in ("curate", "train"):
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or "", line) for every import in the module, at any depth."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                out.append((submodule, "", node.lineno) if submodule in known else (base, alias.name, node.lineno))
    return out


def graph(known: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> modules it runs on import: the target and its packages (not the importer's own packages)."""
    edges: dict[str, set[str]] = {name: set() for name in known}
    for name, path in known.items():
        own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
        for target, _, _ in imports(name, path, known):
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in known and prefix not in own:
                    edges[name].add(prefix)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def private_imports(known: dict[str, Path], root: Path = REPO) -> list[str]:
    out = []
    for name, path in known.items():
        for target, imported, line in imports(name, path, known):
            if imported.startswith("_") and not imported.startswith("__") and target in known and target != name:
                out.append(f"{path.relative_to(root)}:{line}: {imported} from {target}")
    return out


def rule_breaks(known: dict[str, Path], root: Path = REPO) -> list[str]:
    out = []
    for name, path in known.items():
        for target, _, line in imports(name, path, known):
            top = target.split(".")[0]
            allowed = TRAIN_MAY_IMPORT | (ENDPOINT_MAY_IMPORT if name in ENDPOINT_MODULES else set())
            if name.startswith("train") and top == "curate" and target not in allowed:
                out.append(f"{path.relative_to(root)}:{line}: train imports {target}")
            if name.startswith("curate") and not name.startswith("curate.cli") and top == "train":
                if target not in CURATE_MAY_IMPORT:
                    out.append(f"{path.relative_to(root)}:{line}: curate (outside cli/) imports {target}")
    return sorted(set(out))


def test_no_import_cycles():
    assert cycles(graph(modules())) == []


def test_no_private_name_is_imported_from_another_module():
    assert private_imports(modules()) == []


def test_train_imports_only_the_dataset_contract_and_curate_only_train_config():
    assert rule_breaks(modules()) == []


def test_the_checks_see_a_cycle_a_private_import_and_a_forbidden_import(tmp_path):
    """The checker itself, on a tree made to break each rule once."""
    for path, text in {
        "curate/__init__.py": "",
        "curate/a.py": "def f():\n    from curate.b import g\n",
        "curate/b.py": "from curate.a import _helper\n",
        "curate/c.py": "from train.sft import train_model\n",
        "train/__init__.py": "",
        "train/sft.py": "from curate.pipeline import curate\n",
    }.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    known = modules(tmp_path)
    assert cycles(graph(known)) == [["curate.a", "curate.b"]]
    assert private_imports(known, tmp_path) == ["curate/b.py:1: _helper from curate.a"]
    assert rule_breaks(known, tmp_path) == [
        "curate/c.py:1: curate (outside cli/) imports train.sft",
        "train/sft.py:1: train imports curate.pipeline",
    ]
