"""The drawings of `cremad figures`: Fig. 3's confusion matrices, the per-fold accuracy spread
and Fig. 2's attention curves, built on matplotlib Figure objects (no pyplot, no global state).

`results` is name -> `cremad.metrics.ModelResults`; matrices and fold accuracies come from the
summary over seeds, Fig. 2's curves from the attention.npz of one seed's fold (the lowest seed
that has the clip, named in the panel).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from cremad import runs
from cremad.config import EMOTION_NAMES, EMOTIONS, FeatureConfig
from cremad.model_names import FIG2_MODEL_IDS, MODEL_SPECS, model_name

log = logging.getLogger(__name__)

COLUMN_WIDTH = 3.5  # inches, one column of a two-column paper
PAGE_WIDTH = 7.16  # inches, both columns
STYLE = {
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
}


def save(figure: Figure, out: Path, stem: str) -> list[Path]:
    """Write `stem`.png (300 dpi) and `stem`.pdf under `out`."""
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path in paths:
        figure.savefig(path, dpi=300, bbox_inches="tight")
    log.info("wrote %s (.pdf too)", paths[0])
    return paths


def plot_confusion(ax, summary: dict[str, Any], title: str, values_format: str = ".1f") -> None:
    """Fig. 3: the row-normalized aggregated confusion matrix, % of the true class per cell. The
    row of an absent class (no clip of it) is grey and says "absent"."""
    from sklearn.metrics import ConfusionMatrixDisplay

    names = [EMOTION_NAMES[emotion] for emotion in EMOTIONS]
    percent = np.array(
        [row if row is not None else [np.nan] * len(EMOTIONS) for row in summary["confusion_percent"]],
        dtype=float,
    )  # (6, 6), NaN rows absent
    display = ConfusionMatrixDisplay(np.nan_to_num(percent), display_labels=names)
    display.plot(
        ax=ax,
        cmap="Blues",
        values_format=values_format,
        colorbar=False,
        xticks_rotation=45,
        im_kw={"vmin": 0.0, "vmax": 100.0},
        text_kw={"fontsize": 5.5},
    )
    for row in np.flatnonzero(np.isnan(percent).all(axis=1)):
        ax.axhspan(row - 0.5, row + 0.5, color="0.85", zorder=2)
        for text in display.text_[row]:
            text.set_visible(False)
        ax.text(
            (len(EMOTIONS) - 1) / 2,
            row,
            "absent (no clip)",
            ha="center",
            va="center",
            fontsize=5.5,
            color="0.35",
            zorder=3,
        )
    ax.set_title(title)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True (% of row)")


def _title(label: str, summary: dict[str, Any], separator: str = ": ") -> str:
    numbers = f"WA {summary['wa']:.1f}%, UA {summary['ua']:.1f}% (chance {summary['chance_ua']:.0f}%)"
    return f"{label}{separator}{numbers}"


def confusion_figures(
    results: dict, out: Path, stem: str = "fig3_confusion_all", rows: int = 1
) -> list[Path]:
    """fig3_confusion_<model> for each model and `stem`, the models side by side in `rows` rows
    (filled row by row)."""
    written = []
    for name, result in results.items():
        figure = Figure(figsize=(COLUMN_WIDTH, COLUMN_WIDTH), layout="constrained")
        plot_confusion(figure.add_subplot(), result.summary, _title(result.label, result.summary))
        written += save(figure, out, f"fig3_confusion_{name}")
    columns = math.ceil(len(results) / rows)
    figure = Figure(figsize=(PAGE_WIDTH, rows * PAGE_WIDTH / columns + 0.9), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, (ax, result) in enumerate(zip(axes.flat, results.values())):
        # Whole percents and two-line titles: several matrices share one page width.
        title = _title(result.label, result.summary, separator="\n")
        plot_confusion(ax, result.summary, title, values_format=".0f")
        if index % columns:
            ax.set_ylabel("")
    for ax in axes.flat[len(results) :]:  # a last row not filled
        ax.set_visible(False)
    return written + save(figure, out, stem)


def fold_accuracy_figure(results: dict, out: Path) -> list[Path]:
    """Beyond the paper: the spread of per-fold (per held-out actor) accuracy of each model,
    a fold's accuracy averaged over the seeds that ran it."""
    figure = Figure(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    ax = figure.add_subplot()
    data = [
        [fold["accuracy"] for fold in result.summary["folds"].values() if fold["accuracy"] is not None]
        for result in results.values()
    ]
    ax.boxplot(data, tick_labels=[result.label for result in results.values()], showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)  # fixed jitter: the same runs give the same picture
    for position, values in enumerate(data, start=1):
        ax.scatter(position + jitter.uniform(-0.12, 0.12, len(values)), values, s=6, alpha=0.6, zorder=3)
    ax.set_ylabel("Fold accuracy (%)")
    ax.set_title("Accuracy per held-out actor")
    ax.grid(axis="y", alpha=0.3)
    return save(figure, out, "fold_accuracy")


def clip_attention(result, actor: str, clip_id: str) -> tuple[np.ndarray, str, str, int] | None:
    """(weights (decoder_steps, n_frames), true, predicted, seed) of `clip_id` from the fold
    that held `actor` out, in the lowest seed that has it; None when no seed does."""
    for seed, predictions in result.predictions.items():
        rows = np.flatnonzero((predictions.clip_ids == clip_id) & (predictions.actors == actor))
        weights = runs.read_attention(predictions.run_dir, actor, clip_id) if rows.size else None
        if weights is not None:
            return weights, str(predictions.true[rows[0]]), str(predictions.predicted[rows[0]]), seed
    return None


def run_setting(results: dict, key: str) -> Any:
    """`key` from the earliest run.json (in `results` order) that has it, at its top level or
    under config.features."""
    for result in results.values():
        for predictions in result.predictions.values():
            run = predictions.run
            for value in (run.get(key), run.get("config", {}).get("features", {}).get(key)):
                if value is not None:
                    return value
    return None


def run_features(results: dict) -> FeatureConfig:
    """The runs' own feature settings, so a clip is read (resampled, trimmed) as their models saw it."""
    settings = {
        key: value
        for key in ("sample_rate", "hop_length", "win_length", "trim_digital_silence")
        if (value := run_setting(results, key)) is not None
    }
    return dataclasses.replace(FeatureConfig(), **settings)


def padding_share(weights: np.ndarray, own_frames: int, pad_side: str) -> float:
    """Fig. 2's measure: the share of a clip's attention (decoder steps, frames) that falls on
    the padding, outside the clip's `own_frames` (at the start or end, by `pad_side`)."""
    from cremad.features import speech_mask

    own = speech_mask(np.array([own_frames]), weights.shape[-1], pad_side)[0]  # (n_frames,)
    return 1.0 - float(weights[:, own].sum() / weights.sum())


def attention_figure(results: dict, clip_id: str, audio_path: Path, actor: str) -> Figure:
    """Fig. 2: waveform, spectrogram and the attention of models 1 and 2 on one time axis.

    Attention over frames is stretched to samples: frame t is centred on sample t * hop_length,
    so sample s takes the weight of frame round(s / hop_length) (shifted by the padding when the
    run padded at the start). The x-axis spans the clip itself."""
    import librosa
    import librosa.display

    from cremad.features import n_frames as frames_of
    from cremad.features import read_clip

    features = run_features(results)
    sample_rate, hop_length = features.sample_rate, features.hop_length
    signal, _ = read_clip(audio_path, features)  # (n_samples,)
    duration = len(signal) / sample_rate
    names = [model_name(model_id) for model_id in FIG2_MODEL_IDS]
    curves = {name: clip_attention(results[name], actor, clip_id) for name in names if name in results}
    n_frames = max(
        (curve[0].shape[-1] for curve in curves.values() if curve), default=1 + len(signal) // hop_length
    )
    pad_to = max(len(signal), int(run_setting(results, "pad_to") or (n_frames - 1) * hop_length))
    padded = np.pad(signal, (0, pad_to - len(signal)))  # (pad_to,)
    seconds = np.arange(pad_to) / sample_rate  # (pad_to,)
    # With start padding the clip's samples sat after pad_to - n zeros in the model's input.
    pad_side = "start" if run_setting(results, "pad_side") == "start" else "end"
    shift = pad_to - len(signal) if pad_side == "start" else 0
    frame_of_sample = np.rint((np.arange(pad_to) + shift) / hop_length).astype(int)  # (pad_to,)
    own_frames = frames_of(len(signal), features)  # the clip's own frames, as training's mask counts them

    figure = Figure(figsize=(COLUMN_WIDTH, 4.6), layout="constrained")
    ax_wave, ax_spec, *ax_attention = figure.subplots(2 + len(names), 1, sharex=True)
    ax_wave.plot(seconds, padded, linewidth=0.4, color="black")
    ax_wave.set_ylabel("Amplitude")
    ax_wave.set_title("Raw waveform")
    # The paper locates words by sample number ("30000th to 40000th sample"); keep both scales.
    samples_axis = ax_wave.secondary_xaxis(
        "top", functions=(lambda t: t * sample_rate, lambda s: s / sample_rate)
    )
    samples_axis.set_xlabel("Sample")
    spectrum = librosa.stft(
        signal, n_fft=features.n_fft, hop_length=hop_length, win_length=features.win_length
    )
    decibels = librosa.amplitude_to_db(np.abs(spectrum), ref=np.max)  # (n_fft // 2 + 1, n_frames)
    librosa.display.specshow(
        decibels, sr=sample_rate, hop_length=hop_length, x_axis="time", y_axis="hz", ax=ax_spec, cmap="magma"
    )
    ax_spec.set_title("Spectrogram (dB)")
    ax_spec.set_xlabel("")

    true = None
    for ax, name, model_id in zip(ax_attention, names, FIG2_MODEL_IDS):
        kind, colour = MODEL_SPECS[model_id].label, MODEL_SPECS[model_id].colour
        ax.set_ylabel("Weight")
        curve = curves.get(name)
        if curve is None:
            reason = "no results" if name not in results else f"fold-{actor} has no attention for this clip"
            log.warning("Fig. 2: model %d: %s", model_id, reason)
            ax.text(0.5, 0.5, f"Model {model_id}: {reason}", transform=ax.transAxes, ha="center", va="center")
            ax.set_title(f"Model {model_id} ({kind}) attention")
            continue
        weights, true, predicted, seed = curve
        for step in weights:  # one curve per decoder step (the paper's models have one)
            ax.plot(
                seconds,
                step[np.minimum(frame_of_sample, len(step) - 1)],
                linewidth=0.6,
                color=colour,
            )
        # Dotted: uniform attention (1 / n_frames), the level of a model that attends to nothing.
        uniform = 1.0 / weights.shape[-1]
        ax.axhline(uniform, linestyle=":", linewidth=0.6, color="grey")
        ax.set_ylim(0.0, 1.3 * max(weights.max(), uniform))  # from zero, headroom for the note
        verdict = "correct" if predicted == true else "wrong"
        seed_note = f", seed {seed}" if len(results[name].predictions) > 1 else ""
        ax.set_title(
            f"Model {model_id} ({kind}) attention: "
            f"predicted {EMOTION_NAMES[predicted]} ({verdict}){seed_note}"
        )
        # Softmax mass on the zero padding is off the axis; say how much there is.
        on_padding = padding_share(weights, own_frames, pad_side)
        if on_padding > 0.005:
            ax.text(
                0.99,
                0.95,
                f"{100 * on_padding:.1f}% on padding",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=5.5,
            )
    ax_attention[-1].set_xlabel("Time (s)")
    for ax in (ax_wave, ax_spec, *ax_attention):
        ax.set_xlim(0.0, duration)
    emotion = EMOTION_NAMES[true] if true else "?"
    figure.suptitle(f"{clip_id} (true emotion: {emotion}; fold {actor} held out)", fontsize=7)
    return figure
