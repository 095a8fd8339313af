"""`cremad perception`: people versus the models, CREMA-D's crowd ratings (voice only) against
the LOSO predictions of one experiment's runs.

The measures and their definitions are in `cremad.crowd`: the raters' accuracy, the models'
agreement with the raters' majority, the Jensen-Shannon divergence between a model's
probabilities and the vote shares against three baselines, per-emotion correlations, and
accuracy by actor group. The paper claims that "an utterance can be expressed as a mixture of
possible emotions"; these tables put that to the listeners.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from cremad import CremadError, runs
from cremad.atomic import write_text
from cremad.config import EMOTIONS
from cremad.crowd import (
    GROUP_ATTRIBUTES,
    PUBLISHED_RATER_ACCURACY,
    compare_model,
    emotion_mean_shares,
    find_meta_file,
    group_accuracy,
    intended_labels,
    js_divergence,
    rater_accuracy,
    read_demographics,
    read_votes,
)
from cremad.runs import Predictions
from cremad.tables import markdown, write_csv

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------- model runs
def load_models(
    root: str | Path,
    experiment: str | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict[str, Predictions]:
    """{label: Predictions} of every CREMA-D run of one experiment under `root` with finished
    folds (see `cremad.runs.select_runs`); the label is cremad/<model>, with /seed<s> added when
    a model has several seeds. No CREMA-D run at all is a warning and {}."""
    try:
        selected = runs.select_runs(root, "cremad", experiment, models, seeds)
    except CremadError as error:
        if not Path(root).is_dir():
            raise
        log.warning("%s", error)
        return {}
    seeds_of = {}
    for key in selected:
        seeds_of.setdefault(key.model, []).append(key.seed)
    loaded = {}
    for key, path in selected.items():
        label = f"{key.corpus}/{key.model}" + (f"/seed{key.seed}" if len(seeds_of[key.model]) > 1 else "")
        predictions = runs.load_predictions(path)
        if not predictions.folds:
            log.info("%s: no finished fold yet; skipped", label)
        else:
            loaded[label] = predictions
    return loaded


# ---------------------------------------------------------------------------- tables and figure
def build_tables(votes: dict, demographics: dict, models: dict[str, dict]) -> dict[str, tuple[list, list]]:
    """The four result tables as {name: (header, rows)}: raters, models, correlations, groups."""
    raters_rows = []
    for modality, by_clip in votes.items():
        if not by_clip:
            continue
        clip_ids = sorted(by_clip)
        accuracy = rater_accuracy(np.stack([by_clip[c] for c in clip_ids]), intended_labels(clip_ids))
        raters_rows.append([modality, PUBLISHED_RATER_ACCURACY[modality], *accuracy.values()])
    raters_header = ["modality", "published", *accuracy.keys()]

    model_keys = [
        "n_clips",
        "n_without_votes",
        "accuracy_intended",
        "agreement_majority",
        "raters_majority_intended",
        "jsd_model",
        "jsd_uniform",
        "jsd_onehot",
        "jsd_label_prior",
        "closer_than_onehot",
    ]
    models_rows = [[label, *(result[key] for key in model_keys)] for label, result in models.items()]
    correlation_rows = [
        [label, emotion, *result["correlations"][emotion]]
        for label, result in models.items()
        for emotion in EMOTIONS
    ]

    voice = votes["voice"]
    clip_ids = sorted(voice)
    counts = np.stack([voice[c] for c in clip_ids])
    hits = counts[np.arange(len(clip_ids)), intended_labels(clip_ids)]
    groups_rows = []
    for attribute in GROUP_ATTRIBUTES:
        raters = group_accuracy(clip_ids, hits, counts.sum(axis=1), demographics, attribute)
        per_model = {
            label: group_accuracy(
                result["clip"], result["correct"], np.ones(len(result["clip"])), demographics, attribute
            )
            for label, result in models.items()
        }
        for group, (n_actors, n_clips, accuracy) in raters.items():
            row = [attribute, group, n_actors, n_clips, accuracy]
            for label in models:
                row += list(per_model[label].get(group, (0, 0, float("nan")))[1:])
            groups_rows.append(row)
    groups_header = ["attribute", "group", "n_actors", "n_clips", "raters_per_response"]
    for label in models:
        groups_header += [f"{label}:n_clips", f"{label}:accuracy"]
    return {
        "raters": (raters_header, raters_rows),
        "models": (["model", *model_keys], models_rows),
        "correlations": (["model", "emotion", "pearson_r", "spearman_rho"], correlation_rows),
        "groups": (groups_header, groups_rows),
    }


def _format(value) -> str:
    if isinstance(value, (float, np.floating)):
        return "nan" if np.isnan(value) else f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


TABLE_NOTES = {
    "raters": "Raters' accuracy against the intended emotion (%), from tabulatedVotes.csv. per_response = "
    "votes for the intended emotion / all votes (the CREMA-D paper's measure, `published`); majority_strict: "
    "the intended emotion is the single most-voted one; majority_ties_split: 1/k for a k-way tie.",
    "models": "LOSO accuracy (%) against the intended emotion and agreement with the voice raters' majority "
    "(1/k credit when the model's top emotion is one of k tied most-voted emotions); "
    "raters_majority_intended is the raters' own majority against the intended emotion on the same clips. "
    "Mean Jensen-Shannon "
    "divergence (bits) from the voice vote shares of the model's probabilities, a uniform vector, the "
    "one-hot intended label and the label prior (mean vote shares of the clips of the same intended "
    "emotion); closer_than_onehot = % of clips where the model is closer than the one-hot label.",
    "correlations": "Per emotion, correlation over clips between the model's p_<EMO> and the share of voice "
    "votes for it.",
    "groups": "Accuracy (%) by the actor's sex, age band, race and ethnicity (VideoDemographics.csv): raters "
    "per response on all voice clips, models per clip on their LOSO test clips.",
}


def write_tables(tables: dict, out_dir: Path, experiment: str | None = None) -> str:
    """Write <name>.csv for every table and perception.md with all of them; return the Markdown."""
    runs_note = f" ({experiment} runs)" if experiment else ""
    sections = [f"# People versus the models (CREMA-D voice-only ratings){runs_note}"]
    for name, (header, rows) in tables.items():
        write_csv(out_dir / f"{name}.csv", header, rows)
        sections.append(f"## {name}\n\n{TABLE_NOTES[name]}\n\n{markdown(header, rows, _format)}")
    text = "\n\n".join(sections) + "\n"
    write_text(out_dir / "perception.md", text)
    return text


def plot(tables: dict, models: dict[str, dict], votes: dict, out_dir: Path) -> list[Path]:
    """perception.png/.pdf: accuracies, JS divergence per clip, per-emotion correlation, groups."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    figure = Figure(figsize=(12, 9))
    axes = figure.subplots(2, 2)
    raters = next(dict(zip(tables["raters"][0], row)) for row in tables["raters"][1] if row[0] == "voice")
    names = ["raters\n(per response)", "raters\n(majority)"] + list(models)
    intended = [raters["per_response"], raters["majority_ties_split"]] + [
        m["accuracy_intended"] for m in models.values()
    ]
    majority = [np.nan, np.nan] + [m["agreement_majority"] for m in models.values()]
    x = np.arange(len(names))
    axes[0, 0].bar(x - 0.2, intended, 0.4, label="vs intended emotion")
    axes[0, 0].bar(x + 0.2, majority, 0.4, label="vs raters' majority")
    axes[0, 0].set(xticks=x, ylabel="accuracy (%)", ylim=(0, 100), title="(a) accuracy, voice only")
    axes[0, 0].set_xticklabels(names, fontsize=8)
    axes[0, 0].legend(loc="upper left", fontsize=8)

    # Baselines over every voice-rated clip; each model over its LOSO test clips.
    voice_ids = sorted(votes["voice"])
    counts = np.stack([votes["voice"][c] for c in voice_ids])
    shares = counts / counts.sum(axis=1, keepdims=True)
    boxes = {
        "uniform": js_divergence(np.full_like(shares, 1 / len(EMOTIONS)), shares),
        "one-hot\nintended": js_divergence(np.eye(len(EMOTIONS))[intended_labels(voice_ids)], shares),
        "label\nprior": js_divergence(
            emotion_mean_shares(votes["voice"])[intended_labels(voice_ids)], shares
        ),
        **{label: result["jsd_per_clip"] for label, result in models.items()},
    }
    axes[0, 1].boxplot(list(boxes.values()), showfliers=False)
    axes[0, 1].set_xticks(np.arange(1, len(boxes) + 1), list(boxes), fontsize=8)
    axes[0, 1].set(ylabel="JS divergence (bits), per clip", title="(b) distance to the voice vote shares")

    if models:
        width = 0.8 / len(models)
        for i, label in enumerate(models):
            pearson = [models[label]["correlations"][e][0] for e in EMOTIONS]
            axes[1, 0].bar(
                np.arange(len(EMOTIONS)) + i * width - 0.4 + width / 2, pearson, width, label=label
            )
        axes[1, 0].set_xticks(np.arange(len(EMOTIONS)), EMOTIONS)
        axes[1, 0].set(ylabel="Pearson r", title="(c) p_<EMO> vs vote share, per emotion")
        axes[1, 0].legend(fontsize=8)

    header, rows = tables["groups"]
    groups = [f"{row[0]}: {row[1]} ({row[2]})" for row in rows]
    y = np.arange(len(groups))
    columns = [("raters", header.index("raters_per_response"))] + [
        (label, header.index(f"{label}:accuracy")) for label in models
    ]
    height = 0.8 / len(columns)
    for i, (label, column) in enumerate(columns):
        axes[1, 1].barh(y + i * height - 0.4 + height / 2, [row[column] for row in rows], height, label=label)
    axes[1, 1].set_yticks(y, groups, fontsize=7)
    axes[1, 1].invert_yaxis()
    axes[1, 1].set(
        xlabel="accuracy vs intended (%)", xlim=(0, 100), title="(d) by actor group (number of actors)"
    )
    axes[1, 1].legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    paths = [out_dir / "perception.png", out_dir / "perception.pdf"]
    for path in paths:
        figure.savefig(path, dpi=150)
    return paths


# ---------------------------------------------------------------------------- command
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--runs",
        help="runs root of `cremad loso` or any folder below it; without it, the raters' figures alone",
    )
    parser.add_argument(
        "--experiment", default=None, help="experiment (default: the only one there, else paper)"
    )
    parser.add_argument("--models", help="comma-separated models, e.g. 1,2 (default: all there)")
    parser.add_argument("--seeds", help="comma-separated seeds (default: all there)")
    parser.add_argument(
        "--meta",
        required=True,
        help="CREMA-D checkout or folder with tabulatedVotes.csv and VideoDemographics.csv",
    )
    parser.add_argument("--out", default="figures/perception", help="output folder (default: %(default)s)")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args: argparse.Namespace) -> int:
    meta, out_dir = Path(args.meta), Path(args.out)
    votes = read_votes(find_meta_file(meta, "tabulatedVotes.csv"))
    demographics = read_demographics(find_meta_file(meta, "VideoDemographics.csv"))
    log.info("votes: %s", ", ".join(f"{len(v)} {m} clips" for m, v in votes.items()))
    if not votes["voice"]:
        raise CremadError(f"{meta / 'tabulatedVotes.csv'}: no voice-only rows (ids 1xxxxx)")
    models = {}
    selected = (
        load_models(args.runs, args.experiment, *runs.parse_selection(args.models, args.seeds))
        if args.runs
        else {}
    )
    for label, predictions in selected.items():
        result = compare_model(predictions, votes["voice"])
        if result["n_without_votes"]:
            log.warning(
                "%s: %d predicted clips have no voice votes, left out", label, result["n_without_votes"]
            )
        models[label] = result
        log.info("%s: %d clips", label, result["n_clips"])
    if args.runs and not models:
        log.warning("%s: no model folder with finished folds; reporting the raters only", args.runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    tables = build_tables(votes, demographics, models)
    print(write_tables(tables, out_dir, args.experiment))
    for path in plot(tables, models, votes, out_dir):
        log.info("wrote %s", path)
    return 0
