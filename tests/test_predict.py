"""`cremad train` and `cremad predict`: a tiny model 2 trained for one epoch on 36 synthetic
clips, then run on a stereo 48 kHz file, a clip longer than the model, an unreadable file and a
folder."""

import csv
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from cremad import cli
from cremad.config import EMOTIONS, ExperimentConfig, replace
from cremad.predict import load_trained_model, place_windows, predict_file, window_starts

# The paper's features with a 3 s model length (every synthetic clip fits) and a model small
# enough to train in seconds.
TINY = replace(
    ExperimentConfig(name="tiny"),
    {
        "features": {"pad_to": 48_000},
        "model": {"pre_units": 4, "post_units": 8, "attention_units": 4},
        "train": {"max_epochs": 5, "batch_size": 64},
    },
)


@pytest.fixture(scope="module")
def trained(tiny_corpus, tmp_path_factory):
    """`cremad train --model 2 --epochs 1` on 3 actors x 2 sentences x 6 emotions."""
    root = tmp_path_factory.mktemp("predict")
    audio = root / "corpus" / "AudioWAV"
    audio.mkdir(parents=True)
    for path in (tiny_corpus / "AudioWAV").glob("*_XX.wav"):
        if path.name.split("_")[1] in ("DFA", "TIE"):
            shutil.copy(path, audio / path.name)
    arguments = [
        "train",
        "--model",
        "2",
        "--data",
        str(root / "corpus"),
        "--epochs",
        "1",
        "--out",
        str(root / "models" / "model2.keras"),
        "--cache-dir",
        str(root / "cache"),
        "--jobs",
        "1",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cremad.train.load_experiment", lambda name, model_id=None: TINY)
        assert cli.main(arguments) == 0
    return root


def test_window_starts():
    assert window_starts(80, 100) == [0]  # shorter: one zero-padded window
    assert window_starts(100, 100) == [0]
    assert window_starts(250, 100) == [0, 50, 100, 150]  # 50 % overlap, the last ends at 250
    assert window_starts(260, 100) == [0, 50, 100, 150, 160]  # one more, aligned with the end


def test_place_windows_averages_overlaps():
    # Two windows of 4 frames (hop 10 samples) starting at samples 0 and 20: frames 2 and 3 overlap.
    weights = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.3, 0.1, 0.1]])
    curve = place_windows(weights, [0, 20], n_samples=55, hop_length=10)  # 1 + 55 // 10 = 6 frames
    assert curve.tolist() == pytest.approx([0.1, 0.2, 0.4, 0.35, 0.1, 0.1])


def test_train_writes_model_sidecar_and_history(trained):
    models = trained / "models"
    assert {"model2.keras", "model2.json", "model2.history.csv"} <= {path.name for path in models.iterdir()}
    sidecar = json.loads((models / "model2.json").read_text())
    assert sidecar["model_id"] == 2 and sidecar["emotions"] == list(EMOTIONS)
    assert sidecar["pad_to"] == 48_000 and sidecar["n_frames"] == 1 + 48_000 // 160
    assert sidecar["config"]["features"] == TINY.to_dict()["features"]
    assert sidecar["config"]["train"]["max_epochs"] == 1  # --epochs
    assert len(sidecar["scaler"]["mean"]) == len(sidecar["scaler"]["std"]) == 13
    assert sidecar["actors"] == ["1001", "1002", "1003"] and sidecar["n_clips"] == 36
    assert sidecar["validation_actors"] == []  # the default recipe: every actor trains, no early stopping
    assert sidecar["scaler"]["actors"] == sidecar["actors"]
    assert not list(models.glob(".*"))  # no training leftovers


def test_predict_uses_the_training_features(trained):
    from cremad.features import load_features
    from cremad.scaling import prepare_inputs

    features = load_features(
        trained / "corpus", config=TINY.features, cache_dir=trained / "cache", jobs=1, progress=False
    )
    model = load_trained_model(trained / "models" / "model2.keras")
    # As in training: z-scored, the padding frames (zeros before the clip) set to 0.
    inputs = prepare_inputs(
        features.features[:2], model.mean, model.std, TINY.train.padding_value, features.speech_mask()[:2]
    )  # (2, 301, 13)
    assert TINY.train.padding_value == "zero" and (inputs[:, 0] == 0).all()
    expected = model.model.predict(inputs, verbose=0)
    for clip, probabilities in zip(features.clips[:2], expected):
        assert predict_file(clip.path, model).probabilities == pytest.approx(probabilities, abs=1e-5)


def test_predict_command(trained, tmp_path, capsys, caplog):
    audio = trained / "corpus" / "AudioWAV"
    clip, _ = soundfile.read(audio / "1001_DFA_ANG_XX.wav", dtype="float32")
    import librosa

    stereo = librosa.resample(clip, orig_sr=16_000, target_sr=48_000)
    soundfile.write(tmp_path / "stereo48k.wav", np.stack([stereo, stereo], axis=1), 48_000)
    long = np.concatenate(
        [soundfile.read(audio / f"1002_DFA_{e}_XX.wav", dtype="float32")[0] for e in ("SAD", "HAP", "FEA")]
    )
    soundfile.write(tmp_path / "long.wav", long, 16_000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    folder = tmp_path / "folder"
    folder.mkdir()
    for name in ("1001_DFA_ANG_XX.wav", "1003_TIE_NEU_XX.wav"):
        shutil.copy(audio / name, folder / name)

    paths = [tmp_path / "stereo48k.wav", tmp_path / "long.wav", tmp_path / "broken.wav", folder]
    with caplog.at_level(logging.INFO, logger="cremad.predict"):
        status = cli.main(
            [
                "predict",
                *map(str, paths),
                "--model",
                str(trained / "models" / "model2.keras"),
                "--csv",
                str(tmp_path / "out.csv"),
                "--plot",
                str(tmp_path / "out.png"),
            ]
        )
    assert status == 1  # one file failed, the others were done
    assert "broken.wav" in capsys.readouterr().err
    assert "long.wav: " in caplog.text and "averaging" in caplog.text

    with open(tmp_path / "out.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["path", "top", *(f"p_{e}" for e in EMOTIONS), "seconds", "windows"]
        rows = {row["path"].split("/")[-1]: row for row in reader}
    assert set(rows) == {"stereo48k.wav", "long.wav", "1001_DFA_ANG_XX.wav", "1003_TIE_NEU_XX.wav"}
    for row in rows.values():
        probabilities = np.array([float(row[f"p_{e}"]) for e in EMOTIONS])
        assert probabilities.sum() == pytest.approx(1, abs=1e-4)
        assert row["top"] == EMOTIONS[int(probabilities.argmax())]
    assert int(rows["long.wav"]["windows"]) == len(window_starts(len(long), 48_000)) > 1
    assert int(rows["stereo48k.wav"]["windows"]) == 1
    # The stereo 48 kHz copy is read back as the 16 kHz mono original.
    for e in EMOTIONS:
        assert float(rows["stereo48k.wav"][f"p_{e}"]) == pytest.approx(
            float(rows["1001_DFA_ANG_XX.wav"][f"p_{e}"]), abs=2e-3
        )
    assert (tmp_path / "out.png").stat().st_size > 0


def test_predict_needs_the_sidecar(trained, tmp_path, capsys):
    shutil.copy(trained / "models" / "model2.keras", tmp_path / "lonely.keras")
    wav = next((trained / "corpus" / "AudioWAV").glob("*.wav"))
    assert cli.main(["predict", str(wav), "--model", str(tmp_path / "lonely.keras")]) == 2
    assert "lonely.json: missing" in capsys.readouterr().err


@pytest.mark.slow
def test_predict_applies_the_per_clip_normalization_it_was_trained_with(trained, tmp_path):
    """A model trained with train.utterance_normalization: predict normalizes a new recording by
    its own frames first, as training did, before the saved scaler."""
    from cremad.features import load_features
    from cremad.scaling import prepare_inputs

    config = replace(TINY, {"train": {"utterance_normalization": "meanvar"}})
    out = tmp_path / "model3.keras"
    arguments = [
        "train",
        "--model",
        "3",
        "--data",
        str(trained / "corpus"),
        "--epochs",
        "1",
        "--out",
        str(out),
        "--cache-dir",
        str(trained / "cache"),
        "--jobs",
        "1",
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cremad.train.load_experiment", lambda name, model_id=None: config)
        assert cli.main(arguments) == 0
    features = load_features(
        trained / "corpus", config=TINY.features, cache_dir=trained / "cache", jobs=1, progress=False
    )
    model = load_trained_model(out)
    assert model.config.train.utterance_normalization == "meanvar"
    inputs = prepare_inputs(
        features.features[:2], model.mean, model.std, "zero", features.speech_mask()[:2], "meanvar"
    )
    expected = model.model.predict(inputs, verbose=0)
    for clip, probabilities in zip(features.clips[:2], expected):
        assert predict_file(clip.path, model).probabilities == pytest.approx(probabilities, abs=1e-5)


@pytest.mark.slow
def test_a_model_trained_with_a_custom_loss_predicts_in_a_fresh_process(trained, tmp_path):
    """train.label_smoothing compiles with a loss of cremad.training; `cremad predict` in a new
    interpreter loads the model uncompiled and never imports training."""
    config = replace(TINY, {"train": {"label_smoothing": 0.1}})
    out = tmp_path / "smoothed.keras"
    arguments = ["train", "--model", "1", "--data", str(trained / "corpus"), "--epochs", "1"]
    arguments += ["--out", str(out), "--cache-dir", str(trained / "cache"), "--jobs", "1"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("cremad.train.load_experiment", lambda name, model_id=None: config)
        assert cli.main(arguments) == 0
    wav = trained / "corpus" / "AudioWAV" / "1001_DFA_ANG_XX.wav"
    script = (
        "import sys\n"
        "from cremad.cli import main\n"
        "status = main(['predict', sys.argv[1], '--model', sys.argv[2], '--csv', sys.argv[3]])\n"
        "assert 'cremad.training' not in sys.modules, 'predict imported training'\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(wav), str(out), str(tmp_path / "out.csv")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "out.csv", newline="") as handle:
        (row,) = list(csv.DictReader(handle))
    assert sum(float(row[f"p_{e}"]) for e in EMOTIONS) == pytest.approx(1, abs=1e-4)
