"""Recipe selection: validation inside the training actors, never the held-out one."""

import json
import types

import numpy as np
import pytest

from cremad.config import ExperimentConfig, TrainConfig, replace
from cremad.scaling import fit_scaler, normalize_utterances, prepare_inputs
from cremad.selection import outer_actors, selection_split, summarize_curves, validation_curve
from cremad.training import train_model


def fake_features(n_actors=5, clips_per_actor=4, n_frames=6):
    actors = np.repeat([f"{1001 + i}" for i in range(n_actors)], clips_per_actor)
    n = len(actors)
    # Every clip's frames hold its own row number, so the arrays passed to fit name their clips.
    x = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], n_frames, axis=1).repeat(13, axis=2)
    lengths = np.full(n, 3)
    mask = np.arange(n_frames)[None, :] >= n_frames - lengths[:, None]  # start padding
    return types.SimpleNamespace(actors=actors, labels=np.arange(n) % 6, features=x, speech_mask=lambda: mask)


def test_selection_split_never_holds_the_outer_actor():
    features = fake_features()
    for outer in sorted(set(features.actors)):
        for seed in (0, 1, 2):
            train_rows, selection_rows, selection_actor = selection_split(features.actors, outer, seed)
            assert outer not in set(features.actors[train_rows]) | set(features.actors[selection_rows])
            assert set(features.actors[selection_rows]) == {selection_actor} and selection_actor != outer
            assert selection_actor not in set(features.actors[train_rows])
            assert len(train_rows) + len(selection_rows) == len(features.actors) - 4
    first, again = selection_split(features.actors, "1003", 1), selection_split(features.actors, "1003", 1)
    assert first[2] == again[2] and np.array_equal(first[0], again[0])  # deterministic
    with pytest.raises(ValueError, match="outer actor"):
        selection_split(features.actors, "9999", 0)


def test_validation_curve_fits_without_the_outer_actor(monkeypatch):
    """The arrays passed to training: no clip of the outer actor anywhere, the selection actor
    only in the watched (validation) rows, no early stopping, the curve's length in epochs."""
    features = fake_features()
    seen = {}

    def recording_train_model(
        config, model_id, x, y, validation=None, seed=0, callbacks=(), verbose=0, frame_mask=None, copies=None
    ):
        seen.update(
            rows=x[:, 0, 0].astype(int),
            validation=validation,
            config=config,
            frame_mask=frame_mask,
            copies=copies,
        )
        return types.SimpleNamespace(history={"val_ua": [0.2] * config.train.max_epochs})

    monkeypatch.setattr("cremad.training.train_model", recording_train_model)
    config = replace(ExperimentConfig(name="cand"), {"train": {"standardize_frames": "speech"}})
    record = validation_curve(config, 3, features, outer_actor="1002", seed=0, epochs=7)
    actors = features.actors[seen["rows"]]
    assert "1002" not in actors
    assert set(actors[seen["validation"]]) == {record["selection"]}
    assert record["selection"] not in set(actors[~seen["validation"]])
    assert not seen["config"].train.early_stopping and seen["config"].train.max_epochs == 7
    assert seen["frame_mask"].shape == (len(seen["rows"]), 6)
    assert (
        record["ua"] == [0.2] * 7 and record["outer"] == "1002" and seen["copies"] is None
    )  # no augmentation by default


def test_candidates_load_by_name_or_path():
    from cremad.selection import candidate

    by_name = candidate("start-speech-zero", 3)
    assert by_name.name == "start-speech-zero" and by_name.features.pad_side == "start"
    assert by_name.train.standardize_frames == "speech" and by_name.train.padding_value == "zero"
    assert candidate("experiments/candidates/end-all.toml", 1).features.pad_side == "end"
    assert candidate("paper", 2).name == "paper"


def test_outer_actors_are_a_fixed_subset():
    actors = np.array(["a", "b", "c", "d", "e"])
    assert outer_actors(actors, 2) == outer_actors(actors, 2) and len(outer_actors(actors, 2)) == 2
    assert sorted(outer_actors(actors, None)) == list("abcde")


def test_curves_average_over_folds_and_models():
    records = [
        {"experiment": "x", "model": 1, "ua": [0.2, 0.4]},
        {"experiment": "x", "model": 3, "ua": [0.4, 0.6, 0.9]},
    ]
    rows = {(row["experiment"], row["models"]): row for row in summarize_curves(records)}
    assert rows[("x", "all models")]["best_epoch"] == 2
    assert rows[("x", "all models")]["best_ua"] == pytest.approx(0.5)
    assert rows[("x", "model3")]["best_ua"] == pytest.approx(0.9)


def test_speech_frame_statistics_and_zero_padding():
    x = np.zeros((2, 4, 13), np.float32)
    x[:, :2] = -600.0  # padding at the log floor
    x[0, 2:], x[1, 2:] = 1.0, 3.0  # speech
    mask = np.array([[False, False, True, True]] * 2)
    mean, std = fit_scaler(x, frame_mask=mask)
    assert mean[0] == pytest.approx(2.0) and std[0] == pytest.approx(1.0)
    all_mean, _ = fit_scaler(x)
    assert all_mean[0] == pytest.approx(-299.0)  # the padding dominates without the mask
    inputs = prepare_inputs(x, mean, std, "zero", mask)
    np.testing.assert_array_equal(inputs[:, :2], 0.0)
    np.testing.assert_allclose(inputs[0, 2:, 0], -1.0)
    np.testing.assert_allclose(prepare_inputs(x, mean, std, "floor")[:, :2, 0], -602.0)
    with pytest.raises(ValueError, match="frame mask"):
        prepare_inputs(x, mean, std, "zero")


def test_recipe_settings_are_checked():
    with pytest.raises(ValueError, match="standardize_frames"):
        TrainConfig(standardize_frames="voiced")
    with pytest.raises(ValueError, match="utterance_normalization"):
        TrainConfig(utterance_normalization="speaker")
    assert TrainConfig(
        standardize_frames="all", padding_value="floor", utterance_normalization="mean"
    ).needs_frame_mask


def test_utterance_normalization_uses_each_clips_own_frames_only():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, (3, 8, 13)).astype(np.float32)
    mask = np.arange(8)[None, :] >= np.array([[2], [5], [0]])  # start padding: 6, 3 and 8 own frames
    x[~mask] = -600.0  # padding at the log floor
    assert normalize_utterances(x, mask, "none") is x
    for mode in ("mean", "meanvar"):
        out = normalize_utterances(x, mask, mode)
        for clip in range(3):
            own = out[clip, mask[clip]]  # (own frames, 13)
            np.testing.assert_allclose(own.mean(axis=0), 0.0, atol=1e-5)
            if mode == "meanvar":
                np.testing.assert_allclose(own.std(axis=0), 1.0, atol=1e-5)
            else:  # only shifted: the spread within the clip is kept
                np.testing.assert_allclose(own.std(axis=0), x[clip, mask[clip]].std(axis=0), rtol=1e-5)
        changed = x.copy()
        changed[~mask] = 0.0  # whatever the padding holds, the clip's own frames come out the same
        np.testing.assert_allclose(normalize_utterances(changed, mask, mode)[mask], out[mask], atol=1e-5)
    # prepare_inputs applies it before the corpus z-scoring and still zeroes the padding
    inputs = prepare_inputs(
        x, np.zeros(13, np.float32), np.full(13, 2.0, np.float32), "zero", mask, "meanvar"
    )
    np.testing.assert_allclose(
        inputs, np.where(mask[..., None], normalize_utterances(x, mask, "meanvar") / 2, 0.0), atol=1e-6
    )
    with pytest.raises(ValueError, match="frame mask"):
        normalize_utterances(x, None, "mean")
    with pytest.raises(ValueError, match="padding_value"):
        TrainConfig(padding_value="mean")
    config = replace(ExperimentConfig(), {"train": {"padding_value": "zero"}})
    with pytest.raises(ValueError, match="frame_mask"):
        train_model(config, 1, np.zeros((4, 5, 13), np.float32), np.zeros(4, int))


@pytest.mark.slow
def test_select_command_writes_and_resumes(tiny_corpus, tmp_path, monkeypatch):
    from cremad.cli import main

    out = tmp_path / "selection.json"
    args = [
        "select",
        "--data",
        str(tiny_corpus),
        "--experiments",
        "start-speech-zero",
        "--models",
        "3",
        "--outer",
        "1",
        "--epochs",
        "2",
        "--out",
        str(out),
        "--cache-dir",
        str(tmp_path / "c"),
    ]
    assert main(args) == 0
    records = json.loads(out.read_text())
    assert len(records) == 1 and len(records[0]["ua"]) == 2
    assert all(0.0 <= value <= 1.0 for value in records[0]["ua"])
    assert records[0]["outer"] not in (records[0]["selection"],)

    def no_training(*args, **kwargs):
        raise AssertionError("trained a curve the results file already holds")

    monkeypatch.setattr("cremad.selection.validation_curve", no_training)
    monkeypatch.setattr("cremad.training.train_model", no_training)
    assert main(args) == 0  # resumed: nothing left to train
    assert json.loads(out.read_text()) == records


def test_input_noise_touches_speech_frames_in_training_only():
    from cremad.training import SpeechFrameNoise

    x = np.ones((2, 5, 13), np.float32)
    x[:, :2] = 0.0  # start padding, 0 after prepare_inputs
    layer = SpeechFrameNoise(0.5, seed=0)
    noisy = np.asarray(layer(x, training=True))
    np.testing.assert_array_equal(noisy[:, :2], 0.0)  # padding stays 0
    assert 0.3 < np.std(noisy[:, 2:] - 1.0) < 0.7
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)  # inference: the input itself
    with pytest.raises(ValueError, match="input_noise"):
        TrainConfig(input_noise=-0.1)


def test_input_noise_trains_and_returns_the_papers_model():
    features = fake_features(n_actors=3, clips_per_actor=6, n_frames=6)
    config = replace(
        ExperimentConfig(),
        {
            "model": {"pre_units": 4, "post_units": 4, "attention_units": 4},
            "train": {"max_epochs": 2, "input_noise": 0.3},
        },
    )
    result = train_model(
        config, 1, features.features, features.labels, seed=0, frame_mask=features.speech_mask()
    )
    assert result.model.name == "model1" and "noise" not in [layer.name for layer in result.model.layers]
    assert len(result.history["loss"]) == 2


def test_validation_curve_normalizes_each_actor_as_folds_do(monkeypatch):
    """With train.speaker_normalization the curve trains on actor-normalized MFCCs, as run_fold
    does: each inner actor's speech frames have mean 0, and the outer actor is still absent."""
    features = fake_features()
    rng = np.random.default_rng(0)
    features.features = features.features + rng.normal(size=features.features.shape).astype(np.float32)
    seen = {}

    def recording_train_model(
        config, model_id, x, y, validation=None, seed=0, callbacks=(), verbose=0, frame_mask=None, copies=None
    ):
        seen.update(x=x, frame_mask=frame_mask)
        return types.SimpleNamespace(history={"val_ua": [0.2] * config.train.max_epochs})

    monkeypatch.setattr("cremad.training.train_model", recording_train_model)
    config = replace(ExperimentConfig(name="cand"), {"train": {"speaker_normalization": True}})
    validation_curve(config, 3, features, outer_actor="1002", seed=0, epochs=2)
    train_rows, selection_rows, _ = selection_split(features.actors, "1002", 0)
    actors = features.actors[np.sort(np.concatenate([train_rows, selection_rows]))]
    assert "1002" not in actors
    for actor in set(actors):
        speech = seen["x"][actors == actor][seen["frame_mask"][actors == actor]]  # (frames, 13)
        np.testing.assert_allclose(speech.mean(axis=0), 0.0, atol=1e-4)
        np.testing.assert_allclose(speech.std(axis=0), 1.0, atol=1e-3)


def test_ema_model_holds_the_average_of_the_weights():
    """With train.ema_momentum the returned model holds the exponential moving average of the
    weights after each batch (the first average being the first batch's weights)."""
    import keras

    features = fake_features(n_actors=3, clips_per_actor=6, n_frames=6)
    momentum = 0.8
    config = replace(
        ExperimentConfig(),
        {
            "model": {"pre_units": 4, "post_units": 4, "attention_units": 4},
            "train": {"max_epochs": 3, "batch_size": 4, "ema_momentum": momentum},
        },
    )
    after_batch = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            after_batch.append([np.array(weight) for weight in self.model.get_weights()])

    result = train_model(
        config,
        3,
        features.features,
        features.labels,
        seed=0,
        frame_mask=features.speech_mask(),
        callbacks=[Record()],
    )
    assert len(after_batch) == 3 * 5  # 18 clips in batches of 4
    average = after_batch[0]
    for weights in after_batch[1:]:
        average = [momentum * old + (1 - momentum) * new for old, new in zip(average, weights)]
    final = result.model.get_weights()
    assert not np.allclose(final[0], after_batch[-1][0])  # not the last batch's weights
    for got, expected in zip(final, average):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="ema_momentum"):
        TrainConfig(ema_momentum=1.0)


def test_ema_validation_curve_scores_the_averaged_model():
    """At every epoch's end the callbacks (the logged UA among them) see the averaged weights: at
    the last epoch, those of the model train_model returns, not the last batch's."""
    import keras
    from sklearn.metrics import balanced_accuracy_score

    features = fake_features(n_actors=3, clips_per_actor=8, n_frames=6)
    features.features = features.features + np.random.default_rng(1).normal(
        size=features.features.shape
    ).astype(np.float32)
    config = replace(
        ExperimentConfig(),
        {
            "model": {"pre_units": 4, "post_units": 4, "attention_units": 4},
            "train": {"max_epochs": 3, "batch_size": 4, "ema_momentum": 0.9},
        },
    )
    validation = features.actors == "1003"
    mask = features.speech_mask()
    mean, std = fit_scaler(features.features[~validation], True, mask[~validation])  # train_model's scaler
    watched = prepare_inputs(features.features[validation], mean, std, "zero", mask[validation])
    seen = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(self.model.predict(watched, verbose=0))

    result = train_model(
        config,
        1,
        features.features,
        features.labels,
        validation=validation,
        seed=0,
        frame_mask=mask,
        callbacks=[Record()],
    )
    np.testing.assert_allclose(result.mean, mean, rtol=1e-6)
    final = result.model.predict(watched, verbose=0)
    np.testing.assert_allclose(seen[-1], final, rtol=1e-5, atol=1e-6)
    assert result.history["val_ua"][-1] == pytest.approx(
        balanced_accuracy_score(features.labels[validation], final.argmax(axis=1))
    )


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_cosine_schedule_decays_to_zero_over_the_run(schedule):
    """train.lr_schedule "cosine" lowers the rate after every batch along a half cosine, from
    learning_rate at the first batch towards 0 after the last batch of the last epoch (the epochs
    fit runs: max_epochs); "constant" keeps learning_rate."""
    import keras

    features = fake_features(n_actors=3, clips_per_actor=6, n_frames=6)  # 18 clips: 5 batches of 4
    config = replace(
        ExperimentConfig(),
        {
            "model": {"pre_units": 4, "post_units": 4, "attention_units": 4},
            "train": {"max_epochs": 3, "batch_size": 4, "learning_rate": 0.01, "lr_schedule": schedule},
        },
    )
    rates = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):  # the rate this batch's update uses
            rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    train_model(
        config,
        3,
        features.features,
        features.labels,
        seed=0,
        frame_mask=features.speech_mask(),
        callbacks=[Record()],
    )
    steps = np.arange(3 * 5)
    expected = 0.01 * (0.5 * (1 + np.cos(np.pi * steps / 15)) if schedule == "cosine" else np.ones(15))
    np.testing.assert_allclose(rates, expected, rtol=1e-5, atol=1e-9)


def test_cosine_schedule_refuses_early_stopping():
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine", early_stopping=True)
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainConfig(lr_schedule="linear")


def test_cosine_schedule_with_refit_decays_again_over_the_refit():
    """The refit does not replay the first run's logged rates onto a cosine optimizer (Keras
    refuses to set a rate there); it runs its own decay over the same epoch count."""
    features = fake_features(n_actors=3, clips_per_actor=6, n_frames=6)
    config = replace(
        ExperimentConfig(),
        {
            "model": {"pre_units": 4, "post_units": 4, "attention_units": 4},
            "train": {"max_epochs": 2, "batch_size": 4, "lr_schedule": "cosine", "refit": True},
        },
    )
    result = train_model(
        config,
        1,
        features.features,
        features.labels,
        validation=features.actors == "1003",
        seed=0,
        frame_mask=features.speech_mask(),
    )
    assert len(result.history["loss"]) == len(result.refit_history["loss"]) == 2
