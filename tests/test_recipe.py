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
    from train.sft import _train_override

    path = write(tmp_path / "r.yaml", yaml.safe_dump(BASE))
    for item in ("sft.max_steps=20", "train.sft.max_steps=20"):
        assert load_recipe(path, [item]).train.sft == {"max_steps": 20}  # curate and run
        assert _train_override(item) == "train.sft.max_steps=20"  # train
    assert load_recipe(path, ["test_fraction=0.3"]).split.test_fraction == 0.3
    with pytest.raises(RecipeError, match=r"model is a key of llm and train; give the full path: llm\.model or"):
        load_recipe(path, ["model=smollm2-135m"])
    assert _train_override("model=smollm2-135m") == "train.model=smollm2-135m"  # on train, a train key
    with pytest.raises(RecipeError, match=r"no recipe key; give the full path .*did you mean split\.test_fraction"):
        load_recipe(path, ["test_fractoin=0.3"])
    with pytest.raises(RecipeError, match=r"train takes train\.\* keys; split\.test_fraction shapes the curated"):
        _train_override("split.test_fraction=0.3")


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
