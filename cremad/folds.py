"""One leave-one-actor-out fold (section II-C): split, standardize, train, test, save.

`split_fold` is the one place that decides which clips each fold uses for what:

    test        the held-out actor's clips, used once, after training, for predictions only
    fit         the other actors minus the validation actors: weights, class weights and the
                standardization statistics come from these clips alone
    validation  a few *training* actors (never the test actor) for early stopping and the
                learning-rate schedule

`run_fold` reaches the features only through those index arrays. The one exception is opt-in
and beyond the paper: `train.speaker_normalization` z-scores every actor with its own statistics,
the test actor's from its own unlabelled clips (never its labels). Every file it writes is
atomic (a temporary name in the fold folder, then os.replace) and `done.json` comes last, so a
fold counts as finished only once all its files are complete.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import platform
import sys
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, LeaveOneGroupOut

from cremad.atomic import atomic_path, write_json  # noqa: F401 (write_json is used by loso)
from cremad.config import EMOTIONS, ExperimentConfig

log = logging.getLogger(__name__)

DONE = "done.json"
# Files a finished fold holds (history-refit.csv with train.refit only, attention.npz for models
# 1 and 2 only, model.keras unless --no-save-models); run_fold writes them in this order.
FOLD_FILES = ("history.csv", "history-refit.csv", "scaler.npz", "predictions.csv", "confusion.csv", "attention.npz",
              "model.keras", "config.json", DONE)


def loso_actors(actors: np.ndarray) -> list[str]:
    """The test actor of each leave-one-group-out fold, in sklearn's (sorted) fold order."""
    actors = np.asarray(actors)
    folds = LeaveOneGroupOut().split(np.zeros(len(actors)), groups=actors)
    return [str(actors[test_index[0]]) for _, test_index in folds]


@dataclasses.dataclass(frozen=True)
class FoldSplit:
    """Who is used for what in one fold; the index arrays point into the feature set."""

    test_actor: str
    train_actors: tuple[str, ...]  # every actor but the test actor
    validation_actors: tuple[str, ...]  # a few of the training actors, for early stopping
    fit_actors: tuple[str, ...]  # training actors minus validation actors: what the model fits
    fit_index: np.ndarray
    validation_index: np.ndarray
    test_index: np.ndarray


def split_fold(actors: np.ndarray, test_actor: str, validation_fraction: float, seed: int) -> FoldSplit:
    """Split clips (by their actor ids, one per clip) into fit / validation / test for the fold
    that holds out `test_actor`. The validation actors are `validation_fraction` of the training
    actors (at least one), drawn by GroupShuffleSplit from seed and test actor, so a fold gets
    the same ones whatever else runs beside it."""
    actors = np.asarray(actors).astype(str)
    if test_actor not in set(actors):
        raise ValueError(f"test actor {test_actor!r} has no clips (actors: {', '.join(sorted(set(actors)))})")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    test_index = np.flatnonzero(actors == test_actor)
    train_index = np.flatnonzero(actors != test_actor)
    train_actors = tuple(sorted(set(actors[train_index])))
    if len(train_actors) < 2:
        raise ValueError(f"fold {test_actor}: need at least 2 training actors (one for validation)")
    n_validation = min(max(1, round(validation_fraction * len(train_actors))), len(train_actors) - 1)
    random_state = (seed * 1_000_003 + zlib.crc32(test_actor.encode())) % 2**32
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_validation, random_state=random_state)
    fit_part, validation_part = next(splitter.split(train_index, groups=actors[train_index]))
    fit_index, validation_index = train_index[fit_part], train_index[validation_part]
    split = FoldSplit(
        test_actor=test_actor,
        train_actors=train_actors,
        validation_actors=tuple(sorted(set(actors[validation_index]))),
        fit_actors=tuple(sorted(set(actors[fit_index]))),
        fit_index=fit_index,
        validation_index=validation_index,
        test_index=test_index,
    )
    if test_actor in split.train_actors or set(split.validation_actors) & set(split.fit_actors):
        raise RuntimeError(f"fold {test_actor}: actor sets overlap")  # cannot happen; never silent
    return split


def fit_scaler(features: np.ndarray, enabled: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-coefficient mean and std over every frame of `features` (n_clips, n_frames, n_mfcc).

    Zero-padding frames are included: the paper pads every clip to the longest and feeds the
    padded sequence as it is, so the padding is part of the input the model sees and the
    statistics describe that input (there is also no padding mask in the models to respect).
    With `enabled=False` the identity (mean 0, std 1) is returned."""
    n_features = features.shape[-1]
    if not enabled:
        return np.zeros(n_features, np.float32), np.ones(n_features, np.float32)
    frames = features.reshape(-1, n_features)
    mean = frames.mean(axis=0, dtype=np.float64)
    std = frames.std(axis=0, dtype=np.float64)
    std[std < 1e-8] = 1.0  # a constant coefficient stays constant rather than dividing by zero
    return mean.astype(np.float32), std.astype(np.float32)


def normalize_speakers(features: np.ndarray, actors: np.ndarray) -> np.ndarray:
    """Beyond the paper: z-score each actor's clips (n_clips, n_frames, n_mfcc) with that actor's
    own per-coefficient statistics. It uses no labels, so the held-out actor's statistics come
    from its own audio alone, as a deployed system could compute them from a new speaker."""
    normalized = np.empty_like(features)
    for actor in np.unique(actors):
        mask = actors == actor
        mean, std = fit_scaler(features[mask])
        normalized[mask] = (features[mask] - mean) / std
    return normalized


def class_weights(labels: np.ndarray, mode: str, n_classes: int = len(EMOTIONS)) -> dict[int, float] | None:
    """Keras class_weight: "balanced" is n_samples / (n_present_classes * count), "none" is None."""
    if mode == "none":
        return None
    if mode != "balanced":
        raise ValueError(f"train.class_weight must be 'balanced' or 'none', got {mode!r}")
    counts = np.bincount(labels, minlength=n_classes)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = len(labels) / (present.sum() * counts[present])
    return {label: float(weight) for label, weight in enumerate(weights)}


def library_versions() -> dict[str, str]:
    import keras
    import sklearn

    import cremad

    versions = {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
                "keras_backend": keras.config.backend(), "scikit-learn": sklearn.__version__,
                "cremad": cremad.__version__}
    backend_module = sys.modules.get(keras.config.backend())
    if backend_module is not None:
        versions[keras.config.backend()] = getattr(backend_module, "__version__", "?")
    return versions


def write_predictions(path: Path, clip_ids, actors, labels, probabilities) -> None:
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["clip", "actor", "true", "predicted", *(f"p_{code}" for code in EMOTIONS)])
        for clip, actor, label, row in zip(clip_ids, actors, labels, probabilities):
            writer.writerow([clip, actor, EMOTIONS[label], EMOTIONS[int(np.argmax(row))],
                             *(f"{p:.6f}" for p in row)])


def write_confusion(path: Path, labels, predicted) -> np.ndarray:
    from sklearn.metrics import confusion_matrix

    matrix = confusion_matrix(labels, predicted, labels=range(len(EMOTIONS)))  # rows = true
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["true\\predicted", *EMOTIONS])
        for code, row in zip(EMOTIONS, matrix):
            writer.writerow([code, *row])
    return matrix


def clear_fold(fold_dir: Path) -> None:
    """Remove a fold's done marker and leftovers of an interrupted attempt before (re)training."""
    (fold_dir / DONE).unlink(missing_ok=True)
    for leftover in fold_dir.glob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)


def fit_model(config: ExperimentConfig, model_id: int, seed: int, x, y, validation, callbacks,
              verbose: int = 0, epochs: int | None = None):
    """Build, compile (optimizer and learning rate from config.train, sparse categorical
    cross-entropy) and fit model `model_id` from seed `seed`. With `validation` data, early
    stopping (best weights restored) and the plateau schedule watch its loss. Returns the model,
    its history (per-epoch logs) and the EarlyStopping callback (None without validation)."""
    import keras

    from cremad.models import build_model

    train = config.train
    keras.backend.clear_session()  # drop the previous fold's graphs; many folds share a process
    keras.utils.set_random_seed(seed)
    model = build_model(model_id, n_frames=x.shape[1], n_features=x.shape[2], n_classes=len(EMOTIONS),
                        config=config.model)
    optimizer = keras.optimizers.get({"class_name": train.optimizer, "config": {"learning_rate": train.learning_rate}})
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    early_stopping = None
    if validation is not None:
        early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", patience=train.patience,
                                                       restore_best_weights=True)
        callbacks = [early_stopping, *callbacks]
        if train.reduce_lr_patience > 0:
            callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5,
                                                               patience=train.reduce_lr_patience))
    history = model.fit(x, y, validation_data=validation, epochs=epochs or train.max_epochs,
                        batch_size=train.batch_size, class_weight=class_weights(y, train.class_weight),
                        shuffle=True, callbacks=callbacks, verbose=1 if verbose else 0)
    return model, history.history, early_stopping


def run_fold(
    config: ExperimentConfig,
    features,
    test_actor: str,
    out_dir: str | Path,
    model_id: int,
    fold_index: int = 0,
    save_model: bool = True,
    verbose: int = 0,
    callbacks: tuple = (),
) -> dict[str, Any]:
    """Train model `model_id` on every actor but `test_actor`, test on `test_actor`, and write
    the fold folder `out_dir` (see FOLD_FILES). `features` is a FeatureSet (features, labels,
    actors, clip_ids). The seed is config.train.seed + fold_index, fold_index being the actor's
    place in the full fold list, so a fold trains the same alone, in a shard or in Ray.
    `callbacks` are extra Keras callbacks (e.g. a timer). Returns the done.json record."""
    import keras

    from cremad.models import attention_model

    started = time.time()
    train = config.train
    fold_dir = Path(out_dir)
    fold_dir.mkdir(parents=True, exist_ok=True)
    clear_fold(fold_dir)

    split = split_fold(features.actors, test_actor, train.validation_fraction, train.seed)
    x_all, y_all = features.features, np.asarray(features.labels)
    if train.speaker_normalization:  # per actor, each from its own clips; see normalize_speakers
        x_all = normalize_speakers(x_all, np.asarray(features.actors))
    mean, std = fit_scaler(x_all[split.fit_index], enabled=train.standardize)  # fit actors only
    x_fit, y_fit = (x_all[split.fit_index] - mean) / std, y_all[split.fit_index]  # (N, x, 13)
    x_validation, y_validation = (x_all[split.validation_index] - mean) / std, y_all[split.validation_index]
    x_test, y_test = (x_all[split.test_index] - mean) / std, y_all[split.test_index]

    seed = train.seed + fold_index
    # CSVLogger appends epoch by epoch, so it writes under a temporary name until training ends.
    with atomic_path(fold_dir / "history.csv") as history_path:
        model, history, early_stopping = fit_model(config, model_id, seed, x_fit, y_fit, (x_validation, y_validation),
                                          [*callbacks, keras.callbacks.CSVLogger(str(history_path))], verbose)
    epochs, best_epoch = len(history["loss"]), early_stopping.best_epoch + 1
    if train.refit:
        # Early stopping only chose the epoch count; now every training actor trains a fresh model
        # for that long, with the learning rates the first run used, and a scaler of them all.
        # (ReduceLROnPlateau logs the rate of each epoch; without it the rate never changed.)
        logged = history.get("learning_rate", [train.learning_rate] * best_epoch)
        learning_rates = [float(rate) for rate in logged[:best_epoch]]
        train_index = np.sort(np.concatenate([split.fit_index, split.validation_index]))
        mean, std = fit_scaler(x_all[train_index], enabled=train.standardize)  # training actors only
        x_train, x_test = (x_all[train_index] - mean) / std, (x_all[split.test_index] - mean) / std
        schedule = keras.callbacks.LearningRateScheduler(lambda epoch: learning_rates[epoch])
        with atomic_path(fold_dir / "history-refit.csv") as history_path:
            model, _, _ = fit_model(config, model_id, seed, x_train, y_all[train_index], None,
                                 [*callbacks, schedule, keras.callbacks.CSVLogger(str(history_path))],
                                 verbose, epochs=best_epoch)
    with atomic_path(fold_dir / "scaler.npz") as temporary:
        np.savez(temporary, mean=mean, std=std)  # the statistics the final model was trained with

    probabilities = model.predict(x_test, batch_size=train.batch_size, verbose=0)  # (n_test, 6)
    predicted = probabilities.argmax(axis=1)
    clip_ids, test_actors = np.asarray(features.clip_ids)[split.test_index], features.actors[split.test_index]
    write_predictions(fold_dir / "predictions.csv", clip_ids, test_actors, y_test, probabilities)
    write_confusion(fold_dir / "confusion.csv", y_test, predicted)
    if model_id in (1, 2):
        weights = attention_model(model).predict(x_test, batch_size=train.batch_size, verbose=0)
        with atomic_path(fold_dir / "attention.npz") as temporary:
            np.savez_compressed(temporary, clips=clip_ids.astype(str), weights=weights.astype(np.float32))
    if save_model:
        with atomic_path(fold_dir / "model.keras") as temporary:
            model.save(temporary)

    accuracy = float(np.mean(predicted == y_test))
    seconds = round(time.time() - started, 1)
    write_json(fold_dir / "config.json", {
        "test_actor": test_actor,
        "train_actors": list(split.train_actors),
        "validation_actors": list(split.validation_actors),
        "fit_actors": list(split.fit_actors),
        "n_fit": len(split.fit_index), "n_validation": len(split.validation_index),
        "n_test": len(split.test_index),
        "seed": seed, "fold_index": fold_index, "model_id": model_id,
        "epochs": epochs, "best_epoch": best_epoch, "refit": train.refit,
        "class_weight": class_weights(y_fit, train.class_weight),
        "experiment": config.to_dict(),
        "versions": library_versions(),
    })
    done = {"actor": test_actor, "accuracy": accuracy, "n_test": len(split.test_index), "epochs": epochs,
            "best_epoch": best_epoch, "epochs_trained": epochs + (best_epoch if train.refit else 0),
            "seconds": seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(fold_dir / DONE, done)  # last: the fold is finished only now
    return done
