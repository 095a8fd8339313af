"""An installed cremad (a wheel, `pip install .`) works away from the checkout: the experiments
travel inside the package, and the Python floor that setup.cfg states is the one the code needs."""

from __future__ import annotations

import configparser
import dataclasses
import glob
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cremad.config import EXPERIMENTS_DIR, ModelConfig, list_experiments, load_experiment

ROOT = Path(__file__).resolve().parents[1]
SETUP = configparser.ConfigParser()
SETUP.read(ROOT / "setup.cfg")


def test_experiments_by_name_and_by_path(tmp_path):
    assert {"paper", "tuned", "speakernorm", "demo"} <= set(list_experiments())
    demo = load_experiment("demo")  # make demo's: only the budget differs from paper.toml
    assert (demo.model.pre_units, demo.model.post_units, demo.train.max_epochs) == (32, 64, 15)
    paper = load_experiment("paper")
    assert demo.features == paper.features and demo.train == dataclasses.replace(paper.train, max_epochs=15)
    assert load_experiment("tuned").train.refit and load_experiment("tuned").name == "tuned"
    recipe = tmp_path / "short patience.toml"
    recipe.write_text("[train]\npatience = 3\n[model2.model]\npre_units = 8\n")
    config = load_experiment(str(recipe), model_id=2)
    assert (config.name, config.train.patience, config.model.pre_units) == ("short patience", 3, 8)
    assert load_experiment(str(recipe), model_id=1).model.pre_units == ModelConfig().pre_units
    with pytest.raises(ValueError, match="experiment file .*missing.toml does not exist"):
        load_experiment(str(tmp_path / "missing.toml"))
    with pytest.raises(
        ValueError,
        match="unknown experiment 'tunde'.*known: beyond, beyond-speed, demo, paper, speakernorm, tuned",
    ):
        load_experiment("tunde")


def test_the_wheel_holds_every_module_and_the_experiments(tmp_path):
    """Build the wheel as `pip install .` does, install it into a folder, load `tuned` from
    outside the checkout. Built from a copy so the checkout gets no build/ or egg-info."""
    source = tmp_path / "source"
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, source / name)
    for folder in ("cremad", "experiments"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(source),
            "-w",
            str(tmp_path / "wheel"),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "wheel").glob("cremad-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {path.relative_to(ROOT).as_posix() for path in (ROOT / "cremad").rglob("*.py")}
    expected |= {
        f"cremad/experiments/{path.relative_to(EXPERIMENTS_DIR).as_posix()}"
        for path in EXPERIMENTS_DIR.rglob("*.toml")
    }
    expected |= {path.relative_to(ROOT).as_posix() for path in (ROOT / "cremad" / "report_assets").iterdir()}
    assert expected - names == set()
    assert "cremad/experiments/tuned.toml" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    check = (
        "import cremad.config as c; print(c.EXPERIMENTS_DIR); "
        "print(c.list_experiments(), c.load_experiment('tuned').train.refit)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        str(target / "cremad" / "experiments"),
        "['beyond', 'beyond-speed', 'demo', 'paper', 'speakernorm', 'tuned'] True",
    ]


def python_floor() -> tuple[int, int]:
    match = re.fullmatch(r">=\s*3\.(\d+)", SETUP["options"]["python_requires"].strip())
    assert match, "python_requires should be a plain floor, >=3.N"
    return 3, int(match[1])


def test_the_stated_floor_is_stated_everywhere():
    major, minor = python_floor()
    assert f"Python >= {major}.{minor}" in (ROOT / "README.md").read_text()


def floor_interpreter() -> str | None:
    major, minor = python_floor()
    found = shutil.which(f"python{major}.{minor}")
    candidates = [found] if found else []
    candidates += sorted(glob.glob(str(Path.home() / f".pyenv/versions/{major}.{minor}.*/bin/python")))
    for candidate in candidates:
        version = subprocess.run(
            [candidate, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True
        ).stdout.strip()
        if version == str((major, minor)):
            return candidate
    return None


def test_the_code_compiles_on_the_floor_python():
    """Every module parses under the oldest Python setup.cfg allows (no newer syntax). The whole
    suite on that Python: `make test-fast PYTHON=python3.11 VENV=.venv-3.11`."""
    interpreter = floor_interpreter()
    if interpreter is None:
        pytest.skip(f"no Python {'.'.join(map(str, python_floor()))} on this machine")
    script = (
        "import pathlib, sys\n"
        "for path in sorted(pathlib.Path(sys.argv[1]).rglob('*.py')):\n"
        "    compile(path.read_text(), str(path), 'exec')\n"
        "print('ok', sys.version_info[:2])\n"
    )
    result = subprocess.run([interpreter, "-c", script, str(ROOT / "cremad")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"ok {python_floor()}"
