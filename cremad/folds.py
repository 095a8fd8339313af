"""One leave-one-actor-out fold (section II-C): split, train, test, save.

`run_fold` reaches the features only through `cremad.splits.split_fold`'s index arrays: it
hands the training actors' clips (validation ones marked) to `cremad.training.train_model`,
which standardizes, fits and refits, then predicts the test actor's clips and writes the fold
folder through `cremad.runs`. The one exception is opt-in and beyond the paper:
`train.speaker_normalization` z-scores every actor with its own statistics, the test actor's
from its own unlabelled clips (never its labels; `cremad.scaling.model_inputs`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from cremad import runs
from cremad.augment import augmented_inputs
from cremad.config import ExperimentConfig
from cremad.model_names import ATTENTION_MODEL_IDS
from cremad.models import attention_model
from cremad.scaling import class_weights, model_inputs, prepare_inputs
from cremad.splits import split_fold
from cremad.training import train_model

log = logging.getLogger(__name__)


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
    started = time.time()
    train = config.train
    folder = runs.start_fold(out_dir)
    # Without early stopping no actor is held back: every training actor fits.
    split = split_fold(
        features.actors, test_actor, train.validation_fraction, train.seed, train.early_stopping
    )
    frame_mask = features.speech_mask() if train.needs_frame_mask else None  # (clips, frames)
    x_all, y_all = model_inputs(config, features, frame_mask), np.asarray(features.labels)
    train_index = np.sort(np.concatenate([split.fit_index, split.validation_index]))  # training actors' clips
    validation = np.isin(train_index, split.validation_index) if train.early_stopping else None
    seed = train.seed + fold_index
    with runs.history_loggers(*runs.history_paths(folder)) as (fit_log, refit_log):
        result = train_model(
            config,
            model_id,
            x_all[train_index],
            y_all[train_index],
            validation=validation,
            seed=seed,
            callbacks=(*callbacks, fit_log),
            refit_callbacks=(*callbacks, refit_log),
            verbose=verbose,
            frame_mask=None if frame_mask is None else frame_mask[train_index],
            copies=augmented_inputs(config, features, train_index),  # the training actors' copies only
        )
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
        "validation_actors": list(split.validation_actors),
        "fit_actors": list(split.fit_actors),
        "n_fit": len(split.fit_index),
        "n_validation": len(split.validation_index),
        "n_test": len(split.test_index),
        "seed": seed,
        "fold_index": fold_index,
        "model_id": model_id,
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "refit": train.refit,
        "class_weight": class_weights(y_all[split.fit_index], train.class_weight),
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
