"""The run folder's owner: one layout for every experiment and seed, selection by name, and
older folders recognised with the command that moves them."""

import logging
import shutil
import subprocess

import pytest
from results_fixtures import clip_rows, write_fold, write_model

from cremad import CremadError, runs
from cremad.cli import main
from cremad.metrics import summarize
from cremad.runs import RunKey, find_runs, select_runs
from cremad.runs.archive import archive_run


def keys(found) -> set[str]:
    return {str(key) for key in found}


def test_every_run_has_the_same_layout(tmp_path):
    paper = write_model(tmp_path, 1)
    tuned = write_model(tmp_path, 1, experiment="tuned", seed=2)
    assert paper == tmp_path / "cremad" / "paper" / "model1" / "seed0"
    assert tuned == tmp_path / "cremad" / "tuned" / "model1" / "seed2"
    assert RunKey.of(tuned) == RunKey("cremad", "tuned", "model1", 2)
    # --runs may point at any level of the layout.
    for root in (tmp_path, tmp_path / "cremad", tmp_path / "cremad" / "tuned", tuned):
        assert RunKey("cremad", "tuned", "model1", 2) in find_runs(root)
    assert keys(find_runs(tmp_path)) == {"cremad/paper/model1/seed0", "cremad/tuned/model1/seed2"}


def test_selection_by_corpus_experiment_model_and_seed(tmp_path, caplog):
    for experiment in ("paper", "tuned"):
        for seed in (0, 1):
            write_model(tmp_path, 1, experiment=experiment, seed=seed)
            write_model(tmp_path, 2, experiment=experiment, seed=seed)
    assert keys(select_runs(tmp_path, experiment="tuned", models=["model2"], seeds=[1])) == {
        "cremad/tuned/model2/seed1"
    }
    with caplog.at_level(logging.INFO, logger="cremad.runs"):
        assert {key.experiment for key in select_runs(tmp_path)} == {"paper"}  # the default among several
    assert "also there: tuned" in caplog.text
    assert {key.experiment for key in select_runs(tmp_path / "cremad" / "tuned")} == {
        "tuned"
    }  # the only one there
    with pytest.raises(CremadError, match=r"--experiment speakernorm: no runs of it .*paper, tuned"):
        select_runs(tmp_path, experiment="speakernorm")
    with pytest.raises(CremadError, match=r"--seeds: no cremad/paper runs of 7"):
        select_runs(tmp_path, seeds=[7])
    write_model(tmp_path, 1, corpus="emodb")
    with pytest.raises(CremadError, match=r"several corpora \(cremad, emodb\); pick one with --corpus"):
        select_runs(tmp_path)
    assert keys(select_runs(tmp_path, corpus="emodb")) == {"emodb/paper/model1/seed0"}


def test_an_old_layout_folder_is_named_with_the_command_that_moves_it(tmp_path):
    root = tmp_path / "runs"
    write_model(root, 1)  # already in the new layout
    # Before seeds: the paper's runs sat at <corpus>/model<k>, other experiments' at
    # <corpus>/<experiment>/model<k>.
    shutil.move(write_model(tmp_path / "old", 2), root / "cremad" / "model2")
    (root / "cremad" / "tuned").mkdir()
    shutil.move(
        write_model(tmp_path / "old", 3, experiment="tuned", seed=4), root / "cremad" / "tuned" / "model3"
    )

    with pytest.raises(CremadError) as error:
        find_runs(root)
    lines = str(error.value).splitlines()
    assert len(lines) == 2  # one line per folder
    assert (
        f"mkdir -p {root}/cremad/paper/model2 && mv {root}/cremad/model2 {root}/cremad/paper/model2/seed0"
        in lines[0]
    )
    with pytest.raises(CremadError, match="old run-folder layout"):
        runs.refuse_old_layout(root, "cremad", "paper", "model2")  # what `cremad loso` checks first
    runs.refuse_old_layout(root, "cremad", "paper", "model1")

    for line in lines:  # the printed commands do the move
        subprocess.run(line.split("move it: ", 1)[1], shell=True, check=True)
    assert keys(find_runs(root)) == {
        "cremad/paper/model1/seed0",
        "cremad/paper/model2/seed0",
        "cremad/tuned/model3/seed4",
    }
    assert runs.load_predictions(runs.run_dir(root, "cremad", "tuned", "model3", 4)).folds == ["1001", "1002"]


def test_no_runs_is_an_error_that_says_what_was_expected(tmp_path):
    with pytest.raises(CremadError, match="no such folder"):
        find_runs(tmp_path / "nowhere")
    with pytest.raises(CremadError, match=r"<corpus>/<experiment>/<model>/seed<s>"):
        select_runs(tmp_path)


def test_archive_keeps_what_the_tables_need_and_the_same_numbers(tmp_path, caplog):
    source = tmp_path / "scratch"
    for model_id in (1, 3):
        write_model(source, model_id, corpus="emodb", seed=1)
    run_dir = source / "emodb" / "paper" / "model1" / "seed1"
    summarize(run_dir)
    (run_dir / "fold-1001" / runs.MODEL_FILE).write_bytes(b"weights")
    write_fold(run_dir, "1003", clip_rows(1)["1001"], 1, done=False)  # a fold still running
    with caplog.at_level(logging.INFO, logger="cremad.runs"):
        assert (
            main(["archive", "--runs", str(source), "--corpus", "emodb", "--out", str(tmp_path / "results")])
            == 0
        )
    assert "left out 1 unfinished fold(s): 1003" in caplog.text
    archived = tmp_path / "results" / "emodb" / "paper" / "model1" / "seed1"
    assert keys(find_runs(tmp_path / "results")) == {"emodb/paper/model1/seed1", "emodb/paper/model3/seed1"}
    assert sorted(path.name for path in archived.iterdir()) == [
        "fold-1001",
        "fold-1002",
        "run.json",
        "summary.json",
    ]
    assert sorted(path.name for path in (archived / "fold-1001").iterdir()) == [
        "config.json",
        "confusion.csv",
        "done.json",
        "predictions.csv",
    ]  # no model, no attention
    for name in ("model1", "model3"):
        original = summarize(source / "emodb" / "paper" / name / "seed1")
        copy = summarize(tmp_path / "results" / "emodb" / "paper" / name / "seed1")
        assert (copy["ua"], copy["wa"], copy["confusion_counts"]) == (
            original["ua"],
            original["wa"],
            original["confusion_counts"],
        )
    with pytest.raises(CremadError, match="is the run folder itself"):
        archive_run(run_dir, run_dir)


def test_a_fold_moves_between_machines_whole_with_done_json_last(tmp_path):
    """What a Ray worker sends back (read_fold_files) is what the driver writes (write_fold_files):
    the same bytes under the same names, done.json with where it ran added, written last."""
    worker = runs.run_dir(tmp_path / "worker", "cremad", "paper", "model1", 0)
    write_fold(worker, "1001", clip_rows(1)["1001"], model_id=1)
    files = runs.read_fold_files(runs.fold_dir(worker, "1001"))
    assert runs.DONE in files and runs.PREDICTIONS in files and runs.ATTENTION in files

    driver = runs.run_dir(tmp_path / "driver", "cremad", "paper", "model1", 0)
    stale = runs.fold_dir(driver, "1001")
    stale.mkdir(parents=True)
    (stale / "history.csv").write_text("an earlier attempt's\n")
    done = runs.write_fold_files(stale, files, node="10.0.0.2 (abcd)", tries=2)
    written = {path.name: path.read_bytes() for path in stale.iterdir()}
    assert set(written) == set(files)  # the earlier attempt's file is gone
    assert all(written[name] == content for name, content in files.items() if name != runs.DONE)
    assert done["node"] == "10.0.0.2 (abcd)" and done["tries"] == 2
    assert runs.load_predictions(driver).folds == ["1001"]

    with pytest.raises(CremadError, match="not a finished fold"):
        runs.read_fold_files(tmp_path)
    with pytest.raises(CremadError, match="refusing fold file name"):
        runs.write_fold_files(tmp_path / "x", {**files, "../escape.csv": b""})
    with pytest.raises(CremadError, match="no done.json"):
        runs.write_fold_files(tmp_path / "x", {runs.PREDICTIONS: b""})
