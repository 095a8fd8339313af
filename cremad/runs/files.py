"""The files of a fold (written by a fold runner, read by metrics and figures) and summary.json."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cremad import CremadError
from cremad.atomic import atomic_path, write_json
from cremad.config import EMOTIONS
from cremad.model_names import model_name
from cremad.runs.layout import (
    ATTENTION,
    CONFUSION,
    DONE,
    EXPECTED_FOLD_KEYS,
    FOLD_CONFIG,
    HISTORY,
    HISTORY_REFIT,
    MODEL_FILE,
    PREDICTION_COLUMNS,
    PREDICTIONS,
    SCALER,
    SUMMARY_JSON,
    fold_dir,
    fold_dirs,
    read_json,
    read_run,
)
from cremad.tables import write_csv

log = logging.getLogger(__name__)


# --- writing a fold ---------------------------------------------------------------------------


def pending_folds(run_dir: str | Path, actors: list[str], force: bool = False) -> list[str]:
    """The folds of `actors` still to run: those without done.json, or all of them with `force`."""
    return [actor for actor in actors if force or not (fold_dir(run_dir, actor) / DONE).is_file()]


def start_fold(folder: str | Path) -> Path:
    """Create a fold folder, or unmark it and drop an interrupted attempt's leftovers."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / DONE).unlink(missing_ok=True)
    for leftover in folder.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)
    return folder


def write_predictions(folder: Path, clip_ids, actors, labels, probabilities) -> None:
    """predictions.csv: one row per test clip, its true and predicted (argmax) emotion and the
    probabilities in EMOTIONS order."""
    rows = [
        [clip, actor, EMOTIONS[label], EMOTIONS[int(np.argmax(row))], *(f"{p:.6f}" for p in row)]
        for clip, actor, label, row in zip(clip_ids, actors, labels, probabilities)
    ]
    write_csv(Path(folder) / PREDICTIONS, PREDICTION_COLUMNS, rows)


def write_confusion(folder: Path, labels, predicted) -> np.ndarray:
    """confusion.csv: the fold's confusion counts, rows true, columns predicted."""
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predicted, labels=range(len(EMOTIONS)))  # rows = true
    write_csv(
        Path(folder) / CONFUSION,
        ["true\\predicted", *EMOTIONS],
        [[code, *row] for code, row in zip(EMOTIONS, matrix)],
    )
    return matrix


@contextlib.contextmanager
def history_loggers(*paths: str | Path):
    """One keras.callbacks.CSVLogger per path (a fold's history.csv and history-refit.csv), each
    writing its epochs while training runs under a hidden partial name that start_fold cleans;
    when the block ends without error each file a fit wrote takes its final name."""
    import keras

    partials = [Path(path).with_name(f".{Path(path).name}.tmp-{os.getpid()}") for path in paths]
    try:
        yield tuple(keras.callbacks.CSVLogger(str(partial)) for partial in partials)
        for partial, path in zip(partials, paths):
            if partial.is_file():  # the refit logger writes nothing without a refit
                os.replace(partial, path)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)


def history_paths(folder: str | Path) -> tuple[Path, Path]:
    """A fold's history.csv and history-refit.csv."""
    return Path(folder) / HISTORY, Path(folder) / HISTORY_REFIT


def write_scaler(folder: Path, mean: np.ndarray, std: np.ndarray) -> None:
    with atomic_path(Path(folder) / SCALER) as temporary:
        np.savez(temporary, mean=mean, std=std)


def write_attention(folder: Path, clip_ids, weights: np.ndarray) -> None:
    """attention.npz: the test clips' attention weights (clips, decoder steps, frames)."""
    with atomic_path(Path(folder) / ATTENTION) as temporary:
        np.savez_compressed(
            temporary, clips=np.asarray(clip_ids).astype(str), weights=weights.astype(np.float32)
        )


def save_model(folder: Path, model) -> None:
    with atomic_path(Path(folder) / MODEL_FILE) as temporary:
        model.save(temporary)


def finish_fold(
    folder: Path, clip_ids, actors, labels, probabilities, fold_config: dict[str, Any], **done_fields
) -> dict[str, Any]:
    """Write a fold's predictions.csv, confusion.csv and config.json, then done.json last (the
    fold counts as finished only now). `labels` are EMOTIONS indices, `probabilities` (n, 6).
    done.json holds the actor, accuracy, n_test, `done_fields` and the time; it is returned."""
    folder = Path(folder)
    labels = np.asarray(labels)
    predicted = np.asarray(probabilities).argmax(axis=1)
    write_predictions(folder, clip_ids, actors, labels, probabilities)
    write_confusion(folder, labels, predicted)
    write_json(folder / FOLD_CONFIG, fold_config)
    done = {
        "actor": fold_config["test_actor"],
        "accuracy": float(np.mean(predicted == labels)),
        "n_test": len(labels),
        **done_fields,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    write_json(folder / DONE, done)
    return done


# --- reading a run ----------------------------------------------------------------------------


@dataclasses.dataclass
class Predictions:
    """The pooled test predictions of a run's finished folds, one entry per test clip."""

    run_dir: Path
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
    def model(self) -> str:
        """The model name: run.json's, else the folder above seed<s>."""
        if self.run.get("model"):
            return str(self.run["model"])
        if self.run.get("model_id") is not None:
            return model_name(int(self.run["model_id"]))
        return Path(self.run_dir).resolve().parent.name

    @property
    def n_expected(self) -> int | None:
        """How many folds run.json asked for; None when it does not say."""
        for key in EXPECTED_FOLD_KEYS:
            if isinstance(self.run.get(key), list):
                return len(self.run[key])
        return None


def read_fold_predictions(path: Path) -> list[dict[str, str]]:
    """The rows of a finished fold's predictions.csv, checked for columns and emotion codes."""
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
                raise CremadError(
                    f"{path}: clip {row['clip']}: {column}={row[column]!r} "
                    f"is not one of {', '.join(EMOTIONS)}"
                )
    return rows


def load_predictions(run_dir: str | Path) -> Predictions:
    """Read the predictions of every finished fold of a run (a fold folder with done.json).
    Folds listed in run.json but absent, and fold folders without done.json, are reported in
    `.missing` / `.unfinished` and logged, never read."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CremadError(f"{run_dir}: no such run folder")
    run = read_run(run_dir)
    folders = fold_dirs(run_dir)
    finished = sorted(actor for actor, path in folders.items() if (path / DONE).is_file())
    unfinished = sorted(actor for actor, path in folders.items() if not (path / DONE).is_file())
    expected = next((run[key] for key in EXPECTED_FOLD_KEYS if isinstance(run.get(key), list)), [])
    missing = sorted(str(actor) for actor in expected if str(actor) not in folders)

    rows, done = [], {}
    for actor in finished:
        done[actor] = read_json(folders[actor] / DONE)
        rows.extend(read_fold_predictions(folders[actor] / PREDICTIONS))
    if unfinished:
        log.warning(
            "%s: %d fold(s) without done.json, not counted: %s",
            run_dir,
            len(unfinished),
            ", ".join(unfinished),
        )
    if missing:
        log.warning("%s: %d fold(s) not started: %s", run_dir, len(missing), ", ".join(missing))
    probabilities = np.array(
        [[float(row[f"p_{emotion}"]) for emotion in EMOTIONS] for row in rows], dtype=float
    )
    return Predictions(
        run_dir=run_dir,
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


def read_attention(run_dir: str | Path, actor: str, clip_id: str) -> np.ndarray | None:
    """The attention weights (decoder steps, frames) of `clip_id` in the fold that held `actor`
    out; None when that fold has no attention.npz or not that clip."""
    return (read_fold_attention(run_dir, actor) or {}).get(clip_id)


def read_fold_attention(run_dir: str | Path, actor: str) -> dict[str, np.ndarray] | None:
    """Every test clip's attention weights (decoder steps, frames) in the fold that held `actor`
    out, by clip id, read in one pass; None when that fold has no attention.npz."""
    path = fold_dir(run_dir, actor) / ATTENTION
    if not path.is_file():
        return None
    with np.load(path) as archive:
        clips, weights = archive["clips"].astype(str), np.asarray(archive["weights"], dtype=float)
    weights = weights.reshape(len(clips), -1, weights.shape[-1])  # (clips, steps, frames)
    return {str(clip): clip_weights for clip, clip_weights in zip(clips, weights)}


def write_summary(run_dir: str | Path, summary: dict[str, Any]) -> Path:
    path = Path(run_dir) / SUMMARY_JSON
    write_json(path, summary)
    return path


# --- moving a fold between machines -----------------------------------------------------------


def read_fold_files(folder: str | Path) -> dict[str, bytes]:
    """Every file of a finished fold folder, by name: what a fold trained on another machine
    sends back to the one that owns the run folder (`write_fold_files`)."""
    folder = Path(folder)
    if not (folder / DONE).is_file():
        raise CremadError(f"{folder}: not a finished fold (no {DONE})")
    return {
        path.name: path.read_bytes()
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".")
    }


def write_fold_files(folder: str | Path, files: dict[str, bytes], **done_fields) -> dict[str, Any]:
    """Write a fold's files (`read_fold_files`' output) into `folder`, each atomically and
    done.json last, with `done_fields` added to it; an earlier attempt's files are dropped first.
    Returns the done.json record."""
    if DONE not in files:
        raise CremadError(f"{folder}: the fold's files hold no {DONE}")
    unsafe = [name for name in files if Path(name).name != name or name.startswith(".")]
    if unsafe:
        raise CremadError(f"{folder}: refusing fold file name(s) {', '.join(unsafe)}")
    folder = start_fold(folder)
    for stale in folder.iterdir():
        if stale.is_file() and stale.name not in files:
            stale.unlink()
    for name, content in files.items():
        if name != DONE:
            with atomic_path(folder / name) as temporary:
                temporary.write_bytes(content)
    done = {**json.loads(files[DONE]), **done_fields}
    write_json(folder / DONE, done)
    return done
