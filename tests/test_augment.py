"""New voices for the training speakers: speed and vocal-tract-length perturbation move a tone
as they should, masking spares the padding, the copies are cached by what made them, and no
copy of a test, validation or selection actor's clip ever reaches training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cremad import runs
from cremad.augment import (
    VOICE_KINDS,
    AugmentedSet,
    attach_augmented,
    augment_cache_key,
    augmented_inputs,
    fit_length,
    speed_perturb,
)
from cremad.config import SAMPLE_RATE, ExperimentConfig, FeatureConfig, TrainConfig, replace
from cremad.features import FeatureSet, extract_frames, load_features
from cremad.folds import run_fold
from cremad.frames import column_names, magnitude_spectrum, vtlp_warp, warp_spectrum
from cremad.scaling import fit_scaler
from cremad.selection import selection_split, validation_curve
from cremad.training import SpeechFrameMasking, train_model

# One recipe option per augmentation, each as a recipe would write it.
OPTIONS = {
    "speed": {"speed_factors": [0.9, 1.1]},
    "vtlp": {"vtlp_factors": [0.9, 1.1]},
    "masks": {"time_masks": 2, "time_mask_frames": 5, "frequency_masks": 2, "frequency_mask_columns": 3},
}
TINY_MODEL = {"pre_units": 4, "post_units": 4, "attention_units": 4}
N_FRAMES = 20


def tone(frequency: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def peak_hz(signal: np.ndarray) -> float:
    """The strongest frequency of `signal`, to about 0.1 Hz (a Hann window, zero-padded FFT)."""
    n_fft = 16 * SAMPLE_RATE * 10
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal)), n=n_fft))
    return float(np.argmax(spectrum) * SAMPLE_RATE / n_fft)


# --- the perturbations on known signals --------------------------------------------------------


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_perturbation_moves_a_tones_pitch_and_length_by_the_factor(factor):
    perturbed = speed_perturb(tone(200.0), factor, SAMPLE_RATE)
    assert peak_hz(perturbed) == pytest.approx(200.0 * factor, abs=0.5)  # 200 Hz at 1.1 -> 220 Hz
    assert len(perturbed) == pytest.approx(SAMPLE_RATE / factor, abs=2)


def test_a_slowed_clip_longer_than_the_pad_length_keeps_what_the_last_state_reads():
    signal = np.arange(10, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(signal, 6, "start"), signal[4:])  # the beginning goes
    np.testing.assert_array_equal(fit_length(signal, 6, "end"), signal[:6])
    assert fit_length(signal, 12, "start") is signal


def test_vtlp_warp_scales_below_the_knee_and_keeps_the_nyquist():
    nyquist = SAMPLE_RATE / 2
    for factor in (0.9, 1.1):
        np.testing.assert_allclose(
            vtlp_warp(np.array([1000.0, 3000.0]), factor, nyquist), [1000 * factor, 3000 * factor]
        )
        assert vtlp_warp(np.array([nyquist]), factor, nyquist)[0] == pytest.approx(nyquist)
    frequencies = np.linspace(0, nyquist, 100)
    assert np.all(np.diff(vtlp_warp(frequencies, 1.1, nyquist)) > 0)  # monotone: nothing folds over


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_vtlp_moves_a_tones_spectral_peak_by_the_factor(factor):
    """In the spectrum to a bin (31.25 Hz), in the mel bands to the band's resolution."""
    import librosa

    config = FeatureConfig()
    magnitude = magnitude_spectrum(tone(1000.0), config)
    warped = warp_spectrum(magnitude, factor, config)
    bin_hz = SAMPLE_RATE / config.n_fft
    assert np.argmax(warped.mean(axis=1)) * bin_hz == pytest.approx(1000 * factor, abs=bin_hz)
    centres = librosa.mel_frequencies(config.n_mels + 2, fmin=config.fmin, fmax=config.fmax)[1:-1]
    bank = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=config.n_fft, n_mels=config.n_mels)
    band = np.argmax(bank @ (warped**2).mean(axis=1))
    assert abs(centres[band] - 1000 * factor) <= (centres[band + 1] - centres[band - 1]) / 2
    np.testing.assert_allclose(warp_spectrum(magnitude, 1.0, config), magnitude, atol=1e-6)


def test_vtlp_warps_the_rich_spectral_columns_and_leaves_the_pitch():
    """The spectral shape comes from the warped spectrum; pitch (and the voicing flag and the
    zero-crossing rate) come from the waveform, which VTLP leaves as it is: the glottis, not the
    vocal tract."""
    config = FeatureConfig(frame_features="rich")
    names = column_names(config)
    signal = tone(1000.0) + 0.3 * tone(150.0)
    plain = extract_frames(signal, config, len(signal))
    warped = extract_frames(signal, config, len(signal), warp=1.1)
    middle = slice(20, 80)  # frames away from the edges
    centroid = names.index("centroid")
    ratio = warped[middle, centroid].mean() / plain[middle, centroid].mean()
    assert ratio == pytest.approx(1.1, abs=0.03)
    for unwarped in ("pitch_st", "voiced", "zcr"):
        np.testing.assert_allclose(warped[:, names.index(unwarped)], plain[:, names.index(unwarped)])
    assert not np.allclose(warped[:, 0], plain[:, 0])  # the MFCCs are warped


# --- the cache --------------------------------------------------------------------------------


def test_the_cache_key_changes_with_each_factor_kind_and_feature_set():
    keys = {
        augment_cache_key("features-a", kind, factor) for kind in VOICE_KINDS for factor in (0.9, 1.1, 1.2)
    }
    keys.add(augment_cache_key("features-b", "speed", 0.9))
    assert len(keys) == 2 * 3 + 1
    assert augment_cache_key("features-a", "speed", 0.9) == augment_cache_key("features-a", "speed", 0.9)
    with pytest.raises(ValueError, match="unknown augmentation"):
        augment_cache_key("features-a", "reverb", 0.9)


def test_copies_are_extracted_once_per_corpus_and_factor(tiny_corpus, tmp_path, monkeypatch):
    features = load_features(tiny_corpus, cache_dir=tmp_path, progress=False)
    train = TrainConfig(speed_factors=(0.9,), vtlp_factors=(1.1,))
    augmented = attach_augmented(features, train, tmp_path, progress=False).augmented
    assert len(list(tmp_path.glob("augment-*.npz"))) == 2  # one file per voice
    n = len(features.clips)
    assert augmented.features.shape == (2 * n, *features.features.shape[1:])
    np.testing.assert_array_equal(augmented.source, np.tile(np.arange(n), 2))
    assert list(np.unique(augmented.voices)) == ["speed0.9", "vtlp1.1"]
    slowed, vtlp = augmented.lengths[:n], augmented.lengths[n:]
    assert np.all(slowed <= features.pad_to) and np.all(
        slowed >= np.minimum(features.lengths * 1.1, features.pad_to) - 2
    )
    np.testing.assert_array_equal(vtlp, features.lengths)  # VTLP keeps the clip's length
    assert features.augmented is None  # the FeatureSet passed in is left as it was

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted a voice the cache holds")

    monkeypatch.setattr("cremad.augment._copy_of", no_extraction)
    again = attach_augmented(features, train, tmp_path, progress=False).augmented
    np.testing.assert_array_equal(again.features, augmented.features)
    with pytest.raises(AssertionError, match="cache holds"):  # a new factor is a new cache
        attach_augmented(features, TrainConfig(speed_factors=(1.1,)), tmp_path, progress=False)


def test_augmentation_settings_are_checked():
    for bad in ({"speed_factors": (1.0,)}, {"vtlp_factors": (0.0,)}, {"speed_factors": (0.9, 0.9)}):
        with pytest.raises(ValueError, match="factors"):
            TrainConfig(**bad)
    with pytest.raises(ValueError, match="time_mask_frames"):
        TrainConfig(time_masks=2)
    with pytest.raises(ValueError, match="padding_value"):
        TrainConfig(frequency_masks=1, frequency_mask_columns=2, padding_value="floor")
    config = replace(ExperimentConfig(), {"train": {"speed_factors": [0.9, 1.1]}})
    assert config.train.speed_factors == (0.9, 1.1) and config.train.voices == (
        ("speed", 0.9),
        ("speed", 1.1),
    )
    with pytest.raises(ValueError, match="copies"):
        train_model(
            config, 1, np.ones((4, 5, 13), np.float32), np.zeros(4, int), frame_mask=np.ones((4, 5), bool)
        )


# --- masking ----------------------------------------------------------------------------------


def test_masking_leaves_padding_untouched_and_zeroes_only_speech_values():
    rng = np.random.default_rng(0)
    n_frames, n_columns = 60, 13
    x = rng.normal(size=(16, n_frames, n_columns)).astype(np.float32) + 5.0  # no speech value is 0
    own = np.arange(n_frames)[None, :] >= rng.integers(0, 50, size=(16, 1))  # start padding
    x[~own] = 0.0
    layer = SpeechFrameMasking(
        time_masks=2, time_mask_frames=20, frequency_masks=2, frequency_mask_columns=5, seed=0
    )
    masked = np.asarray(layer(x, training=True))
    np.testing.assert_array_equal(masked[~own], 0.0)  # padding: untouched
    changed = masked != x
    assert changed.any() and np.all(masked[changed] == 0.0) and np.all(own[..., None] | ~changed)
    for clip in range(len(x)):
        frames_gone = np.all(masked[clip][own[clip]] == 0, axis=1).sum()
        columns_gone = np.all(masked[clip][own[clip]] == 0, axis=0).sum()
        assert frames_gone <= 2 * 20 or columns_gone == n_columns
        assert columns_gone <= 2 * 5 or frames_gone == own[clip].sum()
    np.testing.assert_array_equal(np.asarray(layer(x, training=False)), x)  # inference: the input itself


# --- no copy of a held-out actor trains --------------------------------------------------------


def tiny_features(n_actors: int = 5, clips_per_actor: int = 12) -> FeatureSet:
    """Random clips (15 of 20 frames speech, start padding) whose coefficient 0 holds the actor
    number, and one copy per clip (a speed voice, 12 frames) whose coefficient 0 holds the actor
    number + 0.5 and coefficient 2 a value that would wreck the scaler if copies entered it."""
    from cremad.corpus import Clip

    rng = np.random.default_rng(0)
    clips = [
        Clip(f"/nowhere/{actor}_{take}.wav", f"{actor}_S{take:02d}_XX", actor, f"S{take:02d}", emotion, "XX")
        for actor in (f"{1001 + index}" for index in range(n_actors))
        for take, emotion in enumerate(["ANG", "SAD"] * (clips_per_actor // 2))
    ]
    x = rng.normal(size=(len(clips), N_FRAMES, 13)).astype(np.float32)
    x[:, :, 0] = np.array([float(clip.speaker) for clip in clips])[:, None]
    lengths = np.full(len(clips), 14 * 160)  # 15 frames of speech
    features = FeatureSet(x, clips, FeatureConfig(), N_FRAMES * 160, "tiny", lengths=lengths)
    copies = x.copy()
    copies[:, :, 0] += 0.5
    copies[:, :, 2] = 1e6
    n = len(clips)
    features.augmented = AugmentedSet(copies, np.arange(n), np.full(n, 11 * 160), np.full(n, "speed0.9"))
    return features


def actor_numbers(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> set[float]:
    """Coefficient 0 of each clip's last frame (a speech frame) unstandardized: an actor number,
    + 0.5 for a copy."""
    return {round(float(value) * 2) / 2 for value in x[:, -1, 0] * std[0] + mean[0]}


def test_selection_trains_no_copy_of_the_outer_or_selection_actor(monkeypatch):
    """The arrays passed to fit: the inner training actors and their copies; the selection actor
    watched without its copies; the outer actor nowhere."""
    features = tiny_features()
    seen = {}

    def recording_fit_model(config, model_id, seed, x, y, validation, callbacks, verbose=0, epochs=None):
        seen.update(x=x, validation=validation[0])
        return (
            None,
            {"loss": [1.0] * config.train.max_epochs, "val_ua": [0.5] * config.train.max_epochs},
            None,
        )

    monkeypatch.setattr("cremad.training.fit_model", recording_fit_model)
    config = replace(ExperimentConfig(name="cand"), {"train": {"speed_factors": [0.9]}})
    captured = {}
    original = train_model

    def recording_train_model(*args, **kwargs):
        result = original(*args, **kwargs)
        captured.update(mean=result.mean, std=result.std)
        return result

    monkeypatch.setattr("cremad.training.train_model", recording_train_model)
    record = validation_curve(config, 1, features, outer_actor="1002", seed=0, epochs=2)
    train_rows, _, selection_actor = selection_split(features.actors, "1002", 0)
    inner = sorted(set(features.actors[train_rows]))
    mean, std = captured["mean"], captured["std"]
    assert actor_numbers(seen["x"], mean, std) == {float(a) for a in inner} | {float(a) + 0.5 for a in inner}
    assert actor_numbers(seen["validation"], mean, std) == {float(selection_actor)}
    assert record["selection"] == selection_actor and len(seen["x"]) == 2 * len(train_rows)
    # The statistics describe the original fit clips only (the copies' planted column is absent).
    expected = fit_scaler(features.features[train_rows], frame_mask=features.speech_mask()[train_rows])
    np.testing.assert_allclose(mean, expected[0], rtol=1e-5)
    assert std[2] < 2


@pytest.mark.slow
@pytest.mark.parametrize("refit", [False, True])
def test_a_fold_trains_copies_of_its_fit_actors_only(tmp_path, monkeypatch, refit):
    """run_fold with early stopping: fit arrays hold the fit actors and their copies, validation
    arrays the validation actors without copies (with refit: every training actor and its
    copies), and predict the test actor's own clips only."""
    from test_loso import record_fit_and_predict

    features = tiny_features()
    seen = record_fit_and_predict(monkeypatch)
    config = replace(
        ExperimentConfig(),
        {
            "model": TINY_MODEL,
            "train": {
                "max_epochs": 1,
                "batch_size": 16,
                "early_stopping": True,
                "validation_fraction": 0.25,
                "refit": refit,
                "speed_factors": [0.9],
            },
        },
    )
    run_fold(config, features, "1003", tmp_path, model_id=1, save_model=False)
    fold = json.loads((tmp_path / runs.FOLD_CONFIG).read_text())
    fit_actors = {float(actor) for actor in fold["fit_actors"]}
    mask = features.speech_mask()
    fit_rows = np.isin(features.actors, fold["fit_actors"])
    mean, std = fit_scaler(features.features[fit_rows], frame_mask=mask[fit_rows])
    assert actor_numbers(seen["fit"][0], mean, std) == fit_actors | {actor + 0.5 for actor in fit_actors}
    assert actor_numbers(seen["validation"][0], mean, std) == {float(a) for a in fold["validation_actors"]}
    with np.load(tmp_path / runs.SCALER) as scaler:
        assert scaler["std"][2] < 2  # the copies never entered the statistics
        final = scaler["mean"], scaler["std"]
    if refit:
        train_actors = {float(actor) for actor in fold["train_actors"]}
        assert actor_numbers(seen["fit"][1], *final) == train_actors | {actor + 0.5 for actor in train_actors}
    assert all(actor_numbers(x, *final) == {1003.0} for x in seen["predict"])


def test_only_the_rows_passed_get_copies():
    features = tiny_features()
    config = replace(ExperimentConfig(), {"train": {"speed_factors": [0.9]}})
    rows = np.flatnonzero(features.actors != "1003")
    copies = augmented_inputs(config, features, rows)
    np.testing.assert_array_equal(rows[copies.source], np.flatnonzero(features.actors != "1003"))
    assert "1003" not in {features.actors[row] for row in rows[copies.source]}
    assert (
        copies.frame_mask.shape == (len(rows), N_FRAMES) and copies.frame_mask[0].sum() == 12
    )  # 1 + 1760 // 160
    assert augmented_inputs(ExperimentConfig(), features, rows) is None
    # With per-speaker normalization each (actor, voice) is a speaker of its own.
    normalized = augmented_inputs(replace(config, {"train": {"speaker_normalization": True}}), features, rows)
    for actor in ("1001", "1005"):
        own = normalized.x[features.actors[rows[normalized.source]] == actor]  # (clips, frames, 13)
        mask = normalized.frame_mask[features.actors[rows[normalized.source]] == actor]
        np.testing.assert_allclose(own[mask].mean(axis=0), 0.0, atol=1e-4)
    with pytest.raises(ValueError, match="attach_augmented"):
        augmented_inputs(replace(config, {"train": {"speed_factors": [1.1]}}), features, rows)


# --- each option trains a fold, end to end ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_a_two_epoch_fold_trains_with_each_option(option, tiny_corpus, tmp_path):
    from cremad.cli import main

    train = "\n".join(f"{key} = {json.dumps(value)}" for key, value in OPTIONS[option].items())
    recipe = tmp_path / f"tiny-{option}.toml"
    recipe.write_text(f"[model]\npre_units = 4\npost_units = 4\nattention_units = 4\n\n[train]\n{train}\n")
    argv = ["loso", "--model", "1", "--data", str(tiny_corpus), "--experiment", str(recipe), "--epochs", "2"]
    argv += ["--runs", str(tmp_path / "runs"), "--cache-dir", str(tmp_path / "cache"), "--folds", "1001"]
    assert main([*argv, "--no-save-models"]) == 0
    model_dir = runs.run_dir(tmp_path / "runs", "cremad", recipe.stem, "model1", 0)
    fold = json.loads((runs.fold_dir(model_dir, "1001") / runs.FOLD_CONFIG).read_text())
    assert fold["epochs"] == 2 and "1001" not in fold["train_actors"]
    n_voices = len(OPTIONS[option].get("speed_factors", OPTIONS[option].get("vtlp_factors", [])))
    assert len(list((tmp_path / "cache").glob("augment-*.npz"))) == n_voices


AUGMENTATION_KEYS = {"speed_factors", "vtlp_factors", *OPTIONS["masks"]}


@pytest.mark.parametrize("name", ["beyond-speed", "beyond-vtlp", "beyond-mask"])
def test_each_candidate_is_beyond_plus_one_augmentation(name):
    import dataclasses

    from cremad.config import load_experiment
    from cremad.selection import candidate

    beyond, config = load_experiment("beyond", model_id=2), candidate(name, 2)
    assert config.features == beyond.features and config.model == beyond.model
    changed = {
        field.name
        for field in dataclasses.fields(config.train)
        if getattr(config.train, field.name) != getattr(beyond.train, field.name)
    }
    assert changed and changed <= AUGMENTATION_KEYS
