"""`cremad select`: choose a training recipe by validation inside the training actors.

The protocol, for each outer fold (the actor T that leave-one-actor-out would test on):

    1. T's clips are dropped before anything else happens; nothing below can see them.
    2. One more actor S, the selection actor, is drawn (from the seed and T) among the rest.
    3. The candidate recipe trains on the remaining actors for `epochs` epochs without early
       stopping; after every epoch its unweighted accuracy (UA) on S is logged.

The score of "recipe R trained for N epochs" is that curve at epoch N, averaged over outer
folds, seeds and models. The recipe (and epoch count) with the best score becomes the default;
only then are the test folds run. Candidates are experiment TOML files (experiments/candidates/).
Results are kept in one JSON file, rewritten atomically after every curve, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from cremad import CremadError
from cremad.arguments import comma_list, nonnegative_int
from cremad.atomic import write_json
from cremad.config import ExperimentConfig, replace
from cremad.corpus import CORPORA, CORPUS_HELP, DEFAULT_CORPUS
from cremad.features import add_clip_arguments, clip_options
from cremad.model_names import MODEL_IDS, PAPER_MODEL_IDS, model_ids_text

log = logging.getLogger(__name__)

REPORT_EPOCHS = (5, 10, 15, 20, 25, 30, 35, 40, 50, 60)


def selection_split(actors: np.ndarray, outer_actor: str, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(training rows, selection rows, selection actor) for the outer fold of `outer_actor`:
    index arrays into `actors` (one actor id per clip). Neither holds a clip of `outer_actor`."""
    actors = np.asarray(actors).astype(str)
    inner = sorted(set(actors) - {outer_actor})
    if outer_actor not in set(actors):
        raise ValueError(f"outer actor {outer_actor!r} has no clips")
    if len(inner) < 2:
        raise ValueError(
            "selection needs at least 3 actors: the outer one, a selection one and one to train on"
        )
    selection_actor = inner[(zlib.crc32(outer_actor.encode()) + seed) % len(inner)]
    train_rows = np.flatnonzero((actors != outer_actor) & (actors != selection_actor))
    selection_rows = np.flatnonzero(actors == selection_actor)
    return train_rows, selection_rows, selection_actor


def validation_curve(
    config: ExperimentConfig, model_id: int, features, outer_actor: str, seed: int, epochs: int
) -> dict[str, Any]:
    """Train `model_id` with `config`'s recipe on the inner training actors of `outer_actor`'s
    fold for `epochs` epochs, logging UA on the selection actor after each. Returns a record
    with the curve (`ua`, one value per epoch)."""
    from cremad.augment import augmented_inputs
    from cremad.scaling import model_inputs
    from cremad.training import train_model

    train_rows, selection_rows, selection_actor = selection_split(features.actors, outer_actor, seed)
    rows = np.sort(np.concatenate([train_rows, selection_rows]))  # (n_inner,) outer actor left out
    config = replace(config, {"train": {"early_stopping": False, "max_epochs": epochs, "seed": seed}})
    frame_mask = features.speech_mask() if config.train.needs_frame_mask else None  # (clips, frames)
    x = model_inputs(config, features, frame_mask)[rows]  # as run_fold starts from them
    started = time.time()
    result = train_model(
        config,
        model_id,
        x,
        np.asarray(features.labels)[rows],
        validation=np.isin(rows, selection_rows),
        seed=seed,
        frame_mask=None if frame_mask is None else frame_mask[rows],
        copies=augmented_inputs(config, features, rows),  # the selection actor's never train
    )
    return {
        "experiment": config.name,
        "model": model_id,
        "outer": outer_actor,
        "selection": selection_actor,
        "seed": seed,
        "ua": [float(value) for value in result.history["val_ua"]],
        "seconds": round(time.time() - started, 1),
    }


def outer_actors(actors: np.ndarray, count: int | None) -> list[str]:
    """The first `count` actors (all when None) of a fixed shuffle of the corpus's actors."""
    ordered = sorted(set(np.asarray(actors).astype(str)))
    shuffled = [ordered[i] for i in np.random.default_rng(0).permutation(len(ordered))]
    return shuffled if count is None else shuffled[:count]


def summarize_curves(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (experiment, model) and per experiment over all models: the mean UA curve, its value
    at REPORT_EPOCHS and its best epoch. Curves of different lengths are cut to the shortest."""
    groups: dict[tuple[str, str], list[list[float]]] = {}
    for record in records:
        groups.setdefault((record["experiment"], f"model{record['model']}"), []).append(record["ua"])
        groups.setdefault((record["experiment"], "all models"), []).append(record["ua"])
    rows = []
    for (experiment, models), curves in sorted(groups.items()):
        length = min(len(curve) for curve in curves)
        mean = np.mean([curve[:length] for curve in curves], axis=0)  # (epochs,)
        rows.append(
            {
                "experiment": experiment,
                "models": models,
                "curves": len(curves),
                "at": {epoch: float(mean[epoch - 1]) for epoch in REPORT_EPOCHS if epoch <= length},
                "best_epoch": int(np.argmax(mean)) + 1,
                "best_ua": float(mean.max()),
            }
        )
    return rows


def format_curves(rows: list[dict[str, Any]]) -> str:
    epochs = sorted({epoch for row in rows for epoch in row["at"]})
    lines = ["experiment | models | curves | " + " | ".join(f"UA@{e}" for e in epochs) + " | best epoch (UA)"]
    for row in rows:
        values = " | ".join(f"{100 * row['at'][e]:.1f}" if e in row["at"] else "" for e in epochs)
        lines.append(
            f"{row['experiment']} | {row['models']} | {row['curves']} | {values} | "
            f"{row['best_epoch']} ({100 * row['best_ua']:.1f})"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="corpus folder")
    parser.add_argument("--corpus", choices=CORPORA, default=DEFAULT_CORPUS, help=CORPUS_HELP)
    add_clip_arguments(parser)
    parser.add_argument(
        "--experiments",
        required=True,
        help="comma-separated candidate recipes: names in experiments/candidates/ or "
        "experiments/, or paths to TOML files",
    )
    parser.add_argument(
        "--models",
        default=model_ids_text(PAPER_MODEL_IDS),
        help="comma-separated models (default: the paper's, %(default)s)",
    )
    parser.add_argument("--outer", type=int, help="how many outer folds (default: all)")
    parser.add_argument("--seeds", default="0", help="comma-separated seeds (default: 0)")
    parser.add_argument(
        "--epochs", type=int, default=40, help="length of each validation curve (default: 40)"
    )
    parser.add_argument("--out", required=True, help="results JSON (resumed when it exists)")
    parser.add_argument("--cache-dir", default="cache")
    parser.add_argument("--threads", type=int, help="TensorFlow CPU threads (default: all cores)")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def candidate(text: str, model_id: int) -> ExperimentConfig:
    """A candidate recipe: a name in experiments/candidates/, else in experiments/, or a TOML path."""
    from cremad.config import EXPERIMENTS_DIR, load_experiment

    in_candidates = EXPERIMENTS_DIR / "candidates" / f"{text}.toml"
    return load_experiment(str(in_candidates) if in_candidates.is_file() else text, model_id=model_id)


def run(args) -> int:
    from cremad.augment import attach_augmented
    from cremad.features import load_features
    from cremad.process import limit_threads

    limit_threads(args.threads)
    models = comma_list(args.models, "--models", int, example="1,2")
    seeds = comma_list(args.seeds, "--seeds", nonnegative_int, example="0,1,2")
    if set(models) - set(MODEL_IDS):
        raise CremadError(f"--models {args.models}: the models are {model_ids_text(MODEL_IDS, ', ')}")
    candidates = comma_list(args.experiments, "--experiments")
    configs = {(text, model_id): candidate(text, model_id) for text in candidates for model_id in models}
    out = Path(args.out)
    records = json.loads(out.read_text()) if out.is_file() else []
    done = {(r["experiment"], r["model"], r["outer"], r["seed"]) for r in records}
    jobs = []
    for (_, model_id), config in configs.items():
        features = load_features(
            args.data,
            corpus=args.corpus,
            config=config.features,
            cache_dir=args.cache_dir,
            progress=False,
            **clip_options(args),
        )
        features = attach_augmented(features, config.train, args.cache_dir, progress=False)
        for seed in seeds:
            for actor in outer_actors(features.actors, args.outer):
                if (config.name, model_id, actor, seed) in done:
                    log.info("skipped %s model %d outer %s seed %d: done", config.name, model_id, actor, seed)
                else:
                    jobs.append((config, model_id, features, actor, seed))
    started = time.time()
    for count, (config, model_id, features, actor, seed) in enumerate(jobs, 1):
        record = validation_curve(config, model_id, features, actor, seed, args.epochs)
        records.append(record)
        write_json(out, records)
        eta = (time.time() - started) / count * (len(jobs) - count)
        log.info(
            "curve %d/%d: %s model %d outer %s (selection %s) seed %d: UA at the end %.1f %%, best %.1f %%"
            " (%.0f s, ETA %.0f min)",
            count,
            len(jobs),
            config.name,
            model_id,
            actor,
            record["selection"],
            seed,
            100 * record["ua"][-1],
            100 * max(record["ua"]),
            record["seconds"],
            eta / 60,
        )
    print(format_curves(summarize_curves(records)))
    return 0
