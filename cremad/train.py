"""`cremad train`: one model on every actor of a corpus, for `cremad predict` to use on new audio.

    cremad train --model 2 --data DIR --out models/model2.keras

With the default recipe (train.early_stopping off) no actor is held out: every actor trains
for train.max_epochs. A recipe with early stopping (tuned.toml) holds train.validation_fraction of
the actors out to watch it (at least one, drawn by `cremad.splits.validation_mask` from the
seed) and, with train.refit, retrains on every actor for the epochs it chose.
`cremad.training.train_model` standardizes and trains exactly as in a LOSO fold. It writes

    models/model2.keras              the Keras model
    models/model2.json               the sidecar: model id, the resolved ExperimentConfig (feature
                                     config included), pad_to / n_frames, the standardization the
                                     final model was trained with and the actors it came from,
                                     the actors used, epochs, library versions
    models/model2.history.csv        the training history (and .history-refit.csv with refit)
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from cremad import CremadError, runs
from cremad.atomic import atomic_path, write_json
from cremad.config import EMOTIONS, ExperimentConfig, load_experiment, replace
from cremad.corpus import CORPORA, CORPUS_HELP, DEFAULT_CORPUS
from cremad.features import add_clip_arguments, clip_options
from cremad.model_names import MODEL_IDS, model_name

log = logging.getLogger(__name__)

SIDECAR_FORMAT = "cremad-model/1"


def sidecar_path(model_file: str | Path) -> Path:
    return Path(model_file).with_suffix(".json")


def train_on_all_actors(
    config: ExperimentConfig, features, model_id: int, out_file: str | Path, verbose: int = 0
) -> dict:
    """Train `model_id` on every actor of `features` (a FeatureSet); with train.early_stopping,
    validation actors held out of them watch it. Writes the model, its sidecar JSON and history;
    returns the sidecar."""
    from cremad.augment import augmented_inputs
    from cremad.splits import validation_mask
    from cremad.training import train_model

    out_file = Path(out_file)
    if out_file.suffix != ".keras":
        raise CremadError(f"--out {out_file}: the model file must end in .keras")
    actors = np.asarray(features.actors).astype(str)
    if config.train.early_stopping and len(set(actors)) < 2:
        raise CremadError(
            f"experiment {config.name}: train.early_stopping holds validation actors out of "
            f"training, so it needs at least 2 actors; the corpus has {len(set(actors))}"
        )
    if config.train.speaker_normalization:
        raise CremadError(
            f"experiment {config.name}: train.speaker_normalization needs each speaker's own "
            "statistics, which `cremad predict` cannot know for a new recording; train without it"
        )
    train = config.train
    validation = None  # without early stopping every actor trains for train.max_epochs
    if train.early_stopping:
        validation = validation_mask(actors, train.validation_fraction, train.seed)  # (n_clips,) bool
    out_file.parent.mkdir(parents=True, exist_ok=True)
    histories = out_file.with_suffix(".history.csv"), out_file.with_suffix(".history-refit.csv")
    with runs.history_loggers(*histories) as (fit_log, refit_log):
        result = train_model(
            config,
            model_id,
            features.features,
            np.asarray(features.labels),
            validation=validation,
            seed=train.seed,
            callbacks=(fit_log,),
            refit_callbacks=(refit_log,),
            verbose=verbose,
            frame_mask=features.speech_mask() if train.needs_frame_mask else None,
            copies=augmented_inputs(config, features, np.arange(len(actors))),
        )
    held_out = np.zeros(len(actors), bool) if validation is None else validation
    scaler_actors = sorted(set(actors if result.refit_history is not None else actors[~held_out]))
    sidecar = {
        "format": SIDECAR_FORMAT,
        "model_id": model_id,
        "emotions": list(EMOTIONS),
        "config": config.to_dict(),  # features, model and train settings, resolved
        "sample_rate": features.config.sample_rate,
        "pad_to": int(features.pad_to),
        "n_frames": int(features.features.shape[1]),
        # The statistics the final model was trained with: of the fit actors, or of every actor
        # when train.refit retrained the model on all of them.
        "scaler": {
            "mean": result.mean.tolist(),
            "std": result.std.tolist(),
            "actors": scaler_actors,
            "refit": result.refit_history is not None,
        },
        "feature_cache_key": features.cache_key,
        "n_clips": len(features.clips),
        "actors": sorted(set(actors.tolist())),
        "validation_actors": sorted(set(actors[held_out].tolist())),
        "epochs": result.epochs,
        "best_epoch": result.best_epoch,
        "epochs_trained": result.epochs_trained,
        "best_val_accuracy": (
            float(result.history["val_accuracy"][result.best_epoch - 1])
            if "val_accuracy" in result.history
            else None
        ),
        "versions": runs.library_versions(),
        "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with atomic_path(out_file) as temporary:
        result.model.save(temporary)
    write_json(sidecar_path(out_file), sidecar)
    return sidecar


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=int, choices=MODEL_IDS, default=2, help="model id (default: %(default)s)"
    )
    parser.add_argument("--data", required=True, help="corpus root or its audio folder")
    parser.add_argument("--corpus", choices=CORPORA, default=DEFAULT_CORPUS, help=CORPUS_HELP)
    add_clip_arguments(parser)
    parser.add_argument(
        "--experiment", default="paper", help="experiments/<NAME>.toml (default: %(default)s)"
    )
    parser.add_argument(
        "--out", help="model file (default: models/model<k>.keras); the sidecar .json goes beside it"
    )
    parser.add_argument("--epochs", type=int, help="override train.max_epochs")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--jobs", type=int, default=-1, help="feature extraction workers (-1: all cores)")
    parser.add_argument("--threads", type=int, help="TensorFlow CPU threads (default: all cores)")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args: argparse.Namespace) -> int:
    from cremad.augment import attach_augmented
    from cremad.features import load_features
    from cremad.process import limit_threads, warn_if_gpu_unseen

    limit_threads(args.threads)
    warn_if_gpu_unseen()
    config = load_experiment(args.experiment, model_id=args.model)
    if args.epochs is not None:
        config = replace(config, {"train": {"max_epochs": args.epochs}})
    out_file = Path(args.out or f"models/{model_name(args.model)}.keras")
    features = load_features(
        args.data,
        corpus=args.corpus,
        config=config.features,
        cache_dir=args.cache_dir,
        jobs=args.jobs,
        **clip_options(args),
    )
    features = attach_augmented(features, config.train, args.cache_dir, jobs=args.jobs)
    log.info(
        "model %d, experiment %s: %d clips of %d actors, %d frames",
        args.model,
        config.name,
        len(features.clips),
        len(set(features.actors)),
        features.n_frames,
    )
    sidecar = train_on_all_actors(config, features, args.model, out_file, verbose=args.verbose)
    scaler = sidecar["scaler"]
    if sidecar["validation_actors"]:
        how = (
            f"early stopping on {', '.join(sidecar['validation_actors'])}: {sidecar['epochs']} epochs, best "
            f"{sidecar['best_epoch']} (validation accuracy {sidecar['best_val_accuracy']:.3f})"
            + (f"; refit on all actors for {sidecar['best_epoch']} epochs" if scaler["refit"] else "")
        )
    else:
        how = f"every actor, {sidecar['epochs']} epochs, no early stopping"
    print(
        f"model {args.model} trained on {sidecar['n_clips']} clips of {len(sidecar['actors'])} actors ({how})"
    )
    print(f"wrote {out_file} and {sidecar_path(out_file)}")
    return 0
