"""Leave-one-actor-out training (section II-C): honest folds, resumable runs, same seed, same
numbers. Models train on tiny arrays (a few actors, 20 frames, 1-2 epochs) so the file runs in
about a minute on one core; one end-to-end test runs `cremad loso` on a generated corpus."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest

from cremad import CremadError, runs
from cremad.config import EMOTIONS, ExperimentConfig, replace
from cremad.corpus import Clip
from cremad.features import FeatureSet
from cremad.folds import run_fold
from cremad.loso import LosoOptions, parse_shard, run_folds, select_folds
from cremad.runs import DONE, prepare_run
from cremad.scaling import class_weights, fit_scaler, normalize_speakers
from cremad.splits import loso_actors, split_fold

ACTORS = ("1001", "1002", "1003", "1004", "1005")
N_FRAMES = 20
# Early stopping on, so the tests below see all three roles (fit, validation, test); the default
# recipe (no early stopping) has its own test.
TINY = replace(
    ExperimentConfig(),
    {"train": {"max_epochs": 2, "batch_size": 16, "validation_fraction": 0.25, "early_stopping": True}},
)


def tiny_features(actors=ACTORS, clips_per_emotion: int = 2, seed: int = 0) -> FeatureSet:
    """A FeatureSet of random MFCC-shaped clips whose coefficient 0 carries the actor number and
    coefficient 1 the emotion, so a model can learn something and a test can tell whose clip it
    holds. Clip ids are CREMA-D-like names."""
    rng = np.random.default_rng(seed)
    clips, rows = [], []
    for actor in actors:
        for emotion_index, emotion in enumerate(EMOTIONS):
            for take in range(clips_per_emotion):
                clip_id = f"{actor}_S{take:02d}_{emotion}_XX"
                clips.append(Clip(f"/nowhere/{clip_id}.wav", clip_id, actor, f"S{take:02d}", emotion, "XX"))
                frames = rng.normal(size=(N_FRAMES, 13)).astype(np.float32)
                frames[:, 0] = float(actor)
                frames[:, 1] += emotion_index
                rows.append(frames)
    return FeatureSet(
        np.stack(rows),
        clips,
        TINY.features,
        pad_to=N_FRAMES * 160,
        cache_key="tiny",
        lengths=np.full(len(clips), N_FRAMES * 160),
    )  # nothing padded


def actors_of(x: np.ndarray, scaler) -> set[str]:
    """Undo a standardization (a fold's scaler.npz, or (mean, std)) and read the actor number
    back from coefficient 0."""
    if not isinstance(scaler, tuple):
        with np.load(scaler / runs.SCALER) as saved:
            scaler = saved["mean"], saved["std"]
    mean, std = scaler
    raw = x[:, 0, 0] * std[0] + mean[0]
    return {str(int(round(value))) for value in raw}


def record_fit_and_predict(monkeypatch) -> dict[str, list]:
    """Make keras.Model.fit and .predict record the arrays they receive: {"fit": [x, ...],
    "validation": [x_val or None, ...], "predict": [x, ...]}."""
    import keras

    seen = {"fit": [], "validation": [], "predict": []}
    original_fit, original_predict = keras.Model.fit, keras.Model.predict

    def recording_fit(self, x, y=None, validation_data=None, **kwargs):
        seen["fit"].append(x)
        seen["validation"].append(None if validation_data is None else validation_data[0])
        return original_fit(self, x, y, validation_data=validation_data, **kwargs)

    def recording_predict(self, x, **kwargs):
        seen["predict"].append(x)
        return original_predict(self, x, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", recording_fit)
    monkeypatch.setattr(keras.Model, "predict", recording_predict)
    return seen


def read_predictions(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def features() -> FeatureSet:
    return tiny_features()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, features):
    """Model 1, two folds, run once for several tests."""
    model_dir = runs.run_dir(tmp_path_factory.mktemp("runs"), "cremad", "paper", "model1", 0)
    prepare_run(
        model_dir,
        {
            "experiment": "paper",
            "model_id": 1,
            "config": TINY.to_dict(),
            "actors": loso_actors(features.actors),
        },
        force=False,
    )
    records = run_folds(TINY, features, model_dir, LosoOptions(model_id=1), test_actors=["1001", "1002"])
    return model_dir, records


# --- folds are data ---------------------------------------------------------------------------


def test_every_actor_is_tested_once_and_never_trained_on(features):
    assert loso_actors(features.actors) == list(ACTORS)
    for actor in ACTORS:
        split = split_fold(features.actors, actor, validation_fraction=0.25, seed=0)
        used = {
            name: set(features.actors[index])
            for name, index in [
                ("fit", split.fit_index),
                ("validation", split.validation_index),
                ("test", split.test_index),
            ]
        }
        assert used["test"] == {actor}
        assert actor not in used["fit"] | used["validation"]
        assert not used["fit"] & used["validation"]
        assert used["fit"] | used["validation"] == set(ACTORS) - {actor}
        assert len(split.validation_actors) == 1  # 25 % of 4 training actors
        assert len(split.fit_index) + len(split.validation_index) + len(split.test_index) == len(
            features.actors
        )


def test_validation_actors_depend_only_on_seed_and_test_actor():
    actors = np.repeat([str(a) for a in range(1001, 1092)], 3)
    first = split_fold(actors, "1050", 0.1, seed=0)
    assert first.validation_actors == split_fold(actors, "1050", 0.1, seed=0).validation_actors
    assert len(first.validation_actors) == 9  # 10 % of the 90 training actors, as on CREMA-D
    others = {split_fold(actors, "1050", 0.1, seed=seed).validation_actors for seed in range(5)}
    assert len(others) > 1


def test_two_actors_make_folds_without_early_stopping_and_need_a_third_with_it():
    actors = np.repeat(["1001", "1002"], 3)
    split = split_fold(actors, "1001", 0.1, seed=0, with_validation=False)
    assert split.fit_actors == split.train_actors == ("1002",) and split.validation_actors == ()
    assert list(split.fit_index) == [3, 4, 5] and split.validation_index.size == 0
    with pytest.raises(ValueError, match="one for validation"):
        split_fold(actors, "1001", 0.1, seed=0)


@pytest.mark.slow
def test_a_two_actor_corpus_runs_loso_with_the_default_recipe(tmp_path):
    config = replace(TINY, {"train": {"max_epochs": 1, "early_stopping": False}})
    model_dir = runs.run_dir(tmp_path, "cremad", "paper", "model3", 0)
    run_folds(
        config, tiny_features(actors=("1001", "1002")), model_dir, LosoOptions(model_id=3, save_models=False)
    )
    assert all((runs.fold_dir(model_dir, actor) / DONE).is_file() for actor in ("1001", "1002"))


def test_scaler_statistics_ignore_an_extreme_test_actor(features):
    planted = FeatureSet(
        features.features.copy(), features.clips, features.config, features.pad_to, lengths=features.lengths
    )
    planted.features[planted.actors == "1001", :, 2] = 1e6
    split = split_fold(planted.actors, "1001", 0.25, seed=0)
    mean, std = fit_scaler(planted.features[split.fit_index])
    assert abs(mean[2]) < 1 and std[2] < 2
    expected = planted.features[split.fit_index].reshape(-1, 13)
    np.testing.assert_allclose(mean, expected.mean(axis=0), rtol=1e-5, atol=1e-5)


def test_speaker_normalization_uses_each_actors_own_clips_only(features):
    planted = features.features.copy()
    planted[features.actors == "1001"] *= 1000.0
    normalized = normalize_speakers(planted, features.actors)
    for actor in ACTORS:
        frames = normalized[features.actors == actor].reshape(-1, 13)
        np.testing.assert_allclose(frames.mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(frames.std(axis=0)[1:], 1, atol=1e-3)  # [0]: constant actor id
    others = features.actors != "1001"
    np.testing.assert_array_equal(
        normalized[others], normalize_speakers(features.features, features.actors)[others]
    )


@pytest.mark.slow
@pytest.mark.parametrize("refit", [False, True])
def test_fit_validation_and_test_arrays_come_from_the_right_actors(tmp_path, monkeypatch, features, refit):
    """Record what model.fit and model.predict actually receive, and read the actors back."""
    seen = record_fit_and_predict(monkeypatch)
    planted = FeatureSet(
        features.features.copy(), features.clips, features.config, features.pad_to, lengths=features.lengths
    )
    planted.features[planted.actors == "1003", :, 2] = 1e6  # would wreck the scaler if it leaked
    config = replace(TINY, {"train": {"max_epochs": 1, "refit": refit}})
    run_fold(config, planted, "1003", tmp_path, model_id=1, save_model=False)

    fold = json.loads((tmp_path / runs.FOLD_CONFIG).read_text())
    first_scaler = fit_scaler(planted.features[np.isin(planted.actors, fold["fit_actors"])])
    assert actors_of(seen["fit"][0], first_scaler) == set(fold["fit_actors"])
    assert actors_of(seen["validation"][0], first_scaler) == set(fold["validation_actors"])
    if refit:  # early stopping chose the epochs; then every training actor, no validation
        assert len(seen["fit"]) == 2 and seen["validation"][1] is None
        assert actors_of(seen["fit"][1], tmp_path) == set(fold["train_actors"])
        assert (tmp_path / runs.HISTORY_REFIT).is_file()
    else:
        assert len(seen["fit"]) == 1
    assert len(seen["predict"]) == 2  # class probabilities and attention weights
    assert all(actors_of(x, tmp_path) == {"1003"} for x in seen["predict"])
    assert "1003" not in fold["train_actors"] + fold["validation_actors"]
    with np.load(tmp_path / runs.SCALER) as scaler:
        assert scaler["std"][2] < 2


@pytest.mark.slow
def test_default_recipe_fits_every_training_actor_and_no_validation(tmp_path, monkeypatch, features):
    """The default recipe has no early stopping: every training actor fits, none is held back,
    and the test actor reaches only predict."""
    seen = record_fit_and_predict(monkeypatch)
    config = replace(ExperimentConfig(), {"train": {"max_epochs": 1, "batch_size": 16}})
    assert not config.train.early_stopping
    run_fold(config, features, "1003", tmp_path, model_id=3, save_model=False)
    fold = json.loads((tmp_path / runs.FOLD_CONFIG).read_text())
    assert len(seen["fit"]) == 1 and seen["validation"] == [None]
    assert actors_of(seen["fit"][0], tmp_path) == {"1001", "1002", "1004", "1005"} == set(fold["fit_actors"])
    assert fold["validation_actors"] == [] and fold["epochs"] == 1
    assert all(actors_of(x, tmp_path) == {"1003"} for x in seen["predict"])


@pytest.mark.slow
def test_utterance_normalization_reaches_the_test_actor_as_it_reached_training(
    tmp_path, monkeypatch, features
):
    """With per-clip normalization the scaler describes normalized clips, and the held-out
    actor's clips get the same two steps (their own per-clip statistics, then that scaler)."""
    from cremad.scaling import normalize_utterances, prepare_inputs

    seen = record_fit_and_predict(monkeypatch)
    config = replace(
        ExperimentConfig(),
        {"train": {"max_epochs": 1, "batch_size": 16, "utterance_normalization": "meanvar"}},
    )
    run_fold(config, features, "1003", tmp_path, model_id=3, save_model=False)
    mask = features.speech_mask()
    train_rows, test_rows = features.actors != "1003", features.actors == "1003"
    mean, std = fit_scaler(
        normalize_utterances(features.features[train_rows], mask[train_rows], "meanvar"),
        frame_mask=mask[train_rows],
    )
    with np.load(tmp_path / runs.SCALER) as scaler:
        np.testing.assert_allclose(scaler["mean"], mean, atol=1e-4)
        np.testing.assert_allclose(scaler["std"], std, rtol=1e-4)
    expected = prepare_inputs(features.features[test_rows], mean, std, "zero", mask[test_rows], "meanvar")
    np.testing.assert_allclose(seen["predict"][0], expected, atol=1e-4)


# --- run folders ------------------------------------------------------------------------------


@pytest.mark.slow
def test_fold_folder_holds_every_artefact(local_run, features):
    model_dir, records = local_run
    assert [record["actor"] for record in records] == ["1001", "1002"]
    fold_dir = runs.fold_dir(model_dir, "1001")
    for name in (
        runs.PREDICTIONS,
        runs.ATTENTION,
        runs.HISTORY,
        runs.CONFUSION,
        runs.FOLD_CONFIG,
        runs.SCALER,
        runs.MODEL_FILE,
        DONE,
    ):
        assert (fold_dir / name).is_file(), name
    assert not list(fold_dir.glob(".*tmp*"))
    rows = read_predictions(fold_dir / runs.PREDICTIONS)
    assert len(rows) == 12 and {row["actor"] for row in rows} == {"1001"}
    probabilities = np.array([[float(row[f"p_{code}"]) for code in EMOTIONS] for row in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    with np.load(fold_dir / runs.ATTENTION) as attention:
        assert attention["weights"].shape == (12, 1, N_FRAMES)
        np.testing.assert_allclose(attention["weights"].sum(axis=-1), 1.0, atol=1e-4)
        assert list(attention["clips"]) == [row["clip"] for row in rows]
    confusion = np.loadtxt(fold_dir / runs.CONFUSION, delimiter=",", skiprows=1, usecols=range(1, 7))
    assert confusion.sum() == 12 and confusion.sum(axis=1).tolist() == [2] * 6
    done = json.loads((fold_dir / DONE).read_text())
    assert done["n_test"] == 12 and 1 <= done["epochs"] <= 2
    assert done["accuracy"] == pytest.approx(np.mean([row["true"] == row["predicted"] for row in rows]))


@pytest.mark.slow
def test_summary_numbers_match_the_saved_predictions(local_run):
    from sklearn.metrics import recall_score

    from cremad.metrics import summarize

    model_dir, _ = local_run
    summary = summarize(model_dir)
    rows = [
        row
        for fold in ("1001", "1002")
        for row in read_predictions(runs.fold_dir(model_dir, fold) / runs.PREDICTIONS)
    ]
    true, predicted = [row["true"] for row in rows], [row["predicted"] for row in rows]
    assert summary["n_folds"] == 2 and summary["n_clips"] == 24
    assert summary["wa"] == pytest.approx(100 * np.mean(np.array(true) == np.array(predicted)), abs=1e-3)
    recall = recall_score(true, predicted, labels=list(EMOTIONS), average=None, zero_division=0)
    assert summary["ua"] == pytest.approx(100 * recall.mean(), abs=1e-3)
    assert sorted(summary["missing_folds"]) == ["1003", "1004", "1005"]  # an honest partial run


@pytest.mark.slow
@pytest.mark.cpu_exact
def test_same_seed_gives_identical_predictions_on_cpu(tmp_path, local_run, features):
    model_dir, _ = local_run
    # Fold 1002 alone, in a fresh folder, with the seed it had inside the two-fold run.
    run_fold(TINY, features, "1002", tmp_path, model_id=1, fold_index=1, save_model=False)
    assert (tmp_path / runs.PREDICTIONS).read_text() == (
        runs.fold_dir(model_dir, "1002") / runs.PREDICTIONS
    ).read_text()


@pytest.mark.slow
def test_resume_skips_done_folds_and_a_killed_fold_leaves_no_done(tmp_path, monkeypatch, features, caplog):
    import keras

    model_dir = runs.run_dir(tmp_path, "cremad", "paper", "model3", 0)
    config = replace(TINY, {"train": {"max_epochs": 1}})
    run_folds(config, features, model_dir, LosoOptions(model_id=3, save_models=False), test_actors=["1001"])
    first_done = (runs.fold_dir(model_dir, "1001") / DONE).read_text()

    def killed(self, epoch, logs=None):
        raise KeyboardInterrupt  # Ctrl-C in the middle of fold 1002's training

    monkeypatch.setattr(keras.callbacks.EarlyStopping, "on_epoch_end", killed)
    with pytest.raises(KeyboardInterrupt):
        run_folds(
            config,
            features,
            model_dir,
            LosoOptions(model_id=3, save_models=False),
            test_actors=["1001", "1002"],
        )
    killed_dir = runs.fold_dir(model_dir, "1002")
    assert not (killed_dir / DONE).exists()
    assert list(killed_dir.iterdir()) == []  # no half-written files under any name
    monkeypatch.undo()

    with caplog.at_level(logging.INFO, logger="cremad.loso"):
        records = run_folds(
            config,
            features,
            model_dir,
            LosoOptions(model_id=3, save_models=False),
            test_actors=["1001", "1002"],
        )
    assert "skipped fold 1001: done" in caplog.text
    assert [record["actor"] for record in records] == ["1002"]
    assert (runs.fold_dir(model_dir, "1001") / DONE).read_text() == first_done
    assert (killed_dir / DONE).is_file()

    options = LosoOptions(model_id=3, save_models=False, force=True)
    records = run_folds(config, features, model_dir, options, test_actors=["1001"])
    assert [record["actor"] for record in records] == ["1001"]


def test_a_run_folder_of_another_config_is_not_mixed(tmp_path):
    record = {
        "experiment": "paper",
        "model_id": 2,
        "config": ExperimentConfig().to_dict(),
        "actors": list(ACTORS),
    }
    prepare_run(tmp_path, record, force=False)
    prepare_run(tmp_path, dict(record, command="again"), force=False)  # same run: fine
    runs.fold_dir(tmp_path, "1001").mkdir()
    (runs.fold_dir(tmp_path, "1001") / DONE).write_text("{}")
    older = json.loads((tmp_path / runs.RUN_JSON).read_text())
    del older["config"]["train"]["refit"]  # written before that setting existed: still the same run
    (tmp_path / runs.RUN_JSON).write_text(json.dumps(older))
    prepare_run(tmp_path, record, force=False)
    changed = dict(record, config=TINY.to_dict())
    with pytest.raises(
        CremadError, match=rf"train.max_epochs {ExperimentConfig().train.max_epochs} -> 2.*--force"
    ):
        prepare_run(tmp_path, changed, force=False)
    prepare_run(tmp_path, changed, force=True)
    assert json.loads((tmp_path / runs.RUN_JSON).read_text())["config"] == TINY.to_dict()
    assert not (runs.fold_dir(tmp_path, "1001") / DONE).exists()  # the old run's fold is no longer "done"


def test_class_weights_ignore_an_absent_class():
    labels = np.array([0, 0, 0, 2, 3, 3, 4, 5])  # no DIS (1), as on CASIA
    weights = class_weights(labels, "balanced")
    assert weights[1] == 1.0  # absent: never used, and not counted among the present classes
    assert weights[0] == pytest.approx(8 / (5 * 3)) and weights[2] == pytest.approx(8 / (5 * 1))
    assert class_weights(labels, "none") is None


def test_fold_selection_and_shards():
    actors = [str(a) for a in range(1001, 1011)]
    assert select_folds(actors) == actors
    assert select_folds(actors, folds=("1003", "1001")) == ["1001", "1003"]
    shards = [select_folds(actors, shard=(i, 3)) for i in range(3)]
    assert shards[0] == ["1001", "1004", "1007", "1010"]
    assert sorted(sum(shards, [])) == actors
    with pytest.raises(CremadError, match="1099"):
        select_folds(actors, folds=("1099",))
    with pytest.raises(CremadError, match="shard"):
        parse_shard("3/3")
    with pytest.raises(CremadError, match="shard"):
        LosoOptions(model_id=1, shard=(3, 3))
    assert parse_shard("1/3") == (1, 3)
    # One layout for every experiment and seed (the paper's is no exception).
    assert runs.run_dir("runs", "emodb", "paper", "model2", 0).as_posix() == "runs/emodb/paper/model2/seed0"
    assert runs.run_dir("runs", "cremad", "tuned", "model4", 3).as_posix() == "runs/cremad/tuned/model4/seed3"


# --- the command, end to end ------------------------------------------------------------------


@pytest.mark.slow
def test_cremad_loso_on_the_demo_corpus(tmp_path, capsys):
    from cremad.cli import main
    from cremad.synth import write_corpus

    write_corpus(tmp_path / "demo", actors=3, seed=0)
    argv = [
        "loso",
        "--model",
        "2",
        "--data",
        str(tmp_path / "demo"),
        "--runs",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--epochs",
        "2",
        "--folds",
        "1001,1003",
        "--no-save-models",
    ]
    assert main(argv) == 0
    model_dir = runs.run_dir(tmp_path / "runs", "cremad", "paper", "model2", 0)
    run = json.loads((model_dir / runs.RUN_JSON).read_text())
    assert run["model_id"] == 2 and run["experiment"] == "paper" and run["corpus"] == "cremad"
    assert run["config"]["train"]["max_epochs"] == 2 and run["actors"] == ["1001", "1002", "1003"]
    assert "keras" in run["versions"]
    for actor in ("1001", "1003"):
        fold_dir = runs.fold_dir(model_dir, actor)
        assert len(read_predictions(fold_dir / runs.PREDICTIONS)) == 82
        with np.load(fold_dir / runs.ATTENTION) as attention:
            assert attention["weights"].shape == (82, 1, run["n_frames"])
        assert not (fold_dir / runs.MODEL_FILE).exists()
        fold = json.loads((fold_dir / runs.FOLD_CONFIG).read_text())
        # The default recipe holds no validation actor back: every training actor fits.
        assert fold["validation_actors"] == [] and fold["fit_actors"] == fold["train_actors"]
        assert actor not in fold["train_actors"] and len(fold["train_actors"]) == 2
    assert not runs.fold_dir(model_dir, "1002").exists()
    summary = json.loads((model_dir / runs.SUMMARY_JSON).read_text())
    assert summary["n_folds"] == 2 and summary["n_clips"] == 164
    assert "UA" in capsys.readouterr().out

    assert main(argv[:-1] + ["--epochs", "3"]) == 2  # another config into the same folder: refused
    assert "--force" in capsys.readouterr().err


@pytest.mark.slow
def test_cremad_loso_runs_each_seed_into_its_own_folder(tmp_path, capsys):
    from cremad.cli import main
    from cremad.synth import write_corpus

    write_corpus(tmp_path / "demo", actors=3, seed=0)
    argv = [
        "loso",
        "--model",
        "3",
        "--data",
        str(tmp_path / "demo"),
        "--runs",
        str(tmp_path / "runs"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--epochs",
        "1",
        "--folds",
        "1002",
        "--no-save-models",
    ]
    assert main(argv + ["--seeds", "0,1"]) == 0
    for seed in (0, 1):
        run_dir = runs.run_dir(tmp_path / "runs", "cremad", "paper", "model3", seed)
        assert json.loads((run_dir / runs.RUN_JSON).read_text())["config"]["train"]["seed"] == seed
        fold = json.loads((runs.fold_dir(run_dir, "1002") / runs.FOLD_CONFIG).read_text())
        assert fold["seed"] == seed + 1  # fold 1002 is the second fold: seed + 1
        assert (run_dir / runs.SUMMARY_JSON).is_file()
    assert main(argv + ["--seed", "1"]) == 0  # the one-seed form resumes seed 1: nothing to train
    assert "Model 3, seed 1" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(argv + ["--seed", "1", "--seeds", "0,1"])


# --- local process pool (--jobs) --------------------------------------------------------------


@pytest.mark.slow
def test_process_pool_writes_the_same_folds(tmp_path, local_run, features):
    from cremad.loso import fold_pool

    model_dir, _ = local_run
    with fold_pool(2, threads=1) as pool:
        records = run_folds(
            TINY, features, tmp_path, LosoOptions(model_id=1), test_actors=["1001", "1002"], pool=pool
        )
    assert sorted(record["actor"] for record in records) == ["1001", "1002"]
    for actor in ("1001", "1002"):
        assert (runs.fold_dir(tmp_path, actor) / DONE).is_file()
        # Same seeds, same data: a worker on one thread trains what the local loop trained.
        ours = read_predictions(runs.fold_dir(tmp_path, actor) / runs.PREDICTIONS)
        theirs = read_predictions(runs.fold_dir(model_dir, actor) / runs.PREDICTIONS)
        assert [row["predicted"] for row in ours] == [row["predicted"] for row in theirs]
        for mine, other in zip(ours, theirs):
            for emotion in EMOTIONS:
                assert float(mine[f"p_{emotion}"]) == pytest.approx(float(other[f"p_{emotion}"]), abs=1e-4)


def test_jobs_and_threads_must_be_positive():
    from cremad import CremadError
    from cremad.loso import fold_pool
    from cremad.process import limit_threads

    with pytest.raises(CremadError, match="--jobs"):
        fold_pool(0)
    with pytest.raises(ValueError, match="--threads"):
        limit_threads(0)


def test_a_failed_fold_does_not_stop_the_others_and_is_named_at_the_end():
    from cremad import CremadError
    from cremad.loso import _gather

    def broken():
        raise RuntimeError("out of memory")

    finished = [("1001", lambda: {"actor": "1001"}), ("1002", broken), ("1003", lambda: {"actor": "1003"})]
    records = []
    with pytest.raises(CremadError, match="1 fold\\(s\\) failed: 1002"):
        for record in _gather(iter(finished), Exception):
            records.append(record)
    assert [record["actor"] for record in records] == ["1001", "1003"]


@pytest.mark.parametrize("cpus_per_fold, threads, expected", [(1.0, None, 1), (2.5, None, 3), (1.0, 4, 4)])
def test_ray_tasks_get_their_cpu_share_of_threads(
    tmp_path, monkeypatch, features, cpus_per_fold, threads, expected
):
    """--threads reaches each Ray task; without it a task runs on its --cpus-per-fold, rounded up
    (TensorFlow's default, every core, would oversubscribe a node running one task per core).
    tests/test_ray.py runs the tasks themselves."""
    import cremad.ray_backend as ray_backend

    sent = []
    monkeypatch.setattr(
        ray_backend, "run_ray_folds", lambda *args, **kwargs: sent.append((args, kwargs)) or iter(())
    )
    options = LosoOptions(model_id=1, backend="ray", cpus_per_fold=cpus_per_fold, threads=threads)
    run_folds(TINY, features, tmp_path, options, test_actors=["1001"])
    (((config, _, jobs, run_dir), kwargs),) = sent
    assert kwargs["threads"] == expected
    assert run_dir == tmp_path and "out_dir" not in jobs[0]  # the driver writes the fold, not the worker


def test_the_exit_status_comes_from_the_run_folder(tmp_path):
    """loso ends with an error naming every fold it was asked for that has no done.json."""
    from cremad.loso import check_done

    seed0, seed1 = (runs.run_dir(tmp_path, "cremad", "paper", "model1", seed) for seed in (0, 1))
    for run_dir, actors in ((seed0, ["1001", "1002"]), (seed1, ["1001"])):
        for actor in actors:
            runs.fold_dir(run_dir, actor).mkdir(parents=True)
            (runs.fold_dir(run_dir, actor) / DONE).write_text("{}")
    check_done([seed0], ["1001", "1002"])
    with pytest.raises(CremadError, match=f"1 fold\\(s\\) not done: {seed1}: 1002"):
        check_done([seed0, seed1], ["1001", "1002"])
