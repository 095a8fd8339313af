"""Results of leave-one-actor-out runs, recomputed from their saved fold predictions (section III).

`summarize(run_dir)` turns one run's finished folds (read by `cremad.runs.load_predictions`)
into the paper's numbers: the aggregated confusion matrix (per-fold matrices summed, rows
normalized, Fig. 3), per-class recall (true-positive %, Table II), WA (accuracy), UA (mean
recall over the classes present, with its chance level), macro-F1 and the mean and standard
deviation of the per-fold accuracy, and writes them to the run's summary.json. A class with no
clip in the run (CASIA has no disgust) is *absent*: its recall and confusion row are null, never
0 %, and UA and chance leave it out. `load_results` gathers the runs of a selection per model,
with `cremad.stats.aggregate_seeds` giving mean and sd over seeds; `combined_results` adds each
model's seed ensemble and its fusion with each SVM baseline (`cremad.ensembles`). Every number is
in percent.

    cremad summarize --runs runs/cremad/paper/model2/seed0     # one run
    cremad summarize --runs runs --experiment tuned           # every run of an experiment
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score, recall_score

from cremad import CremadError, ensembles, runs
from cremad.config import EMOTION_NAMES, EMOTIONS
from cremad.model_names import (
    BASELINE_NAMES,
    PAPER_MODEL_IDS,
    ensemble_name,
    fusion_name,
    model_id_of,
    model_label,
    model_name,
)
from cremad.runs import Predictions, RunKey
from cremad.stats import aggregate_seeds, row_percent

log = logging.getLogger(__name__)


def unweighted_accuracy(true: np.ndarray, predicted: np.ndarray) -> float:
    """UA in %: the mean recall over the classes present in `true` (sklearn's balanced accuracy)."""
    with warnings.catch_warnings():  # a class predicted but never true has no recall: left out, as meant
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return 100.0 * float(balanced_accuracy_score(true, predicted))


def _number(value: float | None) -> float | None:
    """A JSON-safe number: NaN (an undefined recall or a one-fold std) becomes null."""
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def compute_summary(predictions: Predictions) -> dict[str, Any]:
    """The paper's numbers from a run's pooled fold predictions, without writing anything."""
    if not predictions.folds:
        raise CremadError(f"{predictions.run_dir}: no finished folds (no fold-*/done.json)")
    labels = list(EMOTIONS)
    # Summing per-fold confusion matrices is the same as one matrix over the pooled predictions.
    counts = confusion_matrix(predictions.true, predictions.predicted, labels=labels)  # (6, 6)
    totals = counts.sum(axis=1)
    present = [emotion for emotion, total in zip(EMOTIONS, totals) if total > 0]
    # A class no clip has is absent: NaN recall, null in the summary.
    recall = recall_score(
        predictions.true, predictions.predicted, labels=labels, average=None, zero_division=np.nan
    )
    macro_f1 = 100.0 * f1_score(
        predictions.true, predictions.predicted, labels=present, average="macro", zero_division=0
    )

    folds = {}
    for actor in predictions.folds:
        mask = predictions.actors == actor
        true, predicted = predictions.true[mask], predictions.predicted[mask]
        accuracy = 100.0 * float(np.mean(true == predicted)) if mask.any() else float("nan")
        folds[actor] = {
            "n_test": int(mask.sum()),
            "accuracy": _number(accuracy),
            "ua": _number(unweighted_accuracy(true, predicted)) if mask.any() else None,
        }
        recorded = predictions.done[actor].get("accuracy")
        if isinstance(recorded, (int, float)) and mask.any():
            # done.json may hold a fraction or a percent; either should agree with the CSV.
            if min(abs(recorded - accuracy), abs(100.0 * recorded - accuracy)) > 0.01:
                log.warning(
                    "fold %s: done.json accuracy %s disagrees with predictions.csv (%.2f%%)",
                    actor,
                    recorded,
                    accuracy,
                )
    fold_accuracy = np.array([fold["accuracy"] for fold in folds.values() if fold["accuracy"] is not None])

    run, model = predictions.run, predictions.model
    return {
        "run_dir": str(predictions.run_dir),
        "model": model,
        "model_id": model_id_of(model),
        "seed": run.get("seed", run.get("config", {}).get("train", {}).get("seed")),
        "experiment": run.get("experiment"),
        "corpus": run.get("corpus"),
        "units": "percent",
        "emotions": labels,
        "absent_classes": [emotion for emotion in EMOTIONS if emotion not in present],
        "n_folds": len(predictions.folds),
        "n_expected_folds": predictions.n_expected,
        "missing_folds": predictions.missing,
        "unfinished_folds": predictions.unfinished,
        "n_clips": int(len(predictions.true)),
        "confusion_counts": counts.tolist(),
        "confusion_percent": row_percent(counts),
        "recall": {emotion: _number(100.0 * value) for emotion, value in zip(EMOTIONS, recall)},
        "wa": _number(100.0 * float(np.mean(predictions.true == predictions.predicted))),
        "ua": _number(unweighted_accuracy(predictions.true, predictions.predicted)),
        "chance_ua": _number(100.0 / len(present)),  # UA of a constant or random guess
        "macro_f1": _number(macro_f1),
        "fold_accuracy_mean": _number(float(fold_accuracy.mean())) if fold_accuracy.size else None,
        # Sample standard deviation across folds (ddof=1); null with a single fold.
        "fold_accuracy_std": _number(float(fold_accuracy.std(ddof=1))) if fold_accuracy.size > 1 else None,
        "folds": folds,
    }


def summarize(run_dir: str | Path) -> dict[str, Any]:
    """Summarize a run folder and write its summary.json (atomically).

    Returns the summary dict (see `compute_summary`); `format_summary` makes it a table."""
    return summarize_predictions(runs.load_predictions(run_dir))


def summarize_predictions(predictions: Predictions) -> dict[str, Any]:
    """`summarize` for a run's predictions already read (`cremad.runs.load_predictions`)."""
    summary = compute_summary(predictions)
    runs.write_summary(predictions.run_dir, summary)
    log.info("%s: %s; summary.json written", predictions.run_dir, _fold_status(summary))
    return summary


@dataclasses.dataclass
class ModelResults:
    """One model's runs in a selection: per seed its predictions and summary, and the summary
    aggregated over the seeds (`cremad.stats.aggregate_seeds`). A combined result (a seed
    ensemble or a fusion, see `combined_results`) has one entry, keyed by its lowest seed, and
    names the results it is tested against."""

    model: str
    predictions: dict[int, Predictions]  # seed -> pooled fold predictions
    summaries: dict[int, dict[str, Any]]  # seed -> compute_summary
    summary: dict[str, Any]  # over seeds
    tested_against: tuple[str, ...] = ()  # empty for a run: runs are tested against each other

    @property
    def label(self) -> str:
        return model_label(self.model)


def model_order(name: str) -> tuple:
    """The models by number first, then the others (baselines, ensembles) by name."""
    model_id = model_id_of(name)
    return (model_id is None, model_id or 0, name)


def load_results(selected: dict[RunKey, Path]) -> dict[str, ModelResults]:
    """Predictions and summaries of every selected run with a finished fold, per model (paper
    models first); runs without one, and paper models without runs, are logged and left out."""
    by_model: dict[str, dict[int, Predictions]] = {}
    for key, path in selected.items():
        predictions = runs.load_predictions(path)
        if not predictions.folds:
            log.warning("%s: no finished folds in %s, left out", key.model, path)
            continue
        by_model.setdefault(key.model, {})[key.seed] = predictions
    for model_id in PAPER_MODEL_IDS:
        if model_name(model_id) not in {key.model for key in selected}:
            log.warning("model %d: no run folder, left out", model_id)
    results = {}
    for model in sorted(by_model, key=model_order):
        summaries = {
            seed: compute_summary(predictions) for seed, predictions in sorted(by_model[model].items())
        }
        for seed, summary in summaries.items():
            expected = summary["n_expected_folds"]
            if expected and summary["n_folds"] < expected:
                log.warning(
                    "%s seed %d: partial run, %d of %d folds finished",
                    model,
                    seed,
                    summary["n_folds"],
                    expected,
                )
        results[model] = ModelResults(
            model, dict(sorted(by_model[model].items())), summaries, aggregate_seeds(summaries)
        )
    if not results:
        raise CremadError("no model has a finished fold; run `cremad loso` first")
    return results


def _combined_result(predictions: Predictions, seeds: list[int], tested_against) -> ModelResults:
    """A combined result from its predictions; its summary lists the seeds it averages."""
    summary = compute_summary(predictions)
    over_seeds = {**aggregate_seeds({seeds[0]: summary}), "seeds": seeds, "n_seeds": len(seeds)}
    return ModelResults(
        predictions.model, {seeds[0]: predictions}, {seeds[0]: summary}, over_seeds, tuple(tested_against)
    )


def combined_results(results: dict[str, ModelResults]) -> dict[str, ModelResults]:
    """Beyond the paper, from the runs in `results` (name -> ModelResults): each model with
    several seeds as its seed ensemble, tested against every run, then that ensemble fused with
    each SVM baseline present (`cremad.ensembles.FUSION_WEIGHT`), tested against the ensemble and
    the baseline. Grouped by model: an ensemble, then its fusions. Baselines are deterministic and
    not ensembled; one run with several seeds is fused through its lowest seed."""
    baselines = {}
    for name in (name for name in results if name in BASELINE_NAMES):
        seed = min(results[name].predictions)
        if len(results[name].predictions) > 1:
            log.warning("%s: several seeds; fusions use seed %d", name, seed)
        baselines[name] = results[name].predictions[seed]
    combined = {}
    for model, result in results.items():
        if model in baselines or len(result.predictions) < 2:
            continue
        seeds = sorted(result.predictions)
        ensemble = ensembles.seed_ensemble(ensemble_name(model), result.predictions)
        combined[ensemble.model] = _combined_result(ensemble, seeds, list(results))
        for baseline, predictions in baselines.items():
            fused = ensembles.fuse(fusion_name(ensemble.model, baseline), ensemble, predictions)
            combined[fused.model] = _combined_result(fused, seeds, (ensemble.model, baseline))
    return combined


def _fold_status(summary: dict[str, Any]) -> str:
    expected = summary["n_expected_folds"]
    status = f"{summary['n_folds']}/{expected} folds" if expected else f"{summary['n_folds']} folds"
    gaps = len(summary["missing_folds"]) + len(summary["unfinished_folds"])
    if expected and summary["n_folds"] < expected:
        status += f", {expected - summary['n_folds']} missing (partial run)"
    elif gaps:
        status += f", {len(summary['unfinished_folds'])} unfinished (partial run)"
    return status


def _format(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_summary(summary: dict[str, Any]) -> str:
    """A readable text table of a summary: recall per class ("absent" for a class with no
    clip), WA, UA beside its chance level, macro-F1, fold accuracy and the row-normalized
    confusion matrix."""
    seed = f", seed {summary['seed']}" if summary.get("seed") is not None else ""
    lines = [
        f"{model_label(summary['model'])}{seed} ({summary['run_dir']}): {_fold_status(summary)}, "
        f"{summary['n_clips']} test clips"
    ]
    if summary["missing_folds"]:
        lines.append(f"  not started: {', '.join(summary['missing_folds'])}")
    if summary["unfinished_folds"]:
        lines.append(f"  unfinished:  {', '.join(summary['unfinished_folds'])}")
    recall = "  ".join(
        f"{EMOTION_NAMES[emotion]} {_format(summary['recall'][emotion])}"
        if emotion not in summary["absent_classes"]
        else f"{EMOTION_NAMES[emotion]} absent"
        for emotion in EMOTIONS
    )
    lines.append(f"  true-positive % (recall): {recall}")
    lines.append(
        f"  WA {_format(summary['wa'])}  UA {_format(summary['ua'])} (chance {_format(summary['chance_ua'])})"
        f"  macro-F1 {_format(summary['macro_f1'])}"
        f"  fold accuracy {_format(summary['fold_accuracy_mean'])} ± {_format(summary['fold_accuracy_std'])}"
    )
    lines.append("  confusion, % of true class (rows true, columns predicted):")
    lines.append("         " + "".join(f"{emotion:>7}" for emotion in EMOTIONS))
    for emotion, row in zip(EMOTIONS, summary["confusion_percent"]):
        cells = (
            "".join(f"{value:7.1f}" for value in row)
            if row is not None
            else "   absent (no clip of this class)"
        )
        lines.append(f"    {emotion:<5}{cells}")
    return "\n".join(lines)


def format_seeds(summary: dict[str, Any]) -> str:
    """One line: a model's numbers as mean ± sd over its seeds."""

    def cell(key: str) -> str:
        return f"{_format(summary[key])} ± {_format(summary[f'{key}_sd'])}"

    return (
        f"{model_label(summary['model'])} over {summary['n_seeds']} seeds "
        f"({', '.join(map(str, summary['seeds']))}): WA {cell('wa')}  UA {cell('ua')} "
        f"(chance {_format(summary['chance_ua'])})  macro-F1 {cell('macro_f1')}"
    )


def format_combined(result: ModelResults) -> str:
    """One line: a seed ensemble's or a fusion's numbers (one prediction per clip, no sd)."""
    (summary,) = result.summaries.values()
    seeds = ", ".join(map(str, result.summary["seeds"]))
    return (
        f"{result.label} (seeds {seeds}): WA {_format(summary['wa'])}  "
        f"UA {_format(summary['ua'])} (chance {_format(summary['chance_ua'])})  "
        f"macro-F1 {_format(summary['macro_f1'])}  {summary['n_clips']} clips, {_fold_status(summary)}"
    )


def add_arguments(parser) -> None:
    runs.add_selection_arguments(
        parser,
        "a run folder (runs/cremad/paper/model2/seed0) or any folder above run folders (default: runs)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    selected = runs.selected_runs(args)
    if len(selected) == 1:
        print(format_summary(summarize(next(iter(selected.values())))))
        return 0
    failed, by_model = 0, {}
    for key, run_dir in selected.items():
        try:
            predictions = runs.load_predictions(run_dir)
            summary = summarize_predictions(predictions)
        except CremadError as error:  # one empty run folder must not hide the others
            log.warning("%s", error)
            failed += 1
            continue
        print(format_summary(summary) + "\n")
        by_model.setdefault(key.model, {})[key.seed] = (predictions, summary)
    results = {}
    for model in sorted(by_model, key=model_order):
        seeds = dict(sorted(by_model[model].items()))
        summaries = {seed: summary for seed, (_, summary) in seeds.items()}
        predictions = {seed: predictions for seed, (predictions, _) in seeds.items()}
        results[model] = ModelResults(model, predictions, summaries, aggregate_seeds(summaries))
        if len(summaries) > 1:
            print(format_seeds(results[model].summary))
    for result in combined_results(results).values():
        print(format_combined(result))
    return 1 if failed else 0
