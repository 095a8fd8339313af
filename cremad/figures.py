"""The paper's Table II, Fig. 2 and Fig. 3 (section III), drawn only from saved run folders.

    cremad figures --runs runs/cremad --data data/CREMA-D [--clip 1015_DFA_ANG_XX] [--out figures]

Nothing is retrained: tables and confusion matrices come from `fold-*/predictions.csv`
(through `cremad.metrics`), Fig. 2's attention curves from the `attention.npz` of the fold that
held the clip's actor out. Beyond the paper: the per-fold accuracy of each model and paired tests
between models (Wilcoxon signed-rank on per-fold UA, exact McNemar on pooled predictions), since
the paper calls model 2 "significantly better" without a test. Missing models or folds are named
in log lines and left out; what exists is drawn.
"""

from __future__ import annotations

import csv
import itertools
import logging
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure  # built without pyplot: no GUI backend, no global state
from scipy.stats import binomtest, wilcoxon

from cremad import CremadError
from cremad.config import EMOTION_NAMES, EMOTIONS, FeatureConfig
from cremad.corpus import CORPORA
from cremad.metrics import compute_summary, find_model_dirs, load_predictions, model_id_of

log = logging.getLogger(__name__)

PAPER_CLIP = "1015_DFA_ANG_XX"  # the clip of the paper's Fig. 2
MODEL_IDS = (1, 2, 3, 4)
ATTENTION_MODELS = (1, 2)
# Table II as published: emotion -> ((best model, %), (worst model, %)), digits as printed.
PAPER_TABLE_II = {
    "ANG": ((2, "75.6"), (1, "63.25")),
    "DIS": ((2, "48.46"), (3, "36.18")),
    "FEA": ((2, "48.62"), (3, "6.89")),
    "HAP": ((1, "62.7"), (3, "43.71")),
    "NEU": ((1, "63.10"), (3, "52.48")),
    "SAD": ((2, "70.57"), (4, "63.25")),
}
COLUMN_WIDTH = 3.5  # inches, one column of a two-column paper
PAGE_WIDTH = 7.16  # inches, both columns
STYLE = {"font.size": 7, "axes.titlesize": 7, "axes.labelsize": 7,
         "xtick.labelsize": 6, "ytick.labelsize": 6, "legend.fontsize": 6}

Results = dict[int, dict[str, Any]]  # model id -> {"predictions": Predictions, "summary": dict}


# --- loading ----------------------------------------------------------------------------------


def resolve_models(runs: str | Path, corpus: str | None = None) -> dict[int, Path]:
    """Model id -> run folder, for one set of models: `runs` may be a model folder, a folder of
    model<k> folders, or a parent of such sets (then --corpus, or there being one set, picks)."""
    groups: dict[Path, list[Path]] = {}
    for model_dir in find_model_dirs(runs):
        groups.setdefault(model_dir.parent, []).append(model_dir)
    if len(groups) > 1 and corpus is not None:
        groups = {parent: dirs for parent, dirs in groups.items() if corpus in (parent.name, parent.parent.name)} or groups
    if len(groups) > 1:
        names = ", ".join(str(parent) for parent in sorted(groups))
        raise CremadError(f"--runs {runs}: several sets of runs ({names}); pass one of them as --runs")
    models = {}
    for model_dir in next(iter(groups.values())):
        model_id = model_id_of(model_dir)
        if model_id is None or model_id in models:
            raise CremadError(f"{model_dir}: cannot tell which model it holds "
                              "(no model_id in run.json and the folder is not a unique model<k>)")
        models[model_id] = model_dir
    return dict(sorted(models.items()))


def load_results(models: dict[int, Path]) -> Results:
    """Predictions and summary of every model with a finished fold; the others are logged."""
    results = {}
    for model_id in sorted(set(MODEL_IDS) | set(models)):
        if model_id not in models:
            log.warning("model %d: no run folder, left out", model_id)
            continue
        predictions = load_predictions(models[model_id])
        if not predictions.folds:
            log.warning("model %d: no finished folds in %s, left out", model_id, models[model_id])
            continue
        summary = compute_summary(predictions)
        expected = summary["n_expected_folds"]
        if expected and summary["n_folds"] < expected:
            log.warning("model %d: partial run, %d of %d folds finished", model_id, summary["n_folds"], expected)
        results[model_id] = {"predictions": predictions, "summary": summary}
    if not results:
        raise CremadError("no model has a finished fold; run `cremad loso` first")
    return results


def _run_setting(results: Results, key: str) -> Any:
    """`key` from the first run.json that has it, at its top level or under config.features."""
    for result in results.values():
        run = result["predictions"].run
        for value in (run.get(key), run.get("config", {}).get("features", {}).get(key)):
            if value is not None:
                return value
    return None


# --- tables -----------------------------------------------------------------------------------


def table_ii(summaries: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Table II: per emotion, the best and worst model by true-positive % among the models given,
    beside the paper's values; differences are ours minus the paper's, in points. Ties go to the
    lower model number."""
    rows = []
    for emotion in EMOTIONS:
        scores = [(model_id, summary["recall"][emotion]) for model_id, summary in sorted(summaries.items())
                  if summary["recall"][emotion] is not None]
        if not scores:
            continue
        best = max(scores, key=lambda item: (item[1], -item[0]))
        worst = min(scores, key=lambda item: (item[1], item[0]))
        (paper_best_model, paper_best), (paper_worst_model, paper_worst) = PAPER_TABLE_II[emotion]
        rows.append({
            "emotion": EMOTION_NAMES[emotion],
            "best_model": best[0],
            "best_percent": round(best[1], 2),
            "worst_model": worst[0],
            "worst_percent": round(worst[1], 2),
            "paper_best_model": paper_best_model,
            "paper_best_percent": paper_best,
            "paper_worst_model": paper_worst_model,
            "paper_worst_percent": paper_worst,
            "best_difference": round(best[1] - float(paper_best), 2),
            "worst_difference": round(worst[1] - float(paper_worst), 2),
        })
    return rows


def table_ii_markdown(rows: list[dict[str, Any]]) -> str:
    """Table II in the paper's layout ("Model 2 – 75.6"), the paper's columns beside ours."""
    lines = ["| Emotion | Best classified (%) | Worst classified (%) | Paper best (%) | Paper worst (%) | Δ best | Δ worst |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        cells = [
            row["emotion"],
            f"Model {row['best_model']} – {row['best_percent']:.2f}",
            f"Model {row['worst_model']} – {row['worst_percent']:.2f}",
            f"Model {row['paper_best_model']} – {row['paper_best_percent']}",
            f"Model {row['paper_worst_model']} – {row['paper_worst_percent']}",
            f"{row['best_difference']:+.2f}",
            f"{row['worst_difference']:+.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


FULL_HEADERS = {"model": "Model", "folds": "Folds", **{emotion: EMOTION_NAMES[emotion] for emotion in EMOTIONS},
                "wa": "WA", "ua": "UA", "macro_f1": "Macro-F1",
                "fold_accuracy_mean": "Fold acc. mean", "fold_accuracy_std": "Fold acc. std"}
SIGNIFICANCE_HEADERS = {"model_a": "A", "model_b": "B", "paired_folds": "Folds", "ua_difference": "UA A−B (mean)",
                        "wilcoxon_p": "Wilcoxon p", "paired_clips": "Clips", "only_a_correct": "Only A right",
                        "only_b_correct": "Only B right", "mcnemar_p": "McNemar p"}


def full_table(summaries: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every model's per-class recall, WA, UA, macro-F1 and per-fold accuracy (all %)."""
    rows = []
    for model_id, summary in sorted(summaries.items()):
        expected = summary["n_expected_folds"]
        row = {"model": model_id, "folds": f"{summary['n_folds']}/{expected}" if expected else str(summary["n_folds"])}
        row.update(summary["recall"])
        row.update({key: summary[key] for key in ("wa", "ua", "macro_f1", "fold_accuracy_mean", "fold_accuracy_std")})
        rows.append(row)
    return rows


def significance(results: Results) -> list[dict[str, Any]]:
    """Paired model-vs-model tests: Wilcoxon signed-rank on per-fold UA over the folds both
    finished, and exact McNemar (binomial test on the discordant clips) on pooled predictions
    matched by clip id. p-values are two-sided and not adjusted for the several pairs."""
    rows = []
    for a, b in itertools.combinations(sorted(results), 2):
        folds_a, folds_b = results[a]["summary"]["folds"], results[b]["summary"]["folds"]
        actors = [actor for actor in folds_a
                  if folds_a[actor]["ua"] is not None and folds_b.get(actor, {}).get("ua") is not None]
        difference = np.array([folds_a[actor]["ua"] - folds_b[actor]["ua"] for actor in actors])  # (n_paired,)
        if not actors:
            wilcoxon_p = None
        elif np.allclose(difference, 0.0):
            wilcoxon_p = 1.0  # identical per-fold UA: no evidence of a difference
        else:
            wilcoxon_p = float(wilcoxon(difference).pvalue)

        pred_a, pred_b = results[a]["predictions"], results[b]["predictions"]
        index_b = {clip: i for i, clip in enumerate(pred_b.clip_ids)}
        pairs = [(i, index_b[clip]) for i, clip in enumerate(pred_a.clip_ids) if clip in index_b]
        right_a = np.array([pred_a.true[i] == pred_a.predicted[i] for i, _ in pairs], dtype=bool)
        right_b = np.array([pred_b.true[j] == pred_b.predicted[j] for _, j in pairs], dtype=bool)
        only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
        mcnemar_p = float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
        rows.append({
            "model_a": a,
            "model_b": b,
            "paired_folds": len(actors),
            "ua_difference": round(float(difference.mean()), 2) if actors else None,
            "wilcoxon_p": wilcoxon_p,  # unrounded: 3e-12 must not become 0; tables format it
            "paired_clips": len(pairs),
            "only_a_correct": only_a,
            "only_b_correct": only_b,
            "mcnemar_p": mcnemar_p,
        })
    return rows


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_p"):
        if value < 1e-4:
            return "<1e-4"  # the exact value is in the CSV
        return f"{value:.3g}"  # p-values: significant digits, not two decimals that round to 0.00
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def markdown_table(rows: list[dict[str, Any]], headers: dict[str, str]) -> str:
    lines = ["| " + " | ".join(headers.values()) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(key, row[key]) for key in headers) + " |" for row in rows]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def write_tables(results: Results, out: Path, corpus: str) -> list[Path]:
    """table2.md/.csv (printed too), table_full.md/.csv and significance.md/.csv under `out`."""
    summaries = {model_id: result["summary"] for model_id, result in results.items()}
    models = ", ".join(map(str, results))
    rows, full, tests = table_ii(summaries), full_table(summaries), significance(results)
    tables = {
        "table2": (f"Table II: true-positive % per emotion, best and worst of models {models} ({corpus}); "
                   f"Δ = ours minus the paper's, in points", table_ii_markdown(rows), rows),
        "table_full": (f"Per-class recall, WA, UA, macro-F1 and per-fold accuracy (mean, sample std), % ({corpus})",
                       markdown_table(full, FULL_HEADERS), full),
        "significance": (f"Model-vs-model tests ({corpus}): Wilcoxon signed-rank on per-fold UA, exact McNemar on "
                         f"pooled predictions; two-sided, unadjusted p-values"
                         + (f" (Bonferroni threshold for {len(tests)} pairs: 0.05/{len(tests)})" if tests else
                            "; one model only, nothing to compare"),
                         markdown_table(tests, SIGNIFICANCE_HEADERS), tests),
    }
    written = []
    for stem, (title, markdown, table_rows) in tables.items():
        (out / f"{stem}.md").write_text(f"{title}\n\n{markdown}\n")
        write_csv(out / f"{stem}.csv", table_rows)
        print(f"{title}\n\n{markdown}\n")
        written += [out / f"{stem}.md", out / f"{stem}.csv"]
    return written


# --- figures ----------------------------------------------------------------------------------


def save(figure: Figure, out: Path, stem: str) -> list[Path]:
    """Write `stem`.png (300 dpi) and `stem`.pdf under `out`."""
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for path in paths:
        figure.savefig(path, dpi=300, bbox_inches="tight")
    log.info("wrote %s (.pdf too)", paths[0])
    return paths


def plot_confusion(ax, summary: dict[str, Any], title: str, values_format: str = ".1f") -> None:
    """Fig. 3: the row-normalized aggregated confusion matrix, % of the true class per cell."""
    from sklearn.metrics import ConfusionMatrixDisplay

    names = [EMOTION_NAMES[emotion] for emotion in EMOTIONS]
    display = ConfusionMatrixDisplay(np.array(summary["confusion_percent"]), display_labels=names)
    display.plot(ax=ax, cmap="Blues", values_format=values_format, colorbar=False, xticks_rotation=45,
                 im_kw={"vmin": 0.0, "vmax": 100.0}, text_kw={"fontsize": 5.5})
    ax.set_title(title)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True (% of row)")


def _model_title(model_id: int, summary: dict[str, Any]) -> str:
    return f"Model {model_id}: WA {summary['wa']:.1f}%, UA {summary['ua']:.1f}%"


def confusion_figures(results: Results, out: Path) -> list[Path]:
    """fig3_confusion_model<k> for each model and fig3_confusion_all, the models side by side."""
    written = []
    for model_id, result in results.items():
        figure = Figure(figsize=(COLUMN_WIDTH, COLUMN_WIDTH), layout="constrained")
        plot_confusion(figure.add_subplot(), result["summary"], _model_title(model_id, result["summary"]))
        written += save(figure, out, f"fig3_confusion_model{model_id}")
    figure = Figure(figsize=(PAGE_WIDTH, PAGE_WIDTH / len(results) + 0.9), layout="constrained")
    axes = figure.subplots(1, len(results), squeeze=False)[0]
    for ax, (model_id, result) in zip(axes, results.items()):
        # Whole percents: four matrices share one page width, so the cells are narrow.
        plot_confusion(ax, result["summary"], _model_title(model_id, result["summary"]), values_format=".0f")
        if ax is not axes[0]:
            ax.set_ylabel("")
    return written + save(figure, out, "fig3_confusion_all")


def fold_accuracy_figure(results: Results, out: Path) -> list[Path]:
    """Beyond the paper: the spread of per-fold (per held-out actor) accuracy of each model."""
    figure = Figure(figsize=(COLUMN_WIDTH, 2.4), layout="constrained")
    ax = figure.add_subplot()
    data = [[fold["accuracy"] for fold in result["summary"]["folds"].values() if fold["accuracy"] is not None]
            for result in results.values()]
    ax.boxplot(data, tick_labels=[f"Model {model_id}" for model_id in results], showfliers=False, widths=0.5)
    jitter = np.random.default_rng(0)  # fixed jitter: the same runs give the same picture
    for position, values in enumerate(data, start=1):
        ax.scatter(position + jitter.uniform(-0.12, 0.12, len(values)), values, s=6, alpha=0.6, zorder=3)
    ax.set_ylabel("Fold accuracy (%)")
    ax.set_title("Accuracy per held-out actor")
    ax.grid(axis="y", alpha=0.3)
    return save(figure, out, "fold_accuracy")


def find_clip(results: Results, clip_id: str) -> str | None:
    """The held-out actor whose fold tested `clip_id` in model 1 or 2, else None."""
    for model_id in ATTENTION_MODELS:
        if model_id in results:
            predictions = results[model_id]["predictions"]
            hits = np.flatnonzero(predictions.clip_ids == clip_id)
            if hits.size:
                return str(predictions.actors[hits[0]])
    return None


def clip_attention(result: dict[str, Any], actor: str, clip_id: str) -> tuple[np.ndarray, str, str] | None:
    """(weights (decoder_steps, n_frames), true, predicted) of `clip_id`, from the attention.npz
    of the fold that held `actor` out; None when that fold or clip is missing."""
    predictions = result["predictions"]
    rows = np.flatnonzero((predictions.clip_ids == clip_id) & (predictions.actors == actor))
    path = predictions.model_dir / f"fold-{actor}" / "attention.npz"
    if not rows.size or not path.is_file():
        return None
    with np.load(path) as archive:
        index = np.flatnonzero(archive["clips"].astype(str) == clip_id)
        if not index.size:
            return None
        weights = np.asarray(archive["weights"][index[0]], dtype=float)
    return weights.reshape(-1, weights.shape[-1]), str(predictions.true[rows[0]]), str(predictions.predicted[rows[0]])


def attention_figure(results: Results, clip_id: str, audio_path: Path, actor: str) -> Figure:
    """Fig. 2: waveform, spectrogram and the attention of models 1 and 2 on one time axis.

    Attention over frames is stretched to samples: frame t is centred on sample t * hop_length,
    so sample s takes the weight of frame round(s / hop_length). The waveform is zero-padded at
    the end to the run's pad length, as the features were; the x-axis spans the clip itself."""
    import librosa
    import librosa.display

    from cremad.features import load_audio

    features = FeatureConfig()
    sample_rate = int(_run_setting(results, "sample_rate") or features.sample_rate)
    hop_length = int(_run_setting(results, "hop_length") or features.hop_length)
    signal = load_audio(audio_path, sample_rate=sample_rate)  # (n_samples,)
    duration = len(signal) / sample_rate
    curves = {model_id: clip_attention(results[model_id], actor, clip_id)
              for model_id in ATTENTION_MODELS if model_id in results}
    n_frames = max((curve[0].shape[-1] for curve in curves.values() if curve), default=1 + len(signal) // hop_length)
    pad_to = max(len(signal), int(_run_setting(results, "pad_to") or (n_frames - 1) * hop_length))
    padded = np.pad(signal, (0, pad_to - len(signal)))  # (pad_to,)
    seconds = np.arange(pad_to) / sample_rate  # (pad_to,)
    frame_of_sample = np.rint(np.arange(pad_to) / hop_length).astype(int)  # (pad_to,)

    figure = Figure(figsize=(COLUMN_WIDTH, 4.6), layout="constrained")
    ax_wave, ax_spec, *ax_attention = figure.subplots(4, 1, sharex=True)
    ax_wave.plot(seconds, padded, linewidth=0.4, color="black")
    ax_wave.set_ylabel("Amplitude")
    ax_wave.set_title("Raw waveform")
    # The paper locates words by sample number ("30000th to 40000th sample"); keep both scales.
    samples_axis = ax_wave.secondary_xaxis("top", functions=(lambda t: t * sample_rate, lambda s: s / sample_rate))
    samples_axis.set_xlabel("Sample")
    spectrum = librosa.stft(signal, n_fft=features.n_fft, hop_length=hop_length, win_length=features.win_length)
    decibels = librosa.amplitude_to_db(np.abs(spectrum), ref=np.max)  # (n_fft // 2 + 1, n_frames)
    librosa.display.specshow(decibels, sr=sample_rate, hop_length=hop_length, x_axis="time", y_axis="hz",
                             ax=ax_spec, cmap="magma")
    ax_spec.set_title("Spectrogram (dB)")
    ax_spec.set_xlabel("")

    true = None
    for ax, model_id in zip(ax_attention, ATTENTION_MODELS):
        kind = "uni-directional" if model_id == 1 else "bi-directional"
        ax.set_ylabel("Weight")
        curve = curves.get(model_id)
        if curve is None:
            reason = "no results" if model_id not in results else f"fold-{actor} has no attention for this clip"
            log.warning("Fig. 2: model %d: %s", model_id, reason)
            ax.text(0.5, 0.5, f"Model {model_id}: {reason}", transform=ax.transAxes, ha="center", va="center")
            ax.set_title(f"Model {model_id} ({kind}) attention")
            continue
        weights, true, predicted = curve
        for step in weights:  # one curve per decoder step (the paper's models have one)
            ax.plot(seconds, step[np.minimum(frame_of_sample, len(step) - 1)], linewidth=0.6,
                    color="tab:red" if model_id == 1 else "tab:blue")
        # Dotted: uniform attention (1 / n_frames), the level of a model that attends to nothing.
        uniform = 1.0 / weights.shape[-1]
        ax.axhline(uniform, linestyle=":", linewidth=0.6, color="grey")
        ax.set_ylim(0.0, 1.3 * max(weights.max(), uniform))  # from zero, headroom for the note
        verdict = "correct" if predicted == true else "wrong"
        ax.set_title(f"Model {model_id} ({kind}) attention: predicted {EMOTION_NAMES[predicted]} ({verdict})")
        # Softmax mass on the zero padding after the clip is off the axis; say how much there is.
        on_padding = float(weights[:, int(np.ceil(len(signal) / hop_length)):].sum() / weights.sum())
        if on_padding > 0.005:
            ax.text(0.99, 0.95, f"{100 * on_padding:.1f}% on padding", transform=ax.transAxes,
                    ha="right", va="top", fontsize=5.5)
    ax_attention[-1].set_xlabel("Time (s)")
    for ax in (ax_wave, ax_spec, *ax_attention):
        ax.set_xlim(0.0, duration)
    emotion = EMOTION_NAMES[true] if true else "?"
    figure.suptitle(f"{clip_id} (true emotion: {emotion}; fold {actor} held out)", fontsize=7)
    return figure


# --- command ----------------------------------------------------------------------------------


def locate_audio(results: Results, clip_id: str, data: str | None, corpus: str) -> Path:
    """The WAV of `clip_id` in the corpus at `data` (default: run.json's data_dir)."""
    from cremad.corpus import scan

    data = data or _run_setting(results, "data_dir")
    if not data:
        raise CremadError("Fig. 2 needs the audio: pass --data DIR (the corpus folder the runs were trained on)")
    clips, _ = scan(data, corpus)
    match = [clip for clip in clips if clip.clip_id == clip_id]
    if not match:
        raise CremadError(f"clip {clip_id} is not in the {corpus} corpus at {data} (pass --data DIR for another copy)")
    return Path(match[0].path)


def choose_clip(results: Results, runs: str | Path, clip: str | None, corpus: str) -> tuple[str, str] | None:
    """(clip id, held-out actor) for Fig. 2, or None to skip it. An explicit `clip` that no fold
    of model 1 or 2 tested is an error; the paper's default clip may be absent (a subset, Emo-DB)."""
    clip_id = clip or PAPER_CLIP
    if not any(model_id in results for model_id in ATTENTION_MODELS):
        log.warning("Fig. 2 skipped: no results for model 1 or model 2")
        return None
    actor = find_clip(results, clip_id)
    if actor is not None:
        return clip_id, actor
    hint = (f"list valid names with `cremad figures --runs {runs} --corpus {corpus} --list-clips` "
            "(the clip column of model1/fold-*/predictions.csv)")
    if clip is not None:
        raise CremadError(f"clip {clip_id} is in no finished fold of model 1 or 2 under {runs}; {hint}")
    log.warning("Fig. 2 skipped: the paper's clip %s is not in these runs; pick one with --clip: %s", clip_id, hint)
    return None


def make_figures(runs: str | Path, out: str | Path = "figures", clip: str | None = None,
                 data: str | None = None, corpus: str | None = None) -> list[Path]:
    """Write every table and figure for the runs under `runs` into `out`; return the paths.
    `clip=None` draws Fig. 2 for the paper's clip when the runs hold it, and skips it otherwise."""
    results = load_results(resolve_models(runs, corpus))
    corpus = corpus or _run_setting(results, "corpus") or "cremad"
    # Fig. 2's clip and audio are checked first, so a mistyped --clip fails before anything is drawn.
    chosen = choose_clip(results, runs, clip, corpus)
    audio_path = locate_audio(results, chosen[0], data, corpus) if chosen else None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = write_tables(results, out, corpus)
    with matplotlib.rc_context(STYLE):
        written += confusion_figures(results, out)
        written += fold_accuracy_figure(results, out)
        if chosen:
            clip_id, actor = chosen
            written += save(attention_figure(results, clip_id, audio_path, actor), out, f"fig2_{clip_id}")
    return written


def list_clips(runs: str | Path, corpus: str | None = None) -> list[str]:
    """Clip ids Fig. 2 can draw: the test clips of model 1's or model 2's finished folds."""
    results = load_results(resolve_models(runs, corpus))
    return sorted({str(clip) for model_id in ATTENTION_MODELS if model_id in results
                   for clip in results[model_id]["predictions"].clip_ids})


def add_arguments(parser) -> None:
    parser.add_argument("--runs", required=True, help="run folder(s) written by `cremad loso` (e.g. runs/cremad)")
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument("--clip", default=None, help=f"clip for Fig. 2 (default: the paper's {PAPER_CLIP}, if present)")
    parser.add_argument("--data", default=None, help="corpus folder for Fig. 2's audio (default: run.json's data_dir)")
    parser.add_argument("--corpus", choices=CORPORA, default=None, help="corpus (default: from run.json)")
    parser.add_argument("--list-clips", action="store_true", help="print the clip names Fig. 2 can draw, then exit")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    if args.list_clips:
        print("\n".join(list_clips(args.runs, args.corpus)))
        return 0
    make_figures(args.runs, args.out, clip=args.clip, data=args.data, corpus=args.corpus)
    return 0
