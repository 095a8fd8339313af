import logging
import os

import numpy as np
import pytest
import soundfile

from cremad import features as features_module
from cremad.audio import BadAudioError, load_audio, trim_digital_silence
from cremad.config import FeatureConfig
from cremad.features import extract_mfcc, load_features, n_frames, read_clip

CONFIG = FeatureConfig()


def tone(seconds: float, rate: int = 16_000, frequency: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.3 * np.sin(2 * np.pi * frequency * t).astype(np.float32)
    return signal if channels == 1 else np.stack([signal] * channels, axis=1)


def write_corpus(folder, names, seconds=0.5, rate=16_000):
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        soundfile.write(
            folder / name, tone(seconds + 0.1 * index, rate, 200 + 50 * index), rate, subtype="PCM_16"
        )


def test_frame_count_of_cremads_longest_clip():
    # CREMA-D's longest clip lasts 5.005 s: 80080 samples at 16 kHz. Centred 10 ms frames.
    assert n_frames(80_080, CONFIG) == 501
    assert extract_mfcc(tone(5.005), CONFIG, 80_080).shape == (501, 13)


def test_mfccs_from_the_shared_stft_are_librosas_own_pipeline_bit_for_bit():
    import librosa

    rng = np.random.default_rng(0)
    signal = (tone(1.3) + 0.05 * rng.standard_normal(20_800)).astype(np.float32)
    for config in (CONFIG, FeatureConfig(pad_side="end"), FeatureConfig(frame_features="rich")):
        padded = features_module.pad_signal(signal, 32_000, config.pad_side)
        mel = librosa.feature.melspectrogram(
            y=padded, sr=16_000, n_fft=512, hop_length=160, win_length=320, window="hann",
            center=True, pad_mode="constant", power=2.0, n_mels=40, fmin=0.0, fmax=8000.0,
        )  # fmt: skip
        log_mel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
        expected = librosa.feature.mfcc(S=log_mel, n_mfcc=13).T.astype(np.float32)
        np.testing.assert_array_equal(extract_mfcc(signal, config, 32_000), expected)
        frames = features_module.extract_frames(signal, config, 32_000)
        np.testing.assert_array_equal(frames[:, :13], expected)


def test_window_and_hop_are_the_papers():
    assert CONFIG.win_length / CONFIG.sample_rate == 0.020
    assert CONFIG.hop_length / CONFIG.sample_rate == 0.010
    assert CONFIG.n_mfcc == 13


def test_padding_appends_silence_frames_and_keeps_the_clip():
    signal = tone(1.0)
    end = FeatureConfig(pad_side="end")
    short = extract_mfcc(signal, end, len(signal))
    padded = extract_mfcc(signal, end, 2 * len(signal))
    assert padded.shape == (n_frames(32_000), 13)
    # Frames up to the clip's end see the same samples; frames well past it are pure padding.
    np.testing.assert_allclose(padded[: len(short)], short, atol=1e-3)
    silence = padded[-1]
    np.testing.assert_allclose(
        padded[len(short) + 3 :], np.tile(silence, (len(padded) - len(short) - 3, 1)), atol=1e-4
    )


def test_resampling_22050_and_48000(tmp_path):
    for rate in (22_050, 48_000):
        path = tmp_path / f"clip{rate}.wav"
        soundfile.write(path, tone(1.0, rate), rate)
        signal = load_audio(path)
        assert abs(len(signal) - 16_000) <= 1
        spectrum = np.abs(np.fft.rfft(signal))
        assert abs(np.argmax(spectrum) * 16_000 / len(signal) - 440) < 2  # the tone survives


def test_stereo_is_downmixed(tmp_path):
    stereo = np.stack([tone(0.5)[:, None] * 1.0, np.zeros((8000, 1), np.float32)], axis=1)[:, :, 0]
    soundfile.write(tmp_path / "s.wav", stereo, 16_000)
    signal = load_audio(tmp_path / "s.wav")
    assert signal.ndim == 1
    np.testing.assert_allclose(signal, tone(0.5) / 2, atol=1e-4)


def test_bad_audio_names_the_file(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    soundfile.write(tmp_path / "ok.wav", tone(1.0), 16_000, subtype="PCM_16")
    data = (tmp_path / "ok.wav").read_bytes()
    (tmp_path / "truncated.wav").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file at all")
    (tmp_path / "header.wav").write_bytes(data[:44])
    soundfile.write(tmp_path / "nosamples.wav", np.zeros(0, np.float32), 16_000)
    cases = [
        ("empty", "empty file"),
        ("truncated", "truncated"),
        ("garbage", "unreadable"),
        ("header", "truncated"),
        ("nosamples", "no audio"),
    ]
    for name, reason in cases:
        with pytest.raises(BadAudioError, match=f"{name}.wav.*{reason}"):
            load_audio(tmp_path / f"{name}.wav")


def test_bad_file_fails_or_is_skipped(tmp_path):
    folder = tmp_path / "AudioWAV"
    write_corpus(folder, ["1001_DFA_ANG_XX.wav", "1002_DFA_SAD_XX.wav"])
    data = (folder / "1001_DFA_ANG_XX.wav").read_bytes()
    (folder / "1003_DFA_HAP_XX.wav").write_bytes(data[:1000])
    cache = tmp_path / "cache"
    with pytest.raises(BadAudioError, match="1003_DFA_HAP_XX.wav.*--skip-bad"):
        load_features(tmp_path, cache_dir=cache, jobs=1, progress=False)
    assert not list(cache.glob("*.npz")) and not list(cache.glob(".*"))  # nothing half-written
    features = load_features(tmp_path, cache_dir=cache, skip_bad=True, jobs=1, progress=False)
    assert list(features.clip_ids) == ["1001_DFA_ANG_XX", "1002_DFA_SAD_XX"]
    assert "truncated" in features.excluded[0][1]


def test_silent_clip_is_excluded_unless_kept(tmp_path):
    folder = tmp_path / "AudioWAV"
    write_corpus(folder, ["1001_DFA_ANG_XX.wav", "1002_DFA_SAD_XX.wav"])
    # Like CREMA-D's 1076_MTI_SAD_XX.wav: a valid file that holds no sound.
    soundfile.write(
        folder / "1076_MTI_SAD_XX.wav", np.full(16_000, 1e-5, np.float32), 16_000, subtype="PCM_16"
    )
    features = load_features(tmp_path, cache_dir=tmp_path / "c", jobs=1, progress=False)
    assert "1076_MTI_SAD_XX" not in features.clip_ids
    assert "silent" in features.excluded[0][1]
    kept = load_features(tmp_path, cache_dir=tmp_path / "c", keep_silent=True, jobs=1, progress=False)
    assert "1076_MTI_SAD_XX" in kept.clip_ids


def test_every_clip_is_padded_to_the_longest(tmp_path):
    folder = tmp_path / "AudioWAV"
    write_corpus(
        folder, ["1001_DFA_ANG_XX.wav", "1001_DFA_SAD_XX.wav", "1002_IEO_HAP_HI.wav"]
    )  # 0.5, 0.6, 0.7 s
    features = load_features(tmp_path, cache_dir=tmp_path / "c", jobs=1, progress=False)
    assert features.pad_to == int(0.7 * 16_000)
    assert features.features.shape == (3, n_frames(features.pad_to), 13)
    assert features.features.dtype == np.float32
    assert list(features.actors) == ["1001", "1001", "1002"]
    assert list(features.labels) == [0, 5, 3]


def test_cache_hit_and_miss(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "AudioWAV"
    write_corpus(folder, ["1001_DFA_ANG_XX.wav", "1002_DFA_SAD_XX.wav"])
    cache = tmp_path / "cache"
    first = load_features(tmp_path, cache_dir=cache, jobs=1, progress=False)
    assert len(list(cache.glob("*.npz"))) == 1

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted again although the cache is current")

    with monkeypatch.context() as patch, caplog.at_level(logging.INFO, logger="cremad.features"):
        patch.setattr(features_module, "_extract", no_extraction)
        again = load_features(tmp_path, cache_dir=cache, jobs=1, progress=False)
    assert f"features: cache hit {cache / f'cremad-{first.cache_key}.npz'} (2 clips" in caplog.text
    assert again.cache_key == first.cache_key
    np.testing.assert_array_equal(again.features, first.features)
    # A changed parameter makes a new cache.
    other = load_features(tmp_path, config=FeatureConfig(n_mels=26), cache_dir=cache, jobs=1, progress=False)
    assert other.cache_key != first.cache_key
    # A changed file makes a new cache, never a stale one.
    soundfile.write(folder / "1002_DFA_SAD_XX.wav", tone(0.9), 16_000, subtype="PCM_16")
    os.utime(folder / "1002_DFA_SAD_XX.wav", ns=(1, 1))
    changed = load_features(tmp_path, cache_dir=cache, jobs=1, progress=False)
    assert changed.cache_key not in (first.cache_key, other.cache_key)
    assert changed.pad_to == int(0.9 * 16_000)
    assert len(list(cache.glob("*.npz"))) == 3
    assert not list(cache.glob(".*"))  # no temporary files left behind


def test_parallel_extraction_matches_serial(tiny_corpus, tmp_path):
    serial = load_features(tiny_corpus, cache_dir=tmp_path / "a", jobs=1, progress=False)
    parallel = load_features(tiny_corpus, cache_dir=tmp_path / "b", jobs=2, progress=False)
    # Workers run single-threaded BLAS, so sums may differ in the last float32 bits.
    np.testing.assert_allclose(serial.features, parallel.features, rtol=1e-4, atol=1e-3)
    assert serial.features.shape[0] == 3 * 82


def test_emodb_shape(emodb_dir, tmp_path):
    features = load_features(emodb_dir, corpus="emodb", cache_dir=tmp_path, progress=False)
    assert features.features.shape[0] == 454  # 535 clips less 81 boredom
    assert features.features.shape[2] == 13
    assert len(set(features.actors)) == 10


def test_start_padding_puts_the_zeros_before_the_clip():
    signal = tone(1.0)
    start = FeatureConfig(pad_side="start")
    short = extract_mfcc(signal, start, len(signal))
    padded = extract_mfcc(signal, start, 2 * len(signal))
    assert padded.shape == (n_frames(32_000), 13)
    # The clip's frames now end the sequence; the first frames are pure padding.
    np.testing.assert_allclose(padded[-len(short) + 1 :], short[1:], atol=1e-3)
    np.testing.assert_allclose(
        padded[: len(padded) - len(short) - 3],
        np.tile(padded[0], (len(padded) - len(short) - 3, 1)),
        atol=1e-4,
    )
    with pytest.raises(ValueError, match="pad_side"):
        FeatureConfig(pad_side="middle")


def test_log_floor_is_what_padding_maps_to():
    signal = tone(0.5)
    for floor in (-100.0, -80.0):
        padded = extract_mfcc(signal, FeatureConfig(log_floor_db=floor, pad_side="end"), 4 * len(signal))
        # A constant log-mel of `floor` dB in every band gives c0 = floor * sqrt(n_mels), c1.. = 0.
        np.testing.assert_allclose(padded[-1, 0], floor * np.sqrt(CONFIG.n_mels), rtol=1e-4)
        np.testing.assert_allclose(padded[-1, 1:], 0, atol=1e-3)


def test_lengths_and_speech_mask_follow_the_pad_side(tmp_path):
    folder = tmp_path / "AudioWAV"
    write_corpus(folder, ["1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav"])  # 0.5 s and 0.6 s
    for side in ("end", "start"):
        features = load_features(
            tmp_path, config=FeatureConfig(pad_side=side), cache_dir=tmp_path / "c", jobs=1, progress=False
        )
        assert list(features.lengths) == [8000, 9600]
        assert list(features.frame_counts) == [51, 61]
        mask = features.speech_mask()  # (2, 61)
        assert mask.shape == (2, 61) and mask.sum(axis=1).tolist() == [51, 61]
        assert mask[0, 0] == (side == "end") and mask[0, -1] == (side == "start")
        # Every masked-off frame is pure padding: the floor vector (c0 = -100 dB * sqrt(40), rest 0).
        padding = features.features[0][~mask[0]]  # (10, 13)
        floor = np.zeros(13, np.float32)
        floor[0] = -100 * np.sqrt(CONFIG.n_mels)
        np.testing.assert_allclose(padding, np.tile(floor, (len(padding), 1)), atol=1e-2)


def test_pad_side_and_floor_change_the_cache_key(tmp_path):
    folder = tmp_path / "AudioWAV"
    write_corpus(folder, ["1001_DFA_ANG_XX.wav", "1002_DFA_SAD_XX.wav"])
    keys = {
        load_features(tmp_path, config=config, cache_dir=tmp_path / "c", jobs=1, progress=False).cache_key
        for config in (
            FeatureConfig(pad_side="end"),
            FeatureConfig(pad_side="start"),
            FeatureConfig(log_floor_db=-80.0),
            FeatureConfig(trim_digital_silence=True),
        )
    }
    assert len(keys) == 4
    assert len(list((tmp_path / "c").glob("*.npz"))) == 4


def test_trim_digital_silence_cuts_only_runs_of_a_window_or_more():
    speech = tone(0.5) + 0.01  # no sample of it is silent
    signal = np.concatenate([np.zeros(100, np.float32), speech, np.zeros(4800, np.float32)])  # 6 ms, 0.3 s
    np.testing.assert_array_equal(trim_digital_silence(signal, min_run=320), signal[: 100 + len(speech)])
    both = np.concatenate([np.zeros(400, np.float32), speech, np.zeros(400, np.float32)])
    np.testing.assert_array_equal(trim_digital_silence(both, min_run=320), speech)
    silent = np.zeros(1000, np.float32)
    assert (
        len(trim_digital_silence(silent, min_run=320)) == 1000
    )  # nothing to keep: left for the silence check


def test_corpus_appended_zeros_become_our_padding(tmp_path):
    # A corpus that cut its clips to one length by appending zeros, as ../shared/emodb did, and at
    # another sample rate, so the zeros are resampled before they are trimmed.
    rate = 22_050
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    speech = tone(0.5, rate, 300)
    soundfile.write(
        folder / "1001_DFA_ANG_XX.wav",
        np.concatenate([speech, np.zeros(rate // 2, np.float32)]),
        rate,
        subtype="PCM_16",
    )
    soundfile.write(folder / "1002_DFA_SAD_XX.wav", tone(1.0, rate, 200), rate, subtype="PCM_16")
    config = FeatureConfig(trim_digital_silence=True)
    features = load_features(tmp_path, config=config, cache_dir=tmp_path / "c", jobs=1, progress=False)
    assert features.pad_to == 16_000  # the longest clip as stored
    assert abs(int(features.lengths[0]) - 8000) <= 32  # resampling rings for a few samples
    assert features.lengths[1] == 16_000  # no run of zeros in the other clip: nothing trimmed
    # The trimmed clip sits after the padding, as a 0.5 s clip without the zeros would.
    assert features.frame_counts[0] in (50, 51) and features.speech_mask()[0, -1]
    plain = load_features(tmp_path, config=FeatureConfig(), cache_dir=tmp_path / "c", jobs=1, progress=False)
    assert list(plain.lengths) == [16_000, 16_000]  # off: the zeros count as the clip's own audio
    signal, trimmed = read_clip(folder / "1001_DFA_ANG_XX.wav", config)
    assert len(signal) == features.lengths[0] and abs(trimmed - 8000) <= 32
