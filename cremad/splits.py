"""Who is used for what in a leave-one-actor-out fold (section II-C), decided in one place.

    test        the held-out actor's clips, used once, after training, for predictions only
    fit         the other actors minus the validation actors: weights, class weights and the
                standardization statistics come from these clips alone
    validation  a few *training* actors (never the test actor) for early stopping and the
                learning-rate schedule; none when the recipe does not stop early

Index arrays and actor ids only: no Keras, no files, so run folders and the SVM baseline can
use the same folds as the four models.
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, LeaveOneGroupOut


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


def split_fold(
    actors: np.ndarray, test_actor: str, validation_fraction: float, seed: int, with_validation: bool = True
) -> FoldSplit:
    """Split clips (by their actor ids, one per clip) into fit / validation / test for the fold
    that holds out `test_actor`. With `with_validation` (a recipe that stops early) the
    validation actors are `validation_fraction` of the training actors (at least one), drawn by
    GroupShuffleSplit from seed and test actor, so a fold gets the same ones whatever else runs
    beside it; without it every training actor fits, and one training actor is enough."""
    actors = np.asarray(actors).astype(str)
    if test_actor not in set(actors):
        raise ValueError(f"test actor {test_actor!r} has no clips (actors: {', '.join(sorted(set(actors)))})")
    if not 0 < validation_fraction < 1:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    test_index = np.flatnonzero(actors == test_actor)
    train_index = np.flatnonzero(actors != test_actor)
    train_actors = tuple(sorted(set(actors[train_index])))
    if with_validation and len(train_actors) < 2:
        raise ValueError(f"fold {test_actor}: need at least 2 training actors (one for validation)")
    if not train_actors:
        raise ValueError(f"fold {test_actor}: no other actor to train on")
    validation = (
        validation_mask(actors[train_index], validation_fraction, seed, test_actor)
        if with_validation
        else np.zeros(len(train_index), dtype=bool)
    )
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
