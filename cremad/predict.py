"""`cremad predict`: use a model trained by `cremad train` (cremad/train.py) on new recordings.

`cremad predict PATH... --model models/model2.keras` reads the sidecar beside the model and runs
every WAV through the training feature code (`cremad.features.read_clip`, then
`cremad.features.extract_frames`): any sample rate and any number of channels (averaged to mono,
resampled to 16 kHz).

Clip length policy: the model was trained on clips zero-padded to `pad_to` samples (the longest
training clip). A shorter clip is zero-padded the same way. A longer clip is cut into windows of
`pad_to` samples with 50 % overlap, the last window aligned with the end of the clip so that no
sample is left out, and the six probabilities are the mean of the windows' softmax outputs; a
notice says so. The attention curve of a long clip is the windows' curves placed at their sample
positions and averaged where they overlap.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

import numpy as np

from cremad import CremadError
from cremad.config import EMOTIONS, ExperimentConfig, from_dict
from cremad.tables import write_csv
from cremad.train import SIDECAR_FORMAT, sidecar_path

log = logging.getLogger(__name__)

MAX_PLOT_ROWS = 16  # one row per file; more files than this are left out of the plot (with a notice)


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
    from cremad.model_names import ATTENTION_MODEL_IDS
    from cremad.models import attention_model, load_model

    model_file, sidecar_file = Path(model_file), sidecar_path(model_file)
    if not model_file.is_file():
        raise FileNotFoundError(f"--model {model_file}: no such file")
    if not sidecar_file.is_file():
        raise CremadError(
            f"{sidecar_file}: missing; `cremad train` writes it beside {model_file.name} "
            "(it holds the feature settings and standardization the model needs)"
        )
    sidecar = json.loads(sidecar_file.read_text())
    if sidecar.get("format") != SIDECAR_FORMAT or sidecar.get("emotions") != list(EMOTIONS):
        raise CremadError(
            f"{sidecar_file}: not a {SIDECAR_FORMAT} sidecar with classes {', '.join(EMOTIONS)}"
        )
    model = load_model(model_file)
    model_id = int(sidecar["model_id"])
    return TrainedModel(
        model=model,
        attention=attention_model(model) if model_id in ATTENTION_MODEL_IDS else None,
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
    from cremad.features import extract_frames, n_frames, read_clip, speech_mask
    from cremad.scaling import prepare_inputs

    features_config = trained.config.features
    signal, _ = read_clip(path, features_config)  # mono float32, as training read its clips
    starts = window_starts(len(signal), trained.pad_to)
    if len(starts) > 1:
        log.warning(
            "%s: %.2f s is longer than the model's %.2f s; averaging %d windows with 50 %% overlap",
            path,
            len(signal) / features_config.sample_rate,
            trained.pad_to / features_config.sample_rate,
            len(starts),
        )
    # The MFCCs and whatever else the run's feature set adds (features.frame_features).
    mfcc = np.stack([extract_frames(signal[start:], features_config, trained.pad_to) for start in starts])
    # Each window's own frames, as in training (only a clip shorter than the model is padded).
    n_own = [n_frames(min(len(signal) - start, trained.pad_to), features_config) for start in starts]
    frame_mask = speech_mask(np.minimum(n_own, mfcc.shape[1]), mfcc.shape[1], features_config.pad_side)
    inputs = prepare_inputs(
        mfcc,
        trained.mean,
        trained.std,
        trained.config.train.padding_value,
        frame_mask,
        trained.config.train.utterance_normalization,
    )  # (windows, n_frames, 13)
    probabilities = trained.model.predict(inputs, verbose=0).mean(axis=0)  # (6,)
    attention = None
    if trained.attention is not None:
        weights = trained.attention.predict(inputs, verbose=0).mean(axis=1)  # (windows, n_frames)
        # With start padding a short clip's samples sit after pad_to - n zeros: shift them back.
        placed = [
            start - max(0, trained.pad_to - (len(signal) - start))
            if features_config.pad_side == "start"
            else start
            for start in starts
        ]
        attention = place_windows(weights, placed, len(signal), features_config.hop_length)
    return Prediction(
        str(path), probabilities, len(starts), len(signal) / features_config.sample_rate, signal, attention
    )


def place_windows(weights: np.ndarray, starts: list[int], n_samples: int, hop_length: int) -> np.ndarray:
    """Put each window's per-frame weights (windows, n_frames) at its frames of the whole clip
    (frame t of a window starting at sample s sits at sample s + t * hop; s < 0 for a window
    that begins with padding) and average overlaps. Returns (1 + n_samples // hop,) weights;
    frames outside the clip (padding) are dropped."""
    n_clip_frames = 1 + n_samples // hop_length
    total, count = np.zeros(n_clip_frames), np.zeros(n_clip_frames)
    for start, row in zip(starts, weights):
        frames = np.rint((start + np.arange(len(row)) * hop_length) / hop_length).astype(int)
        inside = (frames >= 0) & (frames < n_clip_frames)
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


def write_predictions(predictions: list[Prediction], out_file: Path) -> None:
    """The probabilities of every file, one row each, as CSV."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    write_csv(
        out_file,
        ["path", "top", *(f"p_{emotion}" for emotion in EMOTIONS), "seconds", "windows"],
        [
            [
                item.path,
                item.top,
                *(f"{p:.6f}" for p in item.probabilities),
                f"{item.seconds:.3f}",
                item.windows,
            ]
            for item in predictions
        ],
    )


def plot_attention(predictions: list[Prediction], out_file: Path, sample_rate: int, hop_length: int) -> None:
    """One row per file: the waveform and, on a second axis, the attention weight per frame."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    if len(predictions) > MAX_PLOT_ROWS:
        log.warning("plot: showing the first %d of %d files", MAX_PLOT_ROWS, len(predictions))
        predictions = predictions[:MAX_PLOT_ROWS]
    figure = Figure(figsize=(10, 2.2 * len(predictions)))
    axes = figure.subplots(len(predictions), 1, squeeze=False)
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


def add_predict_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help="WAV files or folders of them")
    parser.add_argument(
        "--model", required=True, help="a .keras file written by `cremad train` (sidecar .json beside it)"
    )
    parser.add_argument("--csv", help="write the probabilities to this CSV file")
    parser.add_argument(
        "--plot", help="attention curves over the waveforms (models 1 and 2) to this image file"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run_predict(args: argparse.Namespace) -> int:
    from cremad.audio import BadAudioError

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
        write_predictions(predictions, Path(args.csv))
        log.info("wrote %s", args.csv)
    if args.plot and trained.attention is None:
        log.warning("model %d has no attention; no plot written", trained.model_id)
    elif args.plot and predictions:
        plot_attention(
            predictions,
            Path(args.plot),
            trained.config.features.sample_rate,
            trained.config.features.hop_length,
        )
        log.info("wrote %s", args.plot)
    if failed:
        print(
            f"cremad predict: {len(failed)} of {len(paths)} file(s) could not be read: "
            + ", ".join(map(str, failed)),
            file=sys.stderr,
        )
        return 1
    return 0
