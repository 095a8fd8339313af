"""The classical baseline: functionals of a clip's own frames (never its padding), an SVM whose
scaler, grid search and calibration never see the held-out actor, and run folders that the
metrics read like a model's. One test runs the baseline on the real Emo-DB when it is present."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile

from cremad import CremadError, baseline
from cremad.atomic import write_json
from cremad.cli import main
from cremad.config import EMOTIONS, FeatureConfig
from cremad.corpus import Clip
from cremad.features import FeatureSet, load_features
from cremad.functionals import STATISTICS, functionals, load_functionals, mfcc_functionals, rich_descriptors

FRAME_SECONDS = 0.01


def statistic(row: np.ndarray, descriptor: int, name: str) -> float:
    return row[descriptor * len(STATISTICS) + STATISTICS.index(name)]


def test_functionals_of_a_ramp_and_a_constant():
    ramp = 1.0 + 2.0 * np.arange(101) * FRAME_SECONDS  # 1 -> 3 over one second: slope 2 per second
    row = functionals(np.column_stack([ramp, np.full(101, 5.0)]), FRAME_SECONDS)
    assert row.shape == (2 * len(STATISTICS),)
    expected = {
        "mean": 2.0,
        "min": 1.0,
        "max": 3.0,
        "range": 2.0,
        "q25": 1.5,
        "median": 2.0,
        "q75": 2.5,
        "slope": 2.0,
        "delta_mean": 0.02,
        "delta_std": 0.0,
    }  # delta: change per frame
    for name, value in expected.items():
        assert statistic(row, 0, name) == pytest.approx(value, abs=1e-9), name
    assert statistic(row, 0, "std") == pytest.approx(np.std(ramp))
    for name in STATISTICS:  # a constant has no spread, slope or change
        assert statistic(row, 1, name) == pytest.approx(
            5.0 if name in ("mean", "min", "max", "q25", "median", "q75") else 0.0, abs=1e-9
        ), name


def test_functionals_of_very_short_clips():
    one = functionals(np.array([[3.0]]), FRAME_SECONDS)
    assert statistic(one, 0, "mean") == 3.0 and statistic(one, 0, "slope") == 0.0
    assert statistic(one, 0, "delta_std") == 0.0
    four = functionals(np.arange(4.0)[:, None], FRAME_SECONDS)  # delta window narrowed to 3 frames
    assert statistic(four, 0, "delta_mean") == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_frames"):
        functionals(np.zeros((0, 13)), FRAME_SECONDS)


def write_tones(folder, seconds=(0.5, 0.8, 1.1)) -> None:
    """Three 16 kHz clips of a gliding tone with a pause, CREMA-D names, different lengths."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, (duration, emotion) in enumerate(zip(seconds, ("ANG", "SAD", "HAP"))):
        t = np.arange(int(duration * 16_000)) / 16_000
        signal = 0.3 * np.sin(2 * np.pi * (150 + 40 * index + 60 * t) * t) * (t < 0.75 * duration)
        soundfile.write(folder / f"100{index + 1}_DFA_{emotion}_XX.wav", signal.astype(np.float32), 16_000)


@pytest.mark.parametrize("kind", ["mfcc", "rich"])
def test_functionals_do_not_depend_on_the_padding(tmp_path, kind):
    """The same clips padded to 1.2 s and to 3 s (end padding: frames align) give one vector."""
    write_tones(tmp_path / "AudioWAV")
    rows = []
    for pad_to in (19_200, 48_000):
        features = load_features(
            tmp_path,
            config=FeatureConfig(pad_to=pad_to),
            cache_dir=tmp_path / "cache",
            jobs=1,
            progress=False,
        )
        values, names = load_functionals(features, kind, tmp_path / "cache", jobs=1)
        assert values.shape == (3, len(names)) and len(names) == (13 if kind == "mfcc" else 20) * len(
            STATISTICS
        )
        rows.append(values)
    np.testing.assert_allclose(rows[0], rows[1], rtol=1e-5, atol=1e-4)
    # Counted as frames, 2.5 s of padding would drag the mean of c0 down towards the floor (-632).
    everything = functionals(features.features[0], FRAME_SECONDS)  # (n_frames, 13), padding included
    assert statistic(everything, 0, "mean") < statistic(rows[1][0], 0, "mean") - 100


def test_start_padding_frames_are_left_out():
    """With start padding the clip's frames are the last ones; garbage before them changes nothing."""
    rng = np.random.default_rng(0)
    own = [rng.normal(size=(n, 13)).astype(np.float32) for n in (40, 61)]
    array = np.full((2, 61, 13), 1e6, np.float32)
    array[0, 21:], array[1] = own  # 21 frames of padding before clip 0
    clips = [Clip(f"/x/{name}.wav", name, "1001", "DFA", "ANG", "XX") for name in ("a", "b")]
    config = FeatureConfig(pad_side="start")
    lengths = np.array([39 * 160, 60 * 160])  # 40 and 61 centred frames
    values, _ = mfcc_functionals(FeatureSet(array, clips, config, 60 * 160, "k", lengths=lengths))
    for row, frames in zip(values, own):
        np.testing.assert_allclose(row, functionals(frames, FRAME_SECONDS), rtol=1e-6)


def test_rich_descriptors_find_the_pitch_of_a_tone():
    t = np.arange(16_000) / 16_000
    descriptors = rich_descriptors((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), FeatureConfig())
    assert descriptors.shape == (101, 7)
    pitch = descriptors[:, -1]  # semitones re 27.5 Hz: 220 Hz is 3 octaves up, 36 semitones
    assert np.nanmedian(pitch) == pytest.approx(36.0, abs=0.1)
    assert np.nanmedian(descriptors[:, 0]) == pytest.approx(220, rel=0.1)  # centroid of a pure tone


def test_functionals_cache_is_keyed_and_reused(tmp_path, monkeypatch):
    write_tones(tmp_path / "AudioWAV")
    features = load_features(tmp_path, cache_dir=tmp_path / "c", jobs=1, progress=False)
    first, _ = load_functionals(features, "mfcc", tmp_path / "c")
    assert len(list((tmp_path / "c").glob("functionals-mfcc-*.npz"))) == 1
    monkeypatch.setattr("cremad.functionals.mfcc_functionals", lambda _: pytest.fail("recomputed"))
    again, _ = load_functionals(features, "mfcc", tmp_path / "c")
    np.testing.assert_array_equal(first, again)
    other = load_features(
        tmp_path, config=FeatureConfig(n_mels=26), cache_dir=tmp_path / "c", jobs=1, progress=False
    )
    monkeypatch.undo()
    load_functionals(other, "mfcc", tmp_path / "c")
    assert len(list((tmp_path / "c").glob("functionals-mfcc-*.npz"))) == 2  # new key, old cache kept
    assert not list((tmp_path / "c").glob(".*tmp*"))
    with pytest.raises(ValueError, match="--features"):
        load_functionals(features, "egemaps", tmp_path / "c")


# --- the SVM in its folds ---------------------------------------------------------------------

ACTORS = ("1001", "1002", "1003", "1004", "1005")


def separable(clips_per_emotion: int = 4, seed: int = 0):
    """Functionals whose column 0 is the clip's index (to tell which clips a fit saw) and whose
    columns 1-6 carry the emotion; labels and actors to go with them."""
    rng = np.random.default_rng(seed)
    actors = np.repeat(ACTORS, len(EMOTIONS) * clips_per_emotion)
    labels = np.tile(np.repeat(np.arange(len(EMOTIONS)), clips_per_emotion), len(ACTORS))
    values = rng.normal(size=(len(labels), 8))
    values[np.arange(len(labels)), 1 + labels] += 4.0
    values[:, 0] = np.arange(len(labels))
    return values, labels, actors


class RecordingScaler(baseline.StandardScaler):
    """StandardScaler that records the clips (column 0) of every array it is fitted on."""

    fitted: list[set[int]] = []

    def fit(self, X, y=None, sample_weight=None):  # noqa: N803 (scikit-learn's argument name)
        RecordingScaler.fitted.append({int(round(value)) for value in X[:, 0]})
        return super().fit(X, y, sample_weight)


class RecordingSearch(baseline.GridSearchCV):
    """GridSearchCV that records the clips, groups and splits it is given."""

    calls: list[dict] = []

    def fit(self, X, y=None, **params):  # noqa: N803 (scikit-learn's argument name)
        RecordingSearch.calls.append(
            {"clips": set(X[:, 0].astype(int)), "groups": set(params["groups"]), "splits": list(self.cv)}
        )
        return super().fit(X, y, **params)


def test_no_fit_sees_the_held_out_actor(monkeypatch):
    monkeypatch.setattr(baseline, "StandardScaler", RecordingScaler)
    monkeypatch.setattr(baseline, "GridSearchCV", RecordingSearch)
    values, labels, actors = separable()
    for test_actor in ACTORS:
        RecordingScaler.fitted.clear()
        RecordingSearch.calls.clear()
        result = baseline.run_fold(values, labels, actors, test_actor, seed=3)
        test_clips = set(np.flatnonzero(actors == test_actor))
        assert set(result["test_index"]) == test_clips
        (search,) = RecordingSearch.calls
        assert test_actor not in search["groups"] and len(search["groups"]) == len(ACTORS) - 1
        assert not search["clips"] & test_clips
        train_actors = actors[actors != test_actor]
        for fit_rows, check_rows in search["splits"]:  # GroupKFold: no actor on both sides
            assert not set(train_actors[fit_rows]) & set(train_actors[check_rows])
        # Grid points x inner splits, calibration splits, and the final refit: all scale fits.
        assert len(RecordingScaler.fitted) > 10
        for seen in RecordingScaler.fitted:
            assert seen and not seen & test_clips
        assert max(map(len, RecordingScaler.fitted)) == len(train_actors)  # the final refit saw them all
        np.testing.assert_allclose(result["probabilities"].sum(axis=1), 1.0, rtol=1e-6)
        assert result["probabilities"].shape == (len(test_clips), len(EMOTIONS))
        assert np.mean(result["probabilities"].argmax(axis=1) == labels[actors == test_actor]) > 0.8


def test_one_training_actor_is_refused():
    values, labels, actors = separable()
    keep = np.isin(actors, ACTORS[:2])
    with pytest.raises(ValueError, match="at least 2 training actors"):
        baseline.run_fold(values[keep], labels[keep], actors[keep], ACTORS[0])
    with pytest.raises(ValueError, match="no clips"):
        baseline.run_fold(values, labels, actors, "9999")


def test_parallel_folds_match_serial_ones():
    values, labels, actors = separable()
    serial = {r["test_actor"]: r for r in baseline.fold_results(values, labels, actors, list(ACTORS), jobs=1)}
    parallel = {
        r["test_actor"]: r for r in baseline.fold_results(values, labels, actors, list(ACTORS), jobs=2)
    }
    assert set(serial) == set(parallel) == set(ACTORS)
    for actor in ACTORS:
        np.testing.assert_allclose(
            serial[actor]["probabilities"], parallel[actor]["probabilities"], atol=1e-9
        )


# --- the command: run folders like a model's --------------------------------------------------


@pytest.fixture(scope="module")
def baseline_run(tiny_corpus, tmp_path_factory):
    """`cremad baseline` on the tiny synthetic corpus (3 actors); returns (command, runs root)."""
    root = tmp_path_factory.mktemp("baseline")
    command = [
        "baseline",
        "--data",
        str(tiny_corpus),
        "--runs",
        str(root / "runs"),
        "--cache-dir",
        str(root / "cache"),
    ]
    assert main(command) == 0
    return command, root / "runs"


def test_baseline_command_writes_model_like_folds_and_resumes(baseline_run, capsys):
    from cremad import runs

    command, root = baseline_run
    run_dir = runs.run_dir(root, "cremad", "paper", "svm", 0)
    predictions = runs.load_predictions(run_dir)
    assert (
        predictions.folds == ["1001", "1002", "1003"]
        and not predictions.unfinished
        and not predictions.missing
    )
    assert predictions.model == "svm" and predictions.run["baseline"]["features"] == "mfcc"
    assert len(predictions.clip_ids) == 3 * 82
    np.testing.assert_allclose(predictions.probabilities.sum(axis=1), 1.0, atol=1e-4)
    for actor in predictions.folds:  # each fold tested its own actor's clips only
        assert {clip[:4] for clip in predictions.clip_ids[predictions.actors == actor]} == {actor}
    summary = runs.read_json(run_dir / runs.SUMMARY_JSON)
    assert summary["n_folds"] == 3 and summary["ua"] > 100 / 6  # the synthetic emotions are learnable

    done = {path: path.stat().st_mtime_ns for path in run_dir.glob(f"*/{runs.DONE}")}
    assert len(done) == 3
    assert main(command) == 0  # a rerun skips finished folds
    assert {path: path.stat().st_mtime_ns for path in run_dir.glob(f"*/{runs.DONE}")} == done

    record = runs.read_run(run_dir)  # a run folder made with other baseline settings is refused
    write_json(run_dir / runs.RUN_JSON, {**record, "baseline": {**record["baseline"], "inner_splits": 3}})
    capsys.readouterr()
    assert main(command) == 2
    assert "other settings" in capsys.readouterr().err
    write_json(run_dir / runs.RUN_JSON, record)


def test_baseline_fits_original_clips_under_an_augmenting_experiment(baseline_run, tmp_path, caplog):
    """Speed copies train the recurrent models only: the SVM's folds are the plain run's, and it says so."""
    from cremad import runs

    command, root = baseline_run
    recipe = tmp_path / "voices.toml"
    recipe.write_text('description = "speed copies"\n[train]\nspeed_factors = [0.9, 1.1]\n')
    caplog.set_level(logging.INFO, logger="cremad.baseline")
    assert main([*command[:3], "--experiment", str(recipe), *command[3:]]) == 0
    assert "the SVM fits the original clips" in caplog.text
    plain = runs.load_predictions(runs.run_dir(root, "cremad", "paper", "svm", 0))
    voices = runs.load_predictions(runs.run_dir(root, "cremad", "voices", "svm", 0))
    assert list(voices.clip_ids) == list(plain.clip_ids)
    np.testing.assert_array_equal(voices.probabilities, plain.probabilities)
    assert not list((root.parent / "cache").glob("augment-*"))  # no copies were made for it


def test_copy_functionals_of_a_tone_move_its_pitch_by_the_speed_factor(tmp_path, monkeypatch):
    """A 1.1 speed copy of a steady tone sounds 12 log2(1.1) = 1.65 semitones higher; its MFCC
    statistics are those of the copy's own frames; the copies' functionals are cached."""
    from cremad.augment import attach_augmented
    from cremad.config import TrainConfig
    from cremad.features import speech_mask
    from cremad.functionals import copy_functionals

    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    t = np.arange(16_000) / 16_000
    for index, (hz, emotion) in enumerate(zip((150, 200, 250), ("ANG", "SAD", "HAP"))):
        signal = (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)
        soundfile.write(folder / f"100{index + 1}_DFA_{emotion}_XX.wav", signal, 16_000)
    cache = tmp_path / "cache"
    features = load_features(
        tmp_path, config=FeatureConfig(pad_side="start"), cache_dir=cache, jobs=1, progress=False
    )
    features = attach_augmented(
        features, TrainConfig(speed_factors=(0.9, 1.1)), cache, jobs=1, progress=False
    )
    values, names = load_functionals(features, "rich", cache, jobs=1)
    copies = copy_functionals(features, "rich", cache, jobs=1)
    assert copies.shape == (6, values.shape[1])
    pitch = names.index("pitch_st_median")
    augmented = features.augmented
    for row, (source, voice) in enumerate(zip(augmented.source, augmented.voices)):
        factor = float(str(voice).removeprefix("speed"))
        assert copies[row, pitch] - values[source, pitch] == pytest.approx(12 * np.log2(factor), abs=0.1)
    own = speech_mask(
        [1 + length // features.config.hop_length for length in augmented.lengths], features.n_frames, "start"
    )
    for row in range(len(copies)):
        np.testing.assert_allclose(
            copies[row, : 13 * len(STATISTICS)],
            functionals(augmented.features[row][own[row], :13], FRAME_SECONDS),
            rtol=1e-6,
        )
    monkeypatch.setattr("cremad.functionals.functionals", lambda *args: pytest.fail("recomputed"))
    np.testing.assert_array_equal(copy_functionals(features, "rich", cache, jobs=1), copies)
    monkeypatch.undo()
    vtlp = attach_augmented(features, TrainConfig(vtlp_factors=(1.1,)), cache, jobs=1, progress=False)
    with pytest.raises(CremadError, match="vtlp1.1"):
        copy_functionals(vtlp, "rich", cache, jobs=1)
    assert copy_functionals(vtlp, "mfcc", cache, jobs=1).shape == (3, 13 * len(STATISTICS))


class OrderedSearch(baseline.GridSearchCV):
    """GridSearchCV that records the rows (column 0) it is fitted on, in order, and its splits."""

    calls: list[dict] = []

    def fit(self, X, y=None, **params):  # noqa: N803 (scikit-learn's argument name)
        OrderedSearch.calls.append({"rows": X[:, 0].astype(int), "splits": list(self.cv)})
        return super().fit(X, y, **params)


def test_copies_train_with_their_actor_and_never_for_the_held_out_one(monkeypatch):
    monkeypatch.setattr(baseline, "GridSearchCV", OrderedSearch)
    values, labels, actors = separable()
    n = len(values)
    source = np.tile(np.arange(n), 2)  # two voices of every clip
    copy_values = values[source].copy()
    copy_values[:, 0] = n + np.arange(len(source))  # copy k is row n + k
    copies = baseline.Copies(copy_values, source)
    owner = np.concatenate([actors, actors[source]])  # every row's actor, clips then copies
    for test_actor in ACTORS:
        OrderedSearch.calls.clear()
        result = baseline.run_fold(values, labels, actors, test_actor, seed=1, copies=copies)
        (search,) = OrderedSearch.calls
        rows = search["rows"]
        expected = set(np.flatnonzero(owner != test_actor))
        assert set(rows) == expected and len(rows) == len(expected)  # every other actor's copies, no more
        assert result["n_train_copies"] == 2 * result["n_train"]
        for fit_rows, check_rows in search["splits"]:  # a copy sits on its own actor's side
            assert not set(owner[rows[fit_rows]]) & set(owner[rows[check_rows]])
        assert set(result["test_index"]) == set(np.flatnonzero(actors == test_actor))


def test_baseline_command_with_augment_trains_on_the_copies(baseline_run, tmp_path, capsys):
    from cremad import runs

    command, root = baseline_run
    recipe = tmp_path / "voices.toml"
    recipe.write_text('description = "speed copies"\n[train]\nspeed_factors = [0.9, 1.1]\n')
    assert main([*command[:3], "--experiment", str(recipe), "--augment", *command[3:]]) == 0
    run_dir = runs.run_dir(root, "cremad", "voices", "svm-aug", 0)
    assert runs.read_run(run_dir)["baseline"]["augmented"] == ["speed0.9", "speed1.1"]
    for folder in sorted(run_dir.glob("fold-*")):
        fold = runs.read_json(folder / "config.json")
        assert fold["n_train_copies"] == 2 * fold["n_train"]
    assert runs.load_predictions(run_dir).folds == ["1001", "1002", "1003"]
    capsys.readouterr()
    assert main([*command[:3], "--augment", *command[3:]]) == 2  # the paper recipe makes no copies
    assert "--augment" in capsys.readouterr().err


def test_summarize_figures_and_perception_treat_the_baseline_as_a_model(baseline_run, tmp_path, capsys):
    from results_fixtures import write_runs
    from test_perception import write_meta

    _, root = baseline_run
    write_runs(root)  # hand-made runs of models 1-4 beside it (actors 1001, 1002)
    assert main(["summarize", "--runs", str(root)]) == 0
    assert "svm, seed 0" in capsys.readouterr().out
    out = tmp_path / "figures"
    assert main(["figures", "--runs", str(root), "--out", str(out)]) == 0
    full = (out / "table_full.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in full[1:]] == ["model1", "model2", "model3", "model4", "svm"]
    tests = [line.split(",") for line in (out / "significance.csv").read_text().splitlines()[1:]]
    against_svm = [row for row in tests if row[1] == "svm"]
    assert [row[0] for row in against_svm] == ["model1", "model2", "model3", "model4"]
    assert all(int(row[2]) == 2 for row in against_svm)  # Wilcoxon pairs the two shared folds
    assert (out / "fig3_confusion_svm.png").stat().st_size > 10_000
    assert "svm" not in (out / "table2.csv").read_text()  # Table II compares the paper's models
    meta = write_meta(tmp_path / "meta")  # votes on four DFA clips of actors 1001 and 1002
    capsys.readouterr()
    assert (
        main(["perception", "--runs", str(root), "--meta", str(meta), "--out", str(tmp_path / "people")]) == 0
    )
    models_table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cremad/")]
    assert [line.split("|")[1].strip() for line in models_table[:5]] == [
        "cremad/model1",
        "cremad/model2",
        "cremad/model3",
        "cremad/model4",
        "cremad/svm",
    ]


def test_baseline_command_errors_name_the_argument(tmp_path, capsys):
    assert main(["baseline", "--data", str(tmp_path / "missing"), "--runs", str(tmp_path)]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["baseline", "--data", str(tmp_path), "--experiment", "nosuch"]) == 2
    assert "nosuch" in capsys.readouterr().err


def test_emodb_scores_well_above_chance(emodb_dir, tmp_path):
    """Full LOSO on Emo-DB's 10 speakers, 6 classes (chance: UA 16.7 %)."""
    from sklearn.metrics import balanced_accuracy_score

    features = load_features(emodb_dir, corpus="emodb", cache_dir=tmp_path, progress=False)
    values, _ = load_functionals(features, "mfcc", tmp_path)
    predicted = np.empty(len(values), dtype=int)
    for result in baseline.fold_results(
        values, features.labels, features.actors, sorted(set(features.actors))
    ):
        predicted[result["test_index"]] = result["probabilities"].argmax(axis=1)
    assert 100 * balanced_accuracy_score(features.labels, predicted) > 55
