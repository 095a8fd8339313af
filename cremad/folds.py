"""One leave-one-actor-out fold (section II-C): split, train, test, save.

`split_fold` is the one place that decides which clips each fold uses for what:

    test        the held-out actor's clips, used once, after training, for predictions only
    fit         the other actors minus the validation actors: weights, class weights and the
                standardization statistics come from these clips alone
    validation  a few *training* actors (never the test actor) for early stopping and the
                learning-rate schedule

`run_fold` reaches the features only through those index arrays: it hands the training
actors' clips (validation ones marked) to `cremad.training.train_model`, which standardizes, fits
and refits, then predicts the test actor's clips and writes the fold folder through
`cremad.runs`. The one exception is opt-in and beyond the paper: `train.speaker_normalization`
z-scores every actor with its own statistics, the test actor's from its own unlabelled clips
(never its labels).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, LeaveOneGroupOut

from cremad import runs
from cremad.config import ExperimentConfig
from cremad.training import class_weights, normalize_groups, prepare_inputs, train_model

log = logging.getLogger(__name__)


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


def validation_mask(
    actors: np.ndarray, validation_fraction: float, seed: int, test_actor: str = ""
) -> np.ndarray:
    """Boolean mask over clips (their actor ids): the clips of `validation_fraction` of the
    actors (at least one, never all), drawn by GroupShuffleSplit from seed and the fold's test
    actor ("" when none is held out, as in `cremad train`)."""
    actors = np.asarray(actors).astype(str)
    n_actors = len(set(actors))
    if n_actors < 2:
        raise ValueError("need at least 2 actors to hold some out for validation")
    n_validation = min(max(1, round(validation_fraction * n_actors)), n_actors - 1)
    random_state = (seed * 1_000_003 + zlib.crc32(test_actor.encode())) % 2**32
    splitter = GroupShuffleSplit(n_splits=1, test_size=n_validation, random_state=random_state)
    _, validation_part = next(splitter.split(actors, groups=actors))
    mask = np.zeros(len(actors), dtype=bool)
    mask[validation_part] = True
    return mask


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
    validation = validation_mask(actors[train_index], validation_fraction, seed, test_actor)
    fit_index, validation_index = train_index[~validation], train_index[validation]
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


def normalize_speakers(
    features: np.ndarray, actors: np.ndarray, frame_mask: np.ndarray | None = None
) -> np.ndarray:
    """Beyond the paper: z-score each actor's clips (n_clips, n_frames, n_mfcc) with that actor's
    own per-coefficient statistics (of the frames `frame_mask` marks, or all frames). It uses no
    labels, so the held-out actor's statistics come from its own audio alone, as a deployed
    system could compute them from a new speaker."""
    return normalize_groups(features, np.asarray(actors), frame_mask)


def model_inputs(config: ExperimentConfig, features, frame_mask: np.ndarray | None = None) -> np.ndarray:
    """Every clip's MFCCs as training starts from them: `features.features`, or with the opt-in
    train.speaker_normalization each actor z-scored by its own statistics (normalize_speakers;
    of the frames `frame_mask` marks when train.standardize_frames is "speech")."""
    if not config.train.speaker_normalization:
        return features.features
    scaler_mask = frame_mask if config.train.standardize_frames == "speech" else None
    return normalize_speakers(features.features, np.asarray(features.actors), scaler_mask)


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
    """Train paper model `model_id` on every actor but `test_actor`, test on `test_actor`, and
    write the fold folder `out_dir` (see `cremad.runs`). `features` is a FeatureSet (features,
    labels, actors, clip_ids). The seed is config.train.seed + fold_index, fold_index being the
    actor's place in the full fold list, so a fold trains the same alone, in a shard or in Ray.
    `callbacks` are extra Keras callbacks (e.g. a timer). Returns the done.json record."""
    from cremad.models import ATTENTION_MODEL_IDS, attention_model

    started = time.time()
    train = config.train
    folder = runs.start_fold(out_dir)
    split = split_fold(features.actors, test_actor, train.validation_fraction, train.seed)
    frame_mask = features.speech_mask() if train.needs_frame_mask else None  # (clips, frames)
    x_all, y_all = model_inputs(config, features, frame_mask), np.asarray(features.labels)
    train_index = np.sort(np.concatenate([split.fit_index, split.validation_index]))  # training actors' clips
    # Without early stopping no actor is held back: every training actor fits.
    validation = np.isin(train_index, split.validation_index) if train.early_stopping else None
    fit_index = split.fit_index if train.early_stopping else train_index
    seed = train.seed + fold_index
    result = train_model(
        config,
        model_id,
        x_all[train_index],
        y_all[train_index],
        validation=validation,
        seed=seed,
        callbacks=callbacks,
        verbose=verbose,
        frame_mask=None if frame_mask is None else frame_mask[train_index],
    )
    runs.write_history(folder, result.history)
    if result.refit_history is not None:
        runs.write_history(folder, result.refit_history, refit=True)
    runs.write_scaler(folder, result.mean, result.std)  # the statistics the final model was trained with

    x_test = prepare_inputs(
        x_all[split.test_index],
        result.mean,
        result.std,
        train.padding_value,
        None if frame_mask is None else frame_mask[split.test_index],
        train.utterance_normalization,
    )  # (n_test, frames, 13)
    y_test = y_all[split.test_index]
    probabilities = result.model.predict(x_test, batch_size=train.batch_size, verbose=0)  # (n_test, 6)
    clip_ids, test_actors = np.asarray(features.clip_ids)[split.test_index], features.actors[split.test_index]
    if model_id in ATTENTION_MODEL_IDS:
        weights = attention_model(result.model).predict(x_test, batch_size=train.batch_size, verbose=0)
        runs.write_attention(folder, clip_ids, weights)
    if save_model:
        runs.save_model(folder, result.model)
    fold_config = {
        "test_actor": test_actor,
        "train_actors": list(split.train_actors),
        "validation_actors": list(split.validation_actors) if train.early_stopping else [],
        "fit_actors": list(split.fit_actors) if train.early_stopping else list(split.train_actors),
        "n_fit": len(fit_index),
        "n_validation": len(split.validation_index) if train.early_stopping else 0,
        "n_test": len(split.test_index),
        "seed": seed,
        "fold_index": fold_index,
        "model_id": model_id,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "refit": train.refit,
        "class_weight": class_weights(y_all[fit_index], train.class_weight),
        "experiment": config.to_dict(),
        "versions": runs.library_versions(),
    }
    return runs.finish_fold(
        folder,
        clip_ids,
        test_actors,
        y_test,
        probabilities,
        fold_config,
        epochs=result.epochs,
        best_epoch=result.best_epoch,
        epochs_trained=result.epochs_trained,
        seconds=round(time.time() - started, 1),
    )
