import os
import subprocess
import sys

import numpy as np
import soundfile

from cremad.cli import main


def cremad(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cremad", *args], capture_output=True, text=True, cwd=cwd)


def test_missing_folder_is_a_one_line_error(tmp_path):
    result = cremad("features", "--data", str(tmp_path / "nowhere"))
    assert result.returncode == 2
    assert "nowhere: no such folder" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_folder_without_wavs(tmp_path):
    result = cremad("features", "--data", str(tmp_path))
    assert result.returncode == 2
    assert "no .wav files" in result.stderr and "Traceback" not in result.stderr


def test_bad_audio_exit_status_and_skip(tmp_path):
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    soundfile.write(
        folder / "1001_DFA_ANG_XX.wav", np.sin(np.arange(8000) / 5).astype(np.float32) * 0.3, 16_000
    )
    (folder / "1002_DFA_ANG_XX.wav").write_bytes(b"")
    cache = tmp_path / "cache"
    result = cremad("features", "--data", str(tmp_path), "--cache-dir", str(cache), "--jobs", "1")
    assert result.returncode == 2 and "1002_DFA_ANG_XX.wav: empty file" in result.stderr
    result = cremad(
        "features", "--data", str(tmp_path), "--cache-dir", str(cache), "--jobs", "1", "--skip-bad"
    )
    assert result.returncode == 0, result.stderr
    assert "1 clips x 51 frames x 13 MFCCs" in result.stdout
    assert "excluded 1002_DFA_ANG_XX.wav: empty file" in result.stderr


def test_strict_rejects_bad_names(tmp_path):
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    soundfile.write(folder / "1001_DFA_ANG_XX.wav", np.zeros(1600, np.float32) + 0.1, 16_000)
    soundfile.write(folder / "take2.wav", np.zeros(1600, np.float32) + 0.1, 16_000)
    result = cremad("features", "--data", str(tmp_path), "--cache-dir", str(tmp_path / "c"), "--strict")
    assert result.returncode == 2 and "take2.wav" in result.stderr


def test_synth_then_features(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "demo"), "--actors", "1", "--seed", "1"]) == 0
    assert len(list((tmp_path / "demo" / "AudioWAV").glob("*.wav"))) == 82
    assert (
        main(
            ["features", "--data", str(tmp_path / "demo"), "--cache-dir", str(tmp_path / "c"), "--jobs", "1"]
        )
        == 0
    )
    assert "82 clips x" in capsys.readouterr().out


def test_no_command_prints_help():
    result = cremad()
    assert result.returncode == 2 and "features" in result.stdout


NOISE = ("absl", "cuda", "oneDNN", "cpu_feature_guard", "TensorFlow binary", "I0000", "W0000", "E0000")


def test_tensorflow_start_up_lines_are_hidden(tmp_path):
    # predict imports Keras (and TensorFlow) before it finds the model missing.
    wav = tmp_path / "1001_DFA_ANG_XX.wav"
    soundfile.write(wav, np.zeros(1600, np.float32), 16_000)
    result = cremad("predict", str(wav), "--model", str(tmp_path / "missing.keras"))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"cremad predict: error: --model {tmp_path / 'missing.keras'}: no such file"
    ]
    assert not any(word in result.stderr for word in NOISE)


def test_verbose_leaves_the_libraries_logs_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    assert main(["features", "--data", str(tmp_path / "nowhere"), "-v"]) == 2
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    assert main(["features", "--data", str(tmp_path / "nowhere")]) == 2
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_loso_skips_bad_audio_from_the_same_cache_as_features(tmp_path):
    """A corpus with one broken file: loso stops before training and names it; with --skip-bad it
    reads the cache `features --skip-bad` wrote (no second extraction) and trains without it."""
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for actor in ("1001", "1002", "1003"):
        for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
            soundfile.write(
                folder / f"{actor}_DFA_{emotion}_XX.wav",
                rng.uniform(-0.3, 0.3, 4000).astype(np.float32),
                16_000,
            )
    (folder / "1002_IEO_ANG_HI.wav").write_bytes(b"RIFF")
    common = ["--data", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    loso = [
        "loso",
        "--model",
        "3",
        *common,
        "--runs",
        str(tmp_path / "runs"),
        "--folds",
        "1001",
        "--epochs",
        "1",
        "--no-save-models",
        "--threads",
        "1",
    ]
    result = cremad(*loso)
    assert result.returncode == 2 and "1002_IEO_ANG_HI.wav" in result.stderr and "--skip-bad" in result.stderr
    assert not (tmp_path / "runs").exists()
    assert cremad("features", *common, "--jobs", "1", "--skip-bad").returncode == 0
    result = cremad(*loso, "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert "cache hit" in result.stderr and "excluded 1002_IEO_ANG_HI.wav" in result.stderr
    assert "18 clips" in result.stderr
