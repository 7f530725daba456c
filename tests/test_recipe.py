"""Recipe validation: unknown keys, bad values and missing parts fail at the door with key paths and fixes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from curate.config import apply_overrides
from curate.errors import RecipeError
from curate.recipe import load_recipe, validate_recipe
from tests.conftest import REPO, write

BASE = {"name": "t", "input": {"paths": ["docs"]}}


def problems(raw) -> str:
    with pytest.raises(RecipeError) as info:
        validate_recipe(raw, "r.yaml")
    return str(info.value)


def test_minimal_recipe_gets_defaults():
    recipe = validate_recipe(dict(BASE))
    assert recipe.seed == 13 and recipe.run_dir.as_posix() == "runs/t"
    assert recipe.split.test_fraction == 0.15 and recipe.train.model == "tiny"


def test_unknown_keys_name_the_path_and_suggest():
    msg = problems({**BASE, "sead": 3})
    assert "sead: unknown key" in msg and "did you mean 'seed'?" in msg
    msg = problems({**BASE, "split": {"test_fracton": 0.2}})
    assert "split.test_fracton: unknown key" in msg and "'test_fraction'" in msg
    msg = problems({**BASE, "stages": [{"use": "chunk.sections", "with": {"max_wrds": 10}}]})
    assert "stages.0.with.max_wrds: unknown key" in msg and "'max_words'" in msg


def test_bad_values_and_missing_fields():
    msg = problems({**BASE, "split": {"test_fraction": 1.5}})
    assert "split.test_fraction" in msg and "less than 1" in msg and "1.5" in msg
    msg = problems({"name": "t"})
    assert "input: required, but missing; add it" in msg
    msg = problems({**BASE, "stages": [{"use": "filter.length", "with": {"min_words": "many"}}]})
    assert "stages.0.with.min_words" in msg and "'many'" in msg


def test_unknown_stage_and_generator_kind():
    msg = problems({**BASE, "stages": [{"use": "normalise.text"}]})
    assert "stages.0.use" in msg and "normalize.text" in msg and "gristmill stages" in msg
    msg = problems({**BASE, "generate": [{"kind": "quiz"}]})
    assert "generate.0.kind" in msg and "Known kinds" in msg
    msg = problems({**BASE, "generate": [{"per_doc": 2}]})
    assert "generate.0: each entry needs a kind" in msg
    msg = problems({**BASE, "generate": [{"kind": "qa", "per_dok": 2}]})
    assert "generate.0.per_dok: unknown key" in msg and "'per_doc'" in msg


def test_persona_generator_needs_a_persona():
    assert "add persona:" in problems({**BASE, "generate": [{"kind": "persona"}]})


def test_all_problems_reported_at_once():
    msg = problems({**BASE, "sead": 1, "split": {"test_fraction": 2}, "stages": [{"use": "nope.nope"}]})
    assert msg.startswith("r.yaml: 3 problem(s)")


def test_stage_version_pin_and_resolved_recipe():
    recipe = validate_recipe({**BASE, "stages": [{"use": "filter.length", "version": 1}, {"use": "dedupe.exact"}]})
    resolved = recipe.resolved()
    assert resolved["stages"][0] == {"use": "filter.length", "version": 1, "with": {"min_words": 0, "max_words": None}}
    assert resolved["gristmill_version"]
    assert "stages.0.use" in problems({**BASE, "stages": [{"use": "normalize.text", "version": 7}]})


def test_overrides_apply_before_validation():
    raw = {**BASE, "stages": [{"use": "chunk.sections", "with": {"max_words": 100}}], "split": {}}
    out = apply_overrides(
        raw,
        ["seed=7", "split.test_fraction=0.3", "stages.0.with.max_words=50", "persona.name=Ada", "input.paths=[a, b]"],
    )
    assert out["seed"] == 7 and out["split"]["test_fraction"] == 0.3
    assert out["stages"][0]["with"]["max_words"] == 50 and out["persona"] == {"name": "Ada"}
    assert out["input"]["paths"] == ["a", "b"]
    # YAML 1.1 reads 2e-3 as a string; an override means the number.
    lr = apply_overrides({}, ["train.sft.learning_rate=2e-3", "name=1e5x"])
    assert lr["train"]["sft"]["learning_rate"] == 0.002 and lr["name"] == "1e5x"
    with pytest.raises(RecipeError, match="not an index"):
        apply_overrides(raw, ["stages.5.use=x"])
    with pytest.raises(RecipeError, match=r"expected key\.path=value"):
        apply_overrides(raw, ["seed"])


def test_every_command_takes_the_same_set_keys(tmp_path):
    """Before: `train --set sft.max_steps=20` worked and `run`/`curate --set sft.max_steps=20` failed."""
    from curate.recipe import train_override

    path = write(tmp_path / "r.yaml", yaml.safe_dump(BASE))
    for item in ("sft.max_steps=20", "train.sft.max_steps=20"):
        assert load_recipe(path, [item]).train.sft == {"max_steps": 20}  # curate and run
        assert train_override(item) == "train.sft.max_steps=20"  # train
    assert load_recipe(path, ["test_fraction=0.3"]).split.test_fraction == 0.3
    with pytest.raises(RecipeError, match=r"model is a key of llm and train; give the full path: llm\.model or"):
        load_recipe(path, ["model=smollm2-135m"])
    assert train_override("model=smollm2-135m") == "train.model=smollm2-135m"  # on train, a train key
    with pytest.raises(RecipeError, match=r"no recipe key; give the full path .*did you mean split\.test_fraction"):
        load_recipe(path, ["test_fractoin=0.3"])
    with pytest.raises(RecipeError, match=r"train takes train\.\* keys; split\.test_fraction shapes the curated"):
        train_override("split.test_fraction=0.3")


def test_load_recipe_errors_name_the_file(tmp_path):
    with pytest.raises(RecipeError, match="gristmill init"):
        load_recipe(tmp_path / "missing.yaml")
    bad = write(tmp_path / "bad.yaml", "name: x\ninput: [unclosed\n")
    with pytest.raises(RecipeError, match=r"bad.yaml:\d+:\d+: not valid YAML"):
        load_recipe(bad)
    listy = write(tmp_path / "list.yaml", "- a\n- b\n")
    with pytest.raises(RecipeError, match="a recipe is a YAML mapping"):
        load_recipe(listy)
    typo = write(tmp_path / "typo.yaml", yaml.safe_dump({**BASE, "outptu": {"dir": "x"}}))
    with pytest.raises(RecipeError, match=r"outptu: unknown key .*did you mean 'output'"):
        load_recipe(typo, ["seed=3"])


def test_shipped_recipes_validate(monkeypatch):
    monkeypatch.chdir(REPO)
    shipped = sorted(REPO.glob("sample_data/**/*.yaml"))
    recipes = [p for p in shipped if "input" in (yaml.safe_load(p.read_text()) or {})]
    assert recipes, "the sample recipe is shipped"
    for path in recipes:
        recipe = load_recipe(path)
        assert recipe.resolved_stages and recipe.resolved_generators


def test_init_writes_a_valid_recipe(tmp_path, monkeypatch):
    from curate.starter import starter_recipe

    write(tmp_path / "docs" / "a.md", "# A\n\ntext")
    write(tmp_path / "docs" / "t.csv", "ticket_id,subject,body\n1,Hi,Hello there\n")
    monkeypatch.chdir(tmp_path)
    text = starter_recipe(Path("docs"))
    recipe = validate_recipe(yaml.safe_load(text))
    assert recipe.input.fields.text == "body" and recipe.input.fields.id == "ticket_id"
    assert recipe.input.fields.title == "subject"
    assert "# " in text  # commented for a person


def _readme_recipe_table(text: str) -> dict[str, str]:
    """{key: default cell} of the README's recipe table."""
    lines = text.split("| key | default | meaning |", 1)[1].splitlines()[2:]
    rows = {}
    for line in lines:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        rows[cells[0].strip("`")] = cells[1]
    return rows


def _field_at(path: str):
    """(the pydantic field at a dotted recipe path, the section model it holds or None)."""
    from typing import get_args

    from pydantic import BaseModel

    from curate.recipe import Recipe

    model, field = Recipe, None
    for part in path.split("."):
        if model is None or part not in model.model_fields:
            raise LookupError(f"{path}: {part} is no key of {getattr(model, '__name__', path)}")
        field = model.model_fields[part]
        kinds = (field.annotation, *get_args(field.annotation))
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    return field, model


def _default(field):
    from pydantic import BaseModel

    value = field.get_default(call_default_factory=True)
    return value.model_dump() if isinstance(value, BaseModel) else value


def _documented_defaults(cell: str) -> dict | None:
    """The literal a default cell states, or None where it is words ("every sheet", "runs/<name>")."""
    import re

    cell = re.sub(r"\s*\(.*\)$", "", cell).strip()
    if cell in ("required", "none"):
        return cell
    if cell.startswith("`") and cell.endswith("`"):
        cell = cell[1:-1]
    elif not re.fullmatch(r"-?[\d.e]+", cell):
        return None
    if "<" in cell:
        return None
    return yaml.safe_load(cell)


def check_readme_table(text: str) -> list[str]:
    """Where the README's recipe table and the recipe schema differ: a key the schema lacks, a key of the schema
    the table never names, and a stated default the code does not have."""
    from curate.recipe import Recipe

    rows, problems = _readme_recipe_table(text), []
    for key, cell in rows.items():
        try:
            field, _ = _field_at(key)
        except LookupError as err:
            problems.append(f"{err.args[0]} (the README's recipe table)")
            continue
        stated = _documented_defaults(cell)
        if stated is None or ("." in key and Recipe.model_fields[key.split(".")[0]].default is None):
            continue  # words, or a key of a section that is off by default (output.dir: runs/<name>)
        actual = None if field.is_required() else _default(field)
        if stated == "required" or field.is_required():
            if (stated == "required") != field.is_required():
                problems.append(f"{key}: the README says {cell}, the code says {actual or 'required'!r}")
        elif stated == "none":
            if actual is not None:
                problems.append(f"{key}: the README says none, the code's default is {actual!r}")
        elif isinstance(stated, dict) and isinstance(actual, dict):
            for k, v in stated.items():
                if k in actual and v != {"...": None} and v != actual[k]:
                    problems.append(f"{key}.{k}: the README says {v!r}, the code's default is {actual[k]!r}")
        elif stated != actual:
            problems.append(f"{key}: the README says {stated!r}, the code's default is {actual!r}")
    documented = {k.split(".")[0] for k in rows}
    for name in Recipe.model_fields:
        if name == "gristmill_version":  # written into recipe.resolved.yaml, never read
            continue
        if name not in documented:
            problems.append(f"{name}: a recipe key the README's table never names")
        elif name not in rows:  # a section documented key by key: every key of it has a row
            for sub in _field_at(name)[1].model_fields:
                if f"{name}.{sub}" not in rows:
                    problems.append(f"{name}.{sub}: a recipe key the README's table never names")
    return problems


def test_the_readme_recipe_table_is_the_schema():
    """The table a user reads is the recipe the code validates: every key, and every default it states."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert check_readme_table(text) == []
    # the drift the issue found fails it: a wrong default, a missing key, a key the code lacks
    planted = text.replace("batch_size: 48", "batch_size: 16").replace("| `split.max_test_per_kind` |", "| `x` |")
    planted = planted.replace("| `split.test_fraction` | 0.15 |", "| `split.test_fractions` | 0.15 |")
    assert sorted(check_readme_table(planted)) == [
        "eval.batch_size: the README says 16, the code's default is 48",
        "split.max_test_per_kind: a recipe key the README's table never names",
        "split.test_fraction: a recipe key the README's table never names",
        "split.test_fractions: test_fractions is no key of SplitSection (the README's recipe table)",
        "x: x is no key of Recipe (the README's recipe table)",
    ]
