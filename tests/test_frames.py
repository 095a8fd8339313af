"""Frame feature sets beyond the paper's MFCCs (cremad/frames.py): widths, alignment with the
MFCC frames on known signals, padding, the cache key, and a short run of every model on them."""

import numpy as np
import pytest

from cremad.config import FRAME_FEATURE_SETS, FeatureConfig
from cremad.features import cache_key, extract_frames, extract_mfcc, n_frames
from cremad.frames import column_names
from cremad.model_names import MODEL_IDS

RATE = 16_000
PAD_TO = 80_080  # CREMA-D's longest clip: 501 frames
WIDTHS = {"mfcc": 13, "mfcc-deltas": 39, "prosody": 42, "rich": 47}


def tone_in_silence(frequency=220.0, before=0.3, seconds=1.5, after=0.2, noise=0.01):
    """A pure tone between stretches of digital silence, with a little noise on the tone only."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    sound = 0.5 * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(len(t))
    silence = [np.zeros(int(part * RATE)) for part in (before, after)]
    return np.concatenate([silence[0], sound, silence[1]]).astype(np.float32)


def own_frames(table, signal, config):
    n_own = n_frames(len(signal), config)
    return table[-n_own:] if config.pad_side == "start" else table[:n_own]


@pytest.mark.parametrize("frame_features", FRAME_FEATURE_SETS)
def test_each_set_has_its_width_and_the_mfcc_frames(frame_features):
    config = FeatureConfig(frame_features=frame_features)
    signal = tone_in_silence()
    table = extract_frames(signal, config, PAD_TO)
    assert table.shape == (501, WIDTHS[frame_features]) and table.dtype == np.float32
    assert len(column_names(config)) == WIDTHS[frame_features]
    # The first 13 columns are the paper's MFCCs, to the bit: one frame grid for every column.
    np.testing.assert_array_equal(table[:, :13], extract_mfcc(signal, config, PAD_TO))


@pytest.mark.parametrize("pad_side", ["start", "end"])
def test_a_tones_pitch_and_voicing_sit_on_its_frames(pad_side):
    config = FeatureConfig(frame_features="prosody", pad_side=pad_side)
    signal = tone_in_silence(frequency=220.0)
    names = column_names(config)
    table = own_frames(extract_frames(signal, config, PAD_TO), signal, config)
    voiced = table[:, names.index("voiced")]
    pitch = table[:, names.index("pitch_st")]
    # The tone fills 0.3 s to 1.8 s of the clip: frames 30 to 180 at a 10 ms hop.
    frames = np.flatnonzero(voiced)
    assert abs(frames.min() - 30) <= 2 and abs(frames.max() - 180) <= 2
    assert len(frames) >= 145
    # 220 Hz is 36 semitones above 27.5 Hz (three octaves); the silence is unvoiced.
    np.testing.assert_allclose(pitch[voiced == 1], 36.0, atol=0.15)
    assert not voiced[:25].any() and not voiced[-15:].any()
    # Unvoiced frames carry the pitch of their voiced neighbours (held at the clip's ends).
    np.testing.assert_allclose(pitch[:25], pitch[frames.min()], atol=1e-4)
    energy = table[:, names.index("energy_db")]
    assert energy[100] > energy[5] + 60  # tone against digital silence


def test_deltas_are_the_mfcc_slopes_of_the_clip_alone():
    import librosa

    config = FeatureConfig(frame_features="mfcc-deltas")
    signal = tone_in_silence(before=0.0)  # the tone starts with the clip: a jump from the padding
    table = extract_frames(signal, config, PAD_TO)
    n_own = n_frames(len(signal), config)
    mfcc, own = table[:, :13], slice(501 - n_own, 501)
    # Pure padding has no slope, and the jump from padding into the clip never enters a delta:
    # the deltas are librosa's 9-frame regression over the clip's own frames alone.
    assert not table[: 501 - n_own, 13:].any()
    np.testing.assert_allclose(table[own, 13:26], librosa.feature.delta(mfcc[own].T, width=9).T, atol=1e-5)
    np.testing.assert_allclose(
        table[own, 26:], librosa.feature.delta(mfcc[own].T, width=9, order=2).T, atol=1e-5
    )
    over_padding = librosa.feature.delta(mfcc.T, width=9).T  # what the padded matrix would give
    assert np.abs(over_padding[own.start] - table[own.start, 13:26]).max() > 1.0


@pytest.mark.parametrize("pad_side", ["start", "end"])
def test_padding_frames_hold_one_value_per_column_in_every_clip(pad_side):
    config = FeatureConfig(frame_features="rich", pad_side=pad_side)
    rows = []
    for frequency, seconds in ((150.0, 1.0), (300.0, 2.0)):
        signal = tone_in_silence(frequency=frequency, seconds=seconds)
        table = extract_frames(signal, config, PAD_TO)
        n_own = n_frames(len(signal), config)
        padding = table[: 501 - n_own - 3] if pad_side == "start" else table[n_own + 3 :]
        rows.append(np.unique(padding[:, 13:], axis=0))
    assert len(rows[0]) == len(rows[1]) == 1
    np.testing.assert_array_equal(rows[0], rows[1])


def test_the_set_is_part_of_the_cache_key(tmp_path):
    from cremad.corpus import Clip

    path = tmp_path / "1001_DFA_ANG_XX.wav"
    path.write_bytes(b"RIFF")
    clips = [Clip(str(path), "1001_DFA_ANG_XX", "1001", "DFA", "ANG", "XX")]
    keys = {name: cache_key(clips, FeatureConfig(frame_features=name), "cremad", False, False)
            for name in FRAME_FEATURE_SETS}  # fmt: skip
    assert len(set(keys.values())) == len(FRAME_FEATURE_SETS)


def test_unknown_set_is_a_config_error():
    with pytest.raises(ValueError, match="frame_features"):
        FeatureConfig(frame_features="pitch")


@pytest.mark.slow
@pytest.mark.parametrize("model_id", MODEL_IDS)
def test_every_model_trains_two_epochs_of_beyond(tmp_path, model_id):
    """experiments/beyond.toml (the richest set, per-speaker normalization) end to end, 2 epochs."""
    from cremad.cli import main
    from cremad.runs import load_predictions, read_run
    from cremad.synth import write_corpus

    write_corpus(tmp_path / "corpus", actors=3, seed=0)
    common = ["--data", str(tmp_path / "corpus"), "--cache-dir", str(tmp_path / "cache")]
    runs = ["--runs", str(tmp_path / "runs"), "--experiment", "beyond", "--epochs", "2"]
    # No --threads: TensorFlow already runs in this process, its threads set.
    args = ["loso", "--model", str(model_id), *common, *runs, "--folds", "1001"]
    assert main(args) == 0
    run_dir = tmp_path / "runs" / "cremad" / "beyond" / f"model{model_id}" / "seed0"
    assert read_run(run_dir)["config"]["features"]["frame_features"] == "rich"
    predictions = load_predictions(run_dir)
    assert predictions.folds == ["1001"] and len(predictions.true) == 82
    assert np.allclose(predictions.probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_the_feature_benchmark_times_every_frame_set_and_the_pitch_track():
    """bench/bench_features.py's per-set figures (make bench; the 200x target lives there)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "bench_features.py"
    spec = importlib.util.spec_from_file_location("bench_features", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.time_frame_sets(repeats=2)
    assert list(results) == [*FRAME_FEATURE_SETS, "pitch_track"]
    for row in results.values():
        assert row["ms_per_5s_clip"] > 0
        assert row["x_realtime_one_core"] == pytest.approx(5005 / row["ms_per_5s_clip"], rel=0.01)
