"""The gristmill command: exit codes, messages, every command documented, and a light --help."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from curate.cli import main
from tests.conftest import REPO, write


@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # rich wraps tables to the terminal width
    runner = CliRunner()

    def invoke(*args):
        return runner.invoke(main, list(args), catch_exceptions=False)

    return invoke


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from curate.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'trl', 'datasets'})\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "HEAVY []" in out
    assert "curate" in out and "init" in out


def test_console_script_is_installed():
    exe = subprocess.run(["gristmill", "--version"], capture_output=True, text=True, check=True)
    assert exe.stdout.startswith("gristmill, version ")


def test_every_command_has_help_and_is_in_the_readme(cli):
    readme = (REPO / "README.md").read_text()
    for name, command in main.commands.items():
        assert command.help, name
        assert cli(name, "--help").exit_code == 0
        assert f"gristmill {name}" in readme, f"README documents `gristmill {name}`"


def test_curate_errors_have_exit_codes_and_messages(cli, in_tmp):
    result = cli("curate", "missing.yaml")
    assert result.exit_code == 2 and "not found" in result.output and "gristmill init" in result.output
    write(in_tmp / "r.yaml", "name: t\ninput: {paths: [docs]}\nstages: [{use: normalize.txt}]\n")
    result = cli("curate", "r.yaml")
    assert result.exit_code == 2 and "stages.0.use" in result.output and "normalize.text" in result.output
    write(in_tmp / "r.yaml", "name: t\ninput: {paths: [nowhere]}\n")
    result = cli("curate", "r.yaml")
    assert result.exit_code == 3 and "input.paths[0]: 'nowhere' matches no file" in result.output
    result = cli("curate", "r.yaml", "--set", "seed")
    assert result.exit_code == 2 and "key.path=value" in result.output
    assert "Traceback" not in result.output


def test_init_then_dry_run_then_curate_then_inspect(cli, in_tmp):
    returns = (
        "You can return unused items within 30 days of delivery. Refunds go back to the original payment method "
        "within a week. Sale items are final. Members of the club get a longer window of 60 days for returns."
    )
    hours = (
        "Our stores open at nine every weekday and at ten on weekends. The repair desk closes an hour earlier, "
        "and the cafe serves coffee until five in the afternoon on every day of the week."
    )
    write(in_tmp / "docs" / "policy.md", f"# Policy\n\n## Returns\n\n{returns} Tags like [not markup] stay.")
    write(in_tmp / "docs" / "faq.html", f"<h1>FAQ</h1><h2>When are you open?</h2><p>{hours}</p>")
    assert cli("init", "docs").exit_code == 0
    assert cli("init", "docs").exit_code == 2  # refuses to overwrite
    dry = cli("curate", "recipe.yaml", "--dry-run")
    assert dry.exit_code == 0 and "to run" in dry.output and "02 files" not in dry.output
    assert not (in_tmp / "runs").exists()
    run = cli("curate", "recipe.yaml")
    assert run.exit_code == 0, run.output
    assert "qa" in run.output and "runs/docs/dataset" in run.output
    # not a terminal: each step is a plain line when it starts and when it ends (tests/test_progress.py)
    started = re.findall(r"^\d\d:\d\d:\d\d (\S+): .*started$", run.output, re.M)
    ended = re.findall(r"^\d\d:\d\d:\d\d (\S+): .*done in \dm\d\ds$", run.output, re.M)
    assert len(started) >= 10 and started == ended
    dry = cli("curate", "recipe.yaml", "--dry-run")
    assert "done (resumes)" in dry.output
    shown = cli("inspect", "runs/docs", "--sample", "5")
    assert shown.exit_code == 0 and "drop funnel" in shown.output
    assert "[not markup]" in shown.output  # document text is shown as text, never as rich markup
    assert "lengths" in shown.output and "labels" in shown.output
    data = json.loads(cli("inspect", "runs/docs/dataset", "--json", "--kind", "qa", "--sample", "1").output)
    assert data["lengths"]["qa examples"]["max"] >= data["lengths"]["qa examples"]["p50"] > 0
    assert data["labels"]["language"] == {"en": sum(data["labels"]["language"].values())}
    assert set(data["examples"]) == {"qa"} and len(data["examples"]["qa"]) == 1
    assert data["counts"]["train"]["qa"] + data["counts"]["test"].get("qa", 0) > 0


def test_inspect_names_what_to_run_for_a_wrong_folder(cli, in_tmp):
    result = cli("inspect", ".")
    assert result.exit_code == 6 and "gristmill curate" in result.output


def test_stages_and_templates_list_everything(cli):
    out = cli("stages").output
    for ref in ("normalize.text@2", "dedupe.exact@1", "chunk.sections@1", "filter.length@1", "max_words"):
        assert ref in out
    assert "persona" in out and "per_doc" in out
    out = cli("templates").output
    assert "qa.what_about@3" in out and "persona.who_are_you@2" in out


def test_render_shows_messages_and_keeps_text_literal(cli, in_tmp):
    write(in_tmp / "doc.md", "# Guide\n\n## Braces\n\nType {{ 7*7 }} to see the template escape works fine here.")
    out = cli("render", "qa.what_about", "--doc", "doc.md", "--chunk", "0")
    assert out.exit_code == 0 and "{{ 7*7 }}" in out.output and "49" not in out.output
    out = cli("render", "qa.what_about", "--doc", "doc.md", "--chunk", "5")
    assert out.exit_code == 4 and "out of range" in out.output
    out = cli("render", "persona.who_are_you")
    assert out.exit_code == 4 and "--recipe" in out.output


def test_render_policy_and_schema_kinds_from_the_recipe(cli, sample_workspace, monkeypatch):
    monkeypatch.chdir(sample_workspace)
    out = cli("render", "refusal.polite", "--recipe", "sample_data/recipe.yaml", "--variant", "2")
    assert out.exit_code == 0 and "can't help" in out.output
    doc = "sample_data/docs/product-manual-trailhead-tent.md"
    out = cli("render", "extract_json.extract", "--recipe", "sample_data/recipe.yaml", "--doc", doc)
    assert out.exit_code == 0 and '"part": "Inner tent"' in out.output and '"quantity": 1' in out.output


def test_init_writes_a_valid_recipe_for_any_folder_name_and_never_outputs_into_the_docs(cli, in_tmp, monkeypatch):
    from curate.recipe import load_recipe

    for folder in ("Q3 reports, final", "docs #1", "it's: [odd] {name}"):
        write(in_tmp / folder / "a.md", "# A\n\nSome text to read.\n")
        out = f"{folder[:2]}.yaml"
        assert cli("init", folder, "-o", out).exit_code == 0
        recipe = load_recipe(out)
        assert recipe.input.paths == [folder] and recipe.run_dir == in_tmp.joinpath("runs", recipe.name).relative_to(
            in_tmp
        )
    monkeypatch.chdir(in_tmp / "docs #1")  # `gristmill init .` inside the documents
    assert cli("init", ".", "-o", "../inside.yaml").exit_code == 0
    recipe = load_recipe(in_tmp / "inside.yaml")
    run_dir = (in_tmp / "docs #1" / recipe.run_dir).resolve()
    assert (in_tmp / "docs #1").resolve() not in run_dir.parents


def test_init_leads_to_a_real_model_and_never_trains_on_placeholders(cli, in_tmp):
    """init names SmolLM2-135M with the sample's training settings and an eval section; the policy kinds wait,
    commented out, for a guardrails.yaml whose placeholders the recipe check refuses until they are filled in."""
    import re

    from curate.errors import RecipeError
    from curate.recipe import load_recipe

    write(in_tmp / "docs" / "a.md", "# Contact details\n\nUpdate your phone number under Account > Profile.\n")
    out = cli("init", "docs")
    assert out.exit_code == 0 and "gristmill run recipe.yaml" in out.output
    recipe = load_recipe("recipe.yaml")
    sample = yaml.safe_load((REPO / "sample_data" / "recipe.yaml").read_text())
    assert recipe.train.model == "smollm2-135m" and recipe.train.sft == sample["train"]["sft"]
    assert recipe.eval.baselines == ["base", "prompted"]
    assert recipe.eval.max_new_tokens == sample["eval"]["max_new_tokens"]
    assert {g.kind for g, _ in recipe.resolved_generators} >= {"qa", "grounded_qa", "grounded_abstain"}
    text = (in_tmp / "recipe.yaml").read_text()
    policy_kinds = re.compile(r"^  # (- \{kind: (refusal|benign_near_miss|abstain),.*)$", re.M)
    assert len(policy_kinds.findall(text)) == 3
    write(in_tmp / "recipe.yaml", policy_kinds.sub(r"  \1", text))  # uncommented before guardrails.yaml is filled
    with pytest.raises(RecipeError, match=r"guardrails\.yaml: 5 placeholder\(s\) to fill in \(categories\.0\.req"):
        load_recipe("recipe.yaml")
    policy = (in_tmp / "guardrails.yaml").read_text()
    filled = re.sub(r'"?<FILL IN: ([^>]*)>"?', lambda m: f'"{m.group(1).split(",")[0]} {{person}} {{field}}"'
                    if "{person}" in m.group(1) else "update contact details", policy)  # fmt: skip
    write(in_tmp / "guardrails.yaml", filled)
    kinds = {g.kind for g, _ in load_recipe("recipe.yaml").resolved_generators}
    assert {"refusal", "benign_near_miss", "abstain"} <= kinds
    assert cli("init", "docs", "-o", "again.yaml").exit_code == 0  # a second recipe keeps the filled-in policy
    assert (in_tmp / "guardrails.yaml").read_text() == filled
