"""A built wheel, installed in a fresh virtual environment, ships and finds the built-in templates."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile

from tests.conftest import REPO, require

CHECK = """
import curate
from curate.templating import Renderer, builtin_templates_dir, load_templates
assert curate.__file__.startswith(SITE), curate.__file__
root = builtin_templates_dir()
assert str(root).startswith(SITE), root
templates = load_templates()
assert {"qa.what_about", "summary.central", "persona.who_are_you"} <= set(templates), sorted(templates)
values = {"title_ref": "the guide", "topic": "x", "text": "Body.", "summary": "S.", "variant": 0}
assert Renderer().render(templates["summary.central"], values)["assistant"] == "S."
print("OK", len(templates), root)
"""


def test_wheel_in_a_fresh_venv_finds_its_templates(tmp_path):
    require("build")
    require("hatchling")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist), str(REPO)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("gristmill-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "curate/templates/qa/what_about.jinja" in names
    assert "curate/review/page.html" in names  # the review page ships with the package
    assert any(n.startswith("train/") for n in names) and not any(n.startswith("tests/") for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", site, str(wheel)],
        check=True,
        capture_output=True,
    )
    # Dependencies come from this environment, appended after the fresh site-packages (a .pth entry adds the
    # folder without running its .pth files, so this checkout's editable install stays out of the way).
    (tmp_path / "venv_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (tmp_path / "venv_deps.pth").rename(f"{site}/zz_deps.pth")
    out = subprocess.run(
        [str(python), "-c", f"SITE = {site!r}\n{CHECK}"], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("OK")
