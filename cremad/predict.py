"""Use a trained model on new recordings: `cremad train` and `cremad predict`.

`cremad train --model 2 --data DIR --out models/model2.keras` trains on every actor, a few of
them held out for early stopping, with the LOSO fold code (`cremad.folds.run_fold`), and writes

    models/model2.keras          the Keras model
    models/model2.json           the sidecar: model id, the resolved ExperimentConfig (feature
                                 config included), pad_to / n_frames, the standardization mean and
                                 std of the fit actors, the actors used, epochs, library versions
    models/model2.history.csv    the training history (keras CSVLogger)

`cremad predict PATH... --model models/model2.keras` reads the sidecar beside the model and runs
every WAV through the training feature code (`cremad.features.load_audio` / `extract_mfcc`):
any sample rate and any number of channels (averaged to mono, resampled to 16 kHz).

Clip length policy: the model was trained on clips zero-padded to `pad_to` samples (the longest
training clip). A shorter clip is zero-padded the same way. A longer clip is cut into windows of
`pad_to` samples with 50 % overlap, the last window aligned with the end of the clip so that no
sample is left out, and the six probabilities are the mean of the windows' softmax outputs; a
notice says so. The attention curve of a long clip is the windows' curves placed at their sample
positions and averaged where they overlap.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from cremad import CremadError
from cremad.atomic import write_json
from cremad.config import EMOTIONS, ExperimentConfig, from_dict, load_experiment, replace
from cremad.corpus import CORPORA, CORPUS_HELP

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "cremad-model/1"
PLACEHOLDER_ACTOR = "none"  # the empty "test actor" of the training fold, see train_on_all_actors
MAX_PLOT_ROWS = 16  # one row per file; more files than this are left out of the plot (with a notice)


def sidecar_path(model_file: str | Path) -> Path:
    return Path(model_file).with_suffix(".json")


# ---------------------------------------------------------------------------- train
def train_on_all_actors(config: ExperimentConfig, features, model_id: int, out_file: str | Path,
                        verbose: int = 0) -> dict:
    """Train `model_id` on every actor of `features` (a FeatureSet); early stopping watches the
    validation actors that `cremad.folds.split_fold` draws from them. Writes the model, its
    sidecar JSON and history; returns the sidecar.

    `run_fold` always holds out a test actor. We give it a one-clip placeholder actor (a copy of
    the first clip, predicted and thrown away) so that every real actor is a training actor and
    the split, standardization, training loop and saving are the LOSO code itself."""
    from cremad.corpus import Clip
    from cremad.features import FeatureSet
    from cremad.folds import run_fold

    out_file = Path(out_file)
    if out_file.suffix != ".keras":
        raise CremadError(f"--out {out_file}: the model file must end in .keras")
    if len(set(features.actors)) < 2:
        raise CremadError("training needs at least 2 actors (one of them for early stopping)")
    first = features.clips[0]
    placeholder = Clip(path="", clip_id="placeholder", actor=PLACEHOLDER_ACTOR, sentence="", emotion=first.emotion, level="")
    with_placeholder = FeatureSet(
        np.concatenate([features.features, features.features[:1]]),  # (clips + 1, frames, 13)
        [*features.clips, placeholder], features.config, features.pad_to, features.cache_key,
    )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_file.parent, prefix=f".{out_file.stem}.train-") as work:
        work = Path(work)
        done = run_fold(config, with_placeholder, PLACEHOLDER_ACTOR, work, model_id, verbose=verbose)
        fold = json.loads((work / "config.json").read_text())
        with np.load(work / "scaler.npz") as scaler:
            mean, std = scaler["mean"].tolist(), scaler["std"].tolist()
        with open(work / "history.csv", newline="") as handle:
            history = list(csv.DictReader(handle))
        sidecar = {
            "format": SIDECAR_FORMAT,
            "model_id": model_id,
            "emotions": list(EMOTIONS),
            "config": config.to_dict(),  # features, model and train settings, resolved
            "sample_rate": features.config.sample_rate,
            "pad_to": int(features.pad_to),
            "n_frames": int(features.features.shape[1]),
            "scaler": {"mean": mean, "std": std},  # of the fit actors, per MFCC
            "feature_cache_key": features.cache_key,
            "n_clips": len(features.clips),
            "actors": sorted(set(features.actors.tolist())),
            "validation_actors": fold["validation_actors"],
            "epochs": done["epochs"],
            "best_epoch": done["best_epoch"],
            "best_val_accuracy": float(history[done["best_epoch"] - 1]["val_accuracy"]) if history else None,
            "versions": fold["versions"],
            "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        os.replace(work / "model.keras", out_file)
        shutil.copyfile(work / "history.csv", out_file.with_suffix(".history.csv"))
    write_json(sidecar_path(out_file), sidecar)
    return sidecar


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=int, choices=(1, 2, 3, 4), default=2, help="paper model (default: %(default)s)")
    parser.add_argument("--data", required=True, help="corpus root or its audio folder")
    parser.add_argument("--corpus", choices=CORPORA, default="cremad", help=CORPUS_HELP)
    parser.add_argument("--experiment", default="paper", help="experiments/<NAME>.toml (default: %(default)s)")
    parser.add_argument("--out", help="model file (default: models/model<k>.keras); the sidecar .json goes beside it")
    parser.add_argument("--epochs", type=int, help="override train.max_epochs")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--jobs", type=int, default=-1, help="feature extraction workers (-1: all cores)")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run_train(args: argparse.Namespace) -> int:
    from cremad.features import load_features

    config = load_experiment(args.experiment, model_id=args.model)
    if args.epochs is not None:
        config = replace(config, {"train": {"max_epochs": args.epochs}})
    out_file = Path(args.out or f"models/model{args.model}.keras")
    features = load_features(args.data, corpus=args.corpus, config=config.features, cache_dir=args.cache_dir,
                             jobs=args.jobs)
    log.info("model %d, experiment %s: %d clips of %d actors, %d frames", args.model, config.name,
             len(features.clips), len(set(features.actors)), features.n_frames)
    sidecar = train_on_all_actors(config, features, args.model, out_file, verbose=args.verbose)
    print(f"model {args.model} trained on {sidecar['n_clips']} clips of {len(sidecar['actors'])} actors "
          f"(early stopping on {', '.join(sidecar['validation_actors'])}): {sidecar['epochs']} epochs, "
          f"best {sidecar['best_epoch']} (validation accuracy {sidecar['best_val_accuracy']:.3f})")
    print(f"wrote {out_file} and {sidecar_path(out_file)}")
    return 0


# ---------------------------------------------------------------------------- predict
@dataclasses.dataclass
class TrainedModel:
    """A model file with its sidecar: what `predict_file` needs."""

    model: object  # keras.Model
    attention: object | None  # keras.Model input -> (batch, decoder_steps, n_frames), models 1 and 2
    model_id: int
    config: ExperimentConfig
    pad_to: int
    mean: np.ndarray  # (13,)
    std: np.ndarray  # (13,)


@dataclasses.dataclass
class Prediction:
    path: str
    probabilities: np.ndarray  # (6,) in EMOTIONS order
    windows: int
    seconds: float
    signal: np.ndarray  # mono, at the model's sample rate, for the plot
    attention: np.ndarray | None  # (n_frames of the clip,) or None

    @property
    def top(self) -> str:
        return EMOTIONS[int(np.argmax(self.probabilities))]


def load_trained_model(model_file: str | Path) -> TrainedModel:
    """Load a `.keras` file written by `cremad train` and the sidecar JSON beside it."""
    import keras

    from cremad.models import attention_model  # also registers the custom layers for loading

    model_file, sidecar_file = Path(model_file), sidecar_path(model_file)
    if not model_file.is_file():
        raise FileNotFoundError(f"--model {model_file}: no such file")
    if not sidecar_file.is_file():
        raise CremadError(f"{sidecar_file}: missing; `cremad train` writes it beside {model_file.name} "
                          "(it holds the feature settings and standardization the model needs)")
    sidecar = json.loads(sidecar_file.read_text())
    if sidecar.get("format") != SIDECAR_FORMAT or sidecar.get("emotions") != list(EMOTIONS):
        raise CremadError(f"{sidecar_file}: not a {SIDECAR_FORMAT} sidecar with classes {', '.join(EMOTIONS)}")
    model = keras.models.load_model(model_file)
    model_id = int(sidecar["model_id"])
    return TrainedModel(
        model=model,
        attention=attention_model(model) if model_id in (1, 2) else None,
        model_id=model_id,
        config=from_dict(sidecar["config"]),
        pad_to=int(sidecar["pad_to"]),
        mean=np.asarray(sidecar["scaler"]["mean"], dtype=np.float32),
        std=np.asarray(sidecar["scaler"]["std"], dtype=np.float32),
    )


def window_starts(n_samples: int, window: int) -> list[int]:
    """Start samples of the windows a clip is cut into: one window (zero-padded) when the clip
    fits, else `window`-long windows with 50 % overlap, the last one ending at the clip's end."""
    if n_samples <= window:
        return [0]
    hop = max(1, window // 2)
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def predict_file(path: str | Path, trained: TrainedModel) -> Prediction:
    """Six probabilities (and the attention curve for models 1 and 2) for one audio file.
    Raises BadAudioError naming the file when it cannot be read."""
    from cremad.features import extract_mfcc, load_audio

    features_config = trained.config.features
    signal = load_audio(path, sample_rate=features_config.sample_rate)  # mono float32
    starts = window_starts(len(signal), trained.pad_to)
    if len(starts) > 1:
        log.warning("%s: %.2f s is longer than the model's %.2f s; averaging %d windows with 50 %% overlap",
                    path, len(signal) / features_config.sample_rate, trained.pad_to / features_config.sample_rate,
                    len(starts))
    mfcc = np.stack([extract_mfcc(signal[start:], features_config, trained.pad_to) for start in starts])
    inputs = (mfcc - trained.mean) / trained.std  # (windows, n_frames, 13)
    probabilities = trained.model.predict(inputs, verbose=0).mean(axis=0)  # (6,)
    attention = None
    if trained.attention is not None:
        weights = trained.attention.predict(inputs, verbose=0).mean(axis=1)  # (windows, n_frames)
        attention = place_windows(weights, starts, len(signal), features_config.hop_length)
    return Prediction(str(path), probabilities, len(starts), len(signal) / features_config.sample_rate, signal, attention)


def place_windows(weights: np.ndarray, starts: list[int], n_samples: int, hop_length: int) -> np.ndarray:
    """Put each window's per-frame weights (windows, n_frames) at its frames of the whole clip
    (frame t of a window starting at sample s sits at sample s + t * hop) and average overlaps.
    Returns (1 + n_samples // hop,) weights; frames past the clip's end (padding) are dropped."""
    n_clip_frames = 1 + n_samples // hop_length
    total, count = np.zeros(n_clip_frames), np.zeros(n_clip_frames)
    for start, row in zip(starts, weights):
        frames = np.rint((start + np.arange(len(row)) * hop_length) / hop_length).astype(int)
        inside = frames < n_clip_frames
        np.add.at(total, frames[inside], row[inside])
        np.add.at(count, frames[inside], 1)
    return total / np.maximum(count, 1)


def expand_paths(paths: list[str]) -> list[Path]:
    """Files as given; folders become their .wav files (recursively, sorted)."""
    expanded = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())
            if not found:
                log.warning("%s: no .wav files in this folder", path)
            expanded.extend(found)
        else:
            expanded.append(path)  # a missing file is reported by load_audio, with the others done
    return expanded


def write_csv(predictions: list[Prediction], out_file: Path) -> None:
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with open(out_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "top", *(f"p_{emotion}" for emotion in EMOTIONS), "seconds", "windows"])
        for item in predictions:
            writer.writerow([item.path, item.top, *(f"{p:.6f}" for p in item.probabilities),
                             f"{item.seconds:.3f}", item.windows])


def plot_attention(predictions: list[Prediction], out_file: Path, sample_rate: int, hop_length: int) -> None:
    """One row per file: the waveform and, on a second axis, the attention weight per frame."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if len(predictions) > MAX_PLOT_ROWS:
        log.warning("plot: showing the first %d of %d files", MAX_PLOT_ROWS, len(predictions))
        predictions = predictions[:MAX_PLOT_ROWS]
    figure, axes = plt.subplots(len(predictions), 1, figsize=(10, 2.2 * len(predictions)), squeeze=False)
    for axis, item in zip(axes[:, 0], predictions):
        axis.plot(np.arange(len(item.signal)) / sample_rate, item.signal, color="0.6", linewidth=0.5)
        axis.set(ylabel="amplitude", xlim=(0, len(item.signal) / sample_rate))
        curve = axis.twinx()
        curve.plot(np.arange(len(item.attention)) * hop_length / sample_rate, item.attention, color="tab:red")
        curve.set_ylabel("attention", color="tab:red")
        curve.set_ylim(bottom=0)
        axis.set_title(f"{Path(item.path).name}: {item.top} ({item.probabilities.max():.2f})", fontsize=9)
    axes[-1, 0].set_xlabel("time (s)")
    figure.tight_layout()
    out_file.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_file, dpi=120)
    plt.close(figure)


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="WAV files or folders of them")
    parser.add_argument("--model", required=True, help="a .keras file written by `cremad train` (sidecar .json beside it)")
    parser.add_argument("--csv", help="write the probabilities to this CSV file")
    parser.add_argument("--plot", help="attention curves over the waveforms (models 1 and 2) to this image file")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run_predict(args: argparse.Namespace) -> int:
    from cremad.features import BadAudioError

    trained = load_trained_model(args.model)
    paths = expand_paths(args.paths)
    if not paths:
        raise CremadError("no .wav files to classify")
    predictions, failed = [], []
    print("\t".join(["path", "top", *EMOTIONS]))
    for path in paths:
        try:
            item = predict_file(path, trained)
        except (BadAudioError, FileNotFoundError) as error:
            print(f"cremad predict: error: {error}", file=sys.stderr)
            failed.append(path)
            continue
        predictions.append(item)
        print("\t".join([str(path), item.top, *(f"{p:.3f}" for p in item.probabilities)]))
    if args.csv:
        write_csv(predictions, Path(args.csv))
        log.info("wrote %s", args.csv)
    if args.plot and trained.attention is None:
        log.warning("model %d has no attention; no plot written", trained.model_id)
    elif args.plot and predictions:
        plot_attention(predictions, Path(args.plot), trained.config.features.sample_rate, trained.config.features.hop_length)
        log.info("wrote %s", args.plot)
    if failed:
        print(f"cremad predict: {len(failed)} of {len(paths)} file(s) could not be read: "
              + ", ".join(map(str, failed)), file=sys.stderr)
        return 1
    return 0
