"""Resume loses at most the fold in progress. The states an interruption really leaves (a fold
with predictions.csv but no done.json, temporary files of a write cut short, a `cremad loso`
killed mid-fold) end, after a rerun, as an uninterrupted run ends, with one process and with
--jobs 2. Every run is `cremad loso` on the tiny synthetic corpus with a toy recipe (8-unit
LSTMs, clips cut to 0.5 s, 2 epochs)."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cremad import runs
from cremad.cli import main
from cremad.config import EMOTIONS

ACTORS = ("1001", "1002", "1003")
TOY_RECIPE = """\
description = "the paper's recipe at toy size, for the resume tests"

[features]
pad_to = 8000

[model]
pre_units = 8
post_units = 8
attention_units = 4

[train]
max_epochs = 2
"""
LEFTOVERS = ".*.tmp-*"  # cremad.atomic's temporary names


@pytest.fixture(scope="module")
def setup(tiny_corpus, tmp_path_factory) -> dict:
    """The corpus, the toy recipe's file and a feature cache the module's runs share."""
    folder = tmp_path_factory.mktemp("resume")
    recipe = folder / "toy.toml"
    recipe.write_text(TOY_RECIPE)
    return {"corpus": tiny_corpus, "recipe": recipe, "cache": folder / "cache"}


def loso_argv(setup: dict, runs_root: Path, *extra: str) -> list[str]:
    return [
        "loso",
        "--model",
        "1",
        "--data",
        str(setup["corpus"]),
        "--runs",
        str(runs_root),
        "--experiment",
        str(setup["recipe"]),
        "--cache-dir",
        str(setup["cache"]),
        "--no-save-models",
        *extra,
    ]


def command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "cremad", *argv]


def toy_run(runs_root: Path) -> Path:
    return runs.run_dir(runs_root, "cremad", "toy", "model1", 0)


@pytest.fixture(scope="module")
def uninterrupted(setup, tmp_path_factory) -> Path:
    """The run folder of every fold trained without interruption, on one thread."""
    root = tmp_path_factory.mktemp("uninterrupted")
    result = subprocess.run(
        command(loso_argv(setup, root, "--threads", "1")), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    return toy_run(root)


def read_predictions(fold: Path) -> list[dict[str, str]]:
    with open(fold / runs.PREDICTIONS, newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_predictions(fold: Path, reference: Path) -> None:
    """The same clips, labels and predicted emotions; probabilities to 1e-4 (a run on another
    thread count may differ in the last bits)."""
    ours, theirs = read_predictions(fold), read_predictions(reference)
    assert [(row["clip"], row["true"], row["predicted"]) for row in ours] == [
        (row["clip"], row["true"], row["predicted"]) for row in theirs
    ], fold
    for mine, other in zip(ours, theirs):
        for emotion in EMOTIONS:
            assert float(mine[f"p_{emotion}"]) == pytest.approx(float(other[f"p_{emotion}"]), abs=1e-4)


def stamp(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_a_fold_cut_short_is_rerun_and_its_leftovers_removed(setup, uninterrupted, tmp_path, jobs):
    """Fold 1001 finished; 1002 was killed between predictions.csv and done.json, in the middle
    of writing done.json; 1003 was killed in training, in the middle of writing history.csv.
    The rerun keeps 1001 as it is and trains 1002 and 1003 again, in one process or in a pool."""
    root = tmp_path / "runs"
    run_dir = toy_run(root)
    shutil.copytree(uninterrupted, run_dir)
    finished, written, training = (runs.fold_dir(run_dir, actor) for actor in ACTORS)
    (written / runs.DONE).unlink()
    header = (written / runs.PREDICTIONS).read_text().splitlines()[0]
    (written / runs.PREDICTIONS).write_text(header + "\n")  # stale: a skipped fold would keep it
    (written / ".done.tmp-4242.json").write_text('{"actor": "10')
    for path in training.iterdir():
        path.unlink()
    (training / ".history.tmp-4242.csv").write_text("epoch,accuracy\n0,0.1")
    before = stamp(finished / runs.DONE)

    assert main(loso_argv(setup, root, "--jobs", str(jobs))) == 0

    assert stamp(finished / runs.DONE) == before  # skipped, not retrained
    for fold in (written, training):
        assert (fold / runs.DONE).is_file(), fold
        assert list(fold.glob(LEFTOVERS)) == [], fold
        assert_same_predictions(fold, runs.fold_dir(uninterrupted, fold.name.removeprefix("fold-")))
    assert not list(run_dir.rglob(LEFTOVERS))


@pytest.mark.slow
@pytest.mark.cpu_exact
def test_a_loso_killed_mid_fold_loses_only_that_fold_on_cpu(setup, uninterrupted, tmp_path):
    """SIGKILL `cremad loso` once the second fold has started; the rerun trains that fold and
    the third, skips the first, and every fold's predictions.csv is byte for byte the
    uninterrupted run's (one thread on both sides)."""
    root = tmp_path / "runs"
    run_dir = toy_run(root)
    first, second, third = (runs.fold_dir(run_dir, actor) for actor in ACTORS)
    argv = command(loso_argv(setup, root, "--threads", "1"))
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not ((first / runs.DONE).is_file() and second.is_dir()):
            assert process.poll() is None, "cremad loso ended before its second fold started"
            assert time.monotonic() < deadline, "no second fold after 300 s"
            time.sleep(0.02)
        time.sleep(0.2)  # into the second fold's training
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (second / runs.DONE).exists() and not third.exists()  # killed in the second fold
    before = stamp(first / runs.DONE)

    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "skipped fold 1001: done" in result.stderr
    assert stamp(first / runs.DONE) == before
    for actor in ACTORS:
        fold, reference = runs.fold_dir(run_dir, actor), runs.fold_dir(uninterrupted, actor)
        assert (fold / runs.DONE).is_file()
        assert (fold / runs.PREDICTIONS).read_bytes() == (reference / runs.PREDICTIONS).read_bytes(), actor
        with np.load(fold / runs.ATTENTION) as ours, np.load(reference / runs.ATTENTION) as theirs:
            np.testing.assert_array_equal(ours["weights"], theirs["weights"])
    assert not list(run_dir.rglob(LEFTOVERS))
