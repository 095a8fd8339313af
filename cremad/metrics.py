"""Results of a leave-one-actor-out run, recomputed from its saved fold predictions (section III).

`load_predictions(model_dir)` reads `fold-*/predictions.csv` of every finished fold (one with
`done.json`) and names the folds that are missing or unfinished. `summarize(model_dir)` turns
them into the paper's numbers: the aggregated confusion matrix (per-fold matrices summed, rows
normalized, Fig. 3), per-class recall (true-positive %, Table II), WA (accuracy), UA (mean
recall), macro-F1 and the mean and standard deviation of the per-fold accuracy, and writes them
to `model_dir/summary.json`. Every number is in percent.

    cremad summarize --runs runs/cremad/model2     # one model
    cremad summarize --runs runs/cremad            # every model<k> folder below
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from cremad import CremadError
from cremad.atomic import write_json
from cremad.config import EMOTION_NAMES, EMOTIONS

log = logging.getLogger(__name__)

FOLD_PREFIX = "fold-"
PREDICTION_COLUMNS = ("clip", "actor", "true", "predicted") + tuple(f"p_{emotion}" for emotion in EMOTIONS)
MODEL_DIR_PATTERN = re.compile(r"^model(?P<model_id>\d+)$")
# run.json keys that may list the folds a run was asked for (the first one present wins).
EXPECTED_FOLD_KEYS = ("folds", "test_actors", "actors")


@dataclasses.dataclass
class Predictions:
    """The pooled test predictions of a model's finished folds, one entry per test clip."""

    model_dir: Path
    run: dict[str, Any]  # run.json, {} when absent
    clip_ids: np.ndarray  # (n,) str
    actors: np.ndarray  # (n,) str, the held-out actor of the clip's fold
    true: np.ndarray  # (n,) str emotion codes
    predicted: np.ndarray  # (n,) str emotion codes
    probabilities: np.ndarray  # (n, 6) float, columns in EMOTIONS order
    folds: list[str]  # finished folds (actor ids), sorted
    missing: list[str]  # folds listed in run.json that have no folder at all
    unfinished: list[str]  # fold folders without done.json
    done: dict[str, dict[str, Any]]  # actor -> done.json

    @property
    def model_id(self) -> int | None:
        return model_id_of(self.model_dir, self.run)

    @property
    def n_expected(self) -> int | None:
        """How many folds run.json asked for; None when it does not say."""
        for key in EXPECTED_FOLD_KEYS:
            if isinstance(self.run.get(key), list):
                return len(self.run[key])
        return None


def model_id_of(model_dir: Path, run: dict[str, Any] | None = None) -> int | None:
    """The model number of a run folder: run.json's model_id, else the k of its name model<k>."""
    if run is None:
        run = _read_json(model_dir / "run.json") if (model_dir / "run.json").is_file() else {}
    if run.get("model_id") is not None:
        return int(run["model_id"])
    match = MODEL_DIR_PATTERN.match(Path(model_dir).name)
    return int(match["model_id"]) if match else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise CremadError(f"{path}: not valid JSON ({error})") from error


def _read_fold_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise CremadError(f"{path}: missing, although done.json marks the fold finished")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        absent = [column for column in PREDICTION_COLUMNS if column not in (reader.fieldnames or [])]
        if absent:
            raise CremadError(f"{path}: missing column(s) {', '.join(absent)}")
        rows = list(reader)
    for row in rows:
        for column in ("true", "predicted"):
            if row[column] not in EMOTIONS:
                raise CremadError(f"{path}: clip {row['clip']}: {column}={row[column]!r} "
                                  f"is not one of {', '.join(EMOTIONS)}")
    return rows


def load_predictions(model_dir: str | Path) -> Predictions:
    """Read the predictions of every finished fold under `model_dir` (a `fold-<actor>` folder
    with `done.json`). Folds listed in run.json but absent, and fold folders without done.json,
    are reported in `.missing` / `.unfinished` and logged, never read."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CremadError(f"{model_dir}: no such run folder")
    run_path = model_dir / "run.json"
    run = _read_json(run_path) if run_path.is_file() else {}
    fold_dirs = {path.name[len(FOLD_PREFIX):]: path for path in model_dir.glob(f"{FOLD_PREFIX}*") if path.is_dir()}
    finished = sorted(actor for actor, path in fold_dirs.items() if (path / "done.json").is_file())
    unfinished = sorted(actor for actor, path in fold_dirs.items() if not (path / "done.json").is_file())
    expected = next((run[key] for key in EXPECTED_FOLD_KEYS if isinstance(run.get(key), list)), [])
    missing = sorted(str(actor) for actor in expected if str(actor) not in fold_dirs)

    rows, done = [], {}
    for actor in finished:
        done[actor] = _read_json(fold_dirs[actor] / "done.json")
        rows.extend(_read_fold_csv(fold_dirs[actor] / "predictions.csv"))
    if unfinished:
        log.warning("%s: %d fold(s) without done.json, not counted: %s",
                    model_dir, len(unfinished), ", ".join(unfinished))
    if missing:
        log.warning("%s: %d fold(s) not started: %s", model_dir, len(missing), ", ".join(missing))
    probabilities = np.array([[float(row[f"p_{emotion}"]) for emotion in EMOTIONS] for row in rows], dtype=float)
    return Predictions(
        model_dir=model_dir,
        run=run,
        clip_ids=np.array([row["clip"] for row in rows], dtype=str),
        actors=np.array([row["actor"] for row in rows], dtype=str),
        true=np.array([row["true"] for row in rows], dtype=str),
        predicted=np.array([row["predicted"] for row in rows], dtype=str),
        probabilities=probabilities.reshape(len(rows), len(EMOTIONS)),
        folds=finished,
        missing=missing,
        unfinished=unfinished,
        done=done,
    )


def recall_percent(counts: np.ndarray) -> np.ndarray:
    """Per-class recall in % from a confusion matrix (rows = true); NaN for a class never seen."""
    totals = counts.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, 100.0 * np.diag(counts) / totals, np.nan)


def unweighted_accuracy(true: np.ndarray, predicted: np.ndarray) -> float:
    """UA in %: the mean recall over the classes present in `true`."""
    return float(np.nanmean(recall_percent(confusion_matrix(true, predicted, labels=list(EMOTIONS)))))


def _number(value: float) -> float | None:
    """A JSON-safe number: NaN (an undefined recall or a one-fold std) becomes null."""
    return None if value is None or not np.isfinite(value) else round(float(value), 4)


def compute_summary(predictions: Predictions) -> dict[str, Any]:
    """The paper's numbers from pooled fold predictions, without writing anything."""
    if not predictions.folds:
        raise CremadError(f"{predictions.model_dir}: no finished folds (no fold-*/done.json)")
    labels = list(EMOTIONS)
    # Summing per-fold confusion matrices is the same as one matrix over the pooled predictions.
    counts = confusion_matrix(predictions.true, predictions.predicted, labels=labels)  # (6, 6)
    totals = counts.sum(axis=1, keepdims=True)
    row_percent = np.divide(100.0 * counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    recall = recall_percent(counts)
    present = [emotion for emotion, total in zip(EMOTIONS, totals[:, 0]) if total > 0]
    macro_f1 = 100.0 * f1_score(predictions.true, predictions.predicted, labels=present, average="macro",
                                zero_division=0)

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
                log.warning("fold %s: done.json accuracy %s disagrees with predictions.csv (%.2f%%)",
                            actor, recorded, accuracy)
    fold_accuracy = np.array([fold["accuracy"] for fold in folds.values() if fold["accuracy"] is not None])

    run = predictions.run
    return {
        "model_dir": str(predictions.model_dir),
        "model_id": predictions.model_id,
        "experiment": run.get("experiment"),
        "corpus": run.get("corpus"),
        "units": "percent",
        "emotions": labels,
        "n_folds": len(predictions.folds),
        "n_expected_folds": predictions.n_expected,
        "missing_folds": predictions.missing,
        "unfinished_folds": predictions.unfinished,
        "n_clips": int(len(predictions.true)),
        "confusion_counts": counts.tolist(),
        "confusion_percent": [[round(float(value), 4) for value in row] for row in row_percent],
        "recall": {emotion: _number(value) for emotion, value in zip(EMOTIONS, recall)},
        "wa": _number(100.0 * float(np.mean(predictions.true == predictions.predicted))),
        "ua": _number(float(np.nanmean(recall))),
        "macro_f1": _number(macro_f1),
        "fold_accuracy_mean": _number(float(fold_accuracy.mean())) if fold_accuracy.size else None,
        # Sample standard deviation across folds (ddof=1); null with a single fold.
        "fold_accuracy_std": _number(float(fold_accuracy.std(ddof=1))) if fold_accuracy.size > 1 else None,
        "folds": folds,
    }


def summarize(model_dir: str | Path) -> dict[str, Any]:
    """Summarize a model's run folder and write `model_dir/summary.json` (atomically).

    Returns the summary dict (see `compute_summary`); `format_summary` makes it a table."""
    predictions = load_predictions(model_dir)
    summary = compute_summary(predictions)
    write_json(Path(model_dir) / "summary.json", summary)
    log.info("%s: %s; summary.json written", model_dir, _fold_status(summary))
    return summary


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
    """A readable text table of a summary: recall per class, WA, UA, macro-F1, fold accuracy and
    the row-normalized confusion matrix."""
    model = f"Model {summary['model_id']}" if summary["model_id"] is not None else summary["model_dir"]
    lines = [f"{model} ({summary['model_dir']}): {_fold_status(summary)}, {summary['n_clips']} test clips"]
    if summary["missing_folds"]:
        lines.append(f"  not started: {', '.join(summary['missing_folds'])}")
    if summary["unfinished_folds"]:
        lines.append(f"  unfinished:  {', '.join(summary['unfinished_folds'])}")
    recall = "  ".join(f"{EMOTION_NAMES[emotion]} {_format(summary['recall'][emotion])}" for emotion in EMOTIONS)
    lines.append(f"  true-positive % (recall): {recall}")
    lines.append(
        f"  WA {_format(summary['wa'])}  UA {_format(summary['ua'])}  macro-F1 {_format(summary['macro_f1'])}"
        f"  fold accuracy {_format(summary['fold_accuracy_mean'])} ± {_format(summary['fold_accuracy_std'])}"
    )
    lines.append("  confusion, % of true class (rows true, columns predicted):")
    lines.append("         " + "".join(f"{emotion:>7}" for emotion in EMOTIONS))
    for emotion, row in zip(EMOTIONS, summary["confusion_percent"]):
        lines.append(f"    {emotion:<5}" + "".join(f"{value:7.1f}" for value in row))
    return "\n".join(lines)


def is_model_dir(path: Path) -> bool:
    """A model's run folder holds run.json or fold-<actor> folders."""
    if not path.is_dir():
        return False
    return (path / "run.json").is_file() or any(child.is_dir() for child in path.glob(f"{FOLD_PREFIX}*"))


def find_model_dirs(runs: str | Path, max_depth: int = 4) -> list[Path]:
    """`runs` itself if it is a model run folder, else every run folder below it (sorted)."""
    runs = Path(runs)
    if not runs.is_dir():
        raise CremadError(f"--runs {runs}: no such folder")
    if is_model_dir(runs):
        return [runs]
    found, frontier = [], [runs]
    for _ in range(max_depth):
        frontier = [child for folder in frontier for child in sorted(folder.iterdir())
                    if child.is_dir() and not child.name.startswith((".", FOLD_PREFIX))]
        found.extend(path for path in frontier if is_model_dir(path))
        frontier = [path for path in frontier if not is_model_dir(path)]
    if not found:
        raise CremadError(f"--runs {runs}: no run folders in it "
                          "(expected model<k>/fold-<actor>/ folders written by `cremad loso`)")
    return sorted(found)


def add_arguments(parser) -> None:
    parser.add_argument("--runs", required=True,
                        help="a model's run folder (runs/cremad/model2) or a folder holding several")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    model_dirs = find_model_dirs(args.runs)
    if len(model_dirs) == 1:
        print(format_summary(summarize(model_dirs[0])))
        return 0
    failed = 0
    for model_dir in model_dirs:
        try:
            summary = summarize(model_dir)
        except CremadError as error:  # one empty model folder must not hide the others
            log.warning("%s", error)
            failed += 1
            continue
        print(format_summary(summary) + "\n")
    return 1 if failed else 0
