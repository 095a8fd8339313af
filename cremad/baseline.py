"""`cremad baseline`: the classical yardstick, utterance functionals and an SVM, in the models' folds.

    cremad baseline --data DIR [--corpus emodb] [--features mfcc|rich] [--experiment paper]

Each clip becomes one vector of functionals (cremad/functionals.py). Each leave-one-actor-out fold
(splits.loso_actors, as for the four models) holds one actor out and fits, on the others only,

    GridSearchCV(Pipeline(StandardScaler, SVC(class_weight="balanced")))

choosing the kernel, C and gamma by GroupKFold over the *training* actors (scored by UA), then
refits the best pipeline inside CalibratedClassifierCV, whose sigmoid calibration is fitted on
out-of-fold decisions of the same training-actor splits: the probabilities in predictions.csv.
(SVC(probability=True) did the same Platt scaling internally; scikit-learn 1.9 deprecates it.)
The held-out actor's clips reach only `predict_proba`, once, at the end. Folds fit in parallel
(joblib, one process per fold, every inner fit single-threaded); finished folds are skipped on a
rerun, so an interrupted run loses only the folds in flight.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm import tqdm

from cremad import CremadError, runs
from cremad.config import EMOTIONS, load_experiment, replace
from cremad.corpus import CORPORA, CORPUS_HELP, DEFAULT_CORPUS
from cremad.features import add_clip_arguments, clip_options, load_features
from cremad.functionals import FEATURE_KINDS, FUNCTIONALS_CODE_VERSION, copy_functionals, load_functionals
from cremad.metrics import format_summary, summarize
from cremad.model_names import AUGMENTED_SUFFIX, BASELINE_MODEL_NAMES
from cremad.scaling import normalize_speakers
from cremad.splits import loso_actors

log = logging.getLogger(__name__)

# The usual SVM grid for standardized functionals: a linear kernel (ComParE-style) at small C, and
# an RBF kernel at sklearn's "scale" gamma (1 / n_features on standardized data: 0.007 for mfcc,
# 0.005 for rich) or the smoother 0.001.
PARAM_GRID = (
    {"svm__kernel": ["linear"], "svm__C": [0.001, 0.01, 0.1, 1.0]},
    {"svm__kernel": ["rbf"], "svm__C": [1.0, 10.0, 100.0], "svm__gamma": ["scale", 0.001]},
)
INNER_SPLITS = 5  # GroupKFold splits over the training actors (fewer when there are fewer actors)
SCORING = "balanced_accuracy"  # UA, the paper's and the field's headline number


@dataclasses.dataclass
class FoldFit:
    """One fold's fitted baseline: the grid search and the calibrated best pipeline."""

    search: GridSearchCV  # scores of every grid point over the training actors (refit=False)
    model: CalibratedClassifierCV  # best pipeline refitted on every training clip, with probabilities


def build_pipeline() -> Pipeline:
    """StandardScaler then an SVC weighting classes by their inverse frequency."""
    return Pipeline([("scale", StandardScaler()), ("svm", SVC(class_weight="balanced"))])


def actor_splits(groups: np.ndarray, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """GroupKFold (shuffled by `seed`) over the actors in `groups`: no actor on both sides."""
    n_actors = len(np.unique(groups))
    if n_actors < 2:
        raise ValueError(f"the baseline's grid search needs at least 2 training actors, got {n_actors}")
    splitter = GroupKFold(n_splits=min(INNER_SPLITS, n_actors), shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(groups)), groups=groups))


def fit_fold(x_train: np.ndarray, y_train: np.ndarray, groups_train: np.ndarray, seed: int = 0) -> FoldFit:
    """Fit the baseline on training clips only: x_train (n, n_functionals), y_train (n,) labels,
    groups_train (n,) their actors. The grid search and the calibration both split by actor."""
    groups_train = np.asarray(groups_train).astype(str)
    splits = actor_splits(groups_train, seed)
    search = GridSearchCV(
        build_pipeline(), list(PARAM_GRID), scoring=SCORING, cv=splits, n_jobs=1, refit=False
    )
    search.fit(x_train, y_train, groups=groups_train)
    best = build_pipeline().set_params(**search.best_params_)
    model = CalibratedClassifierCV(best, method="sigmoid", cv=splits, ensemble=False)
    model.fit(x_train, y_train)
    return FoldFit(search, model)


@dataclasses.dataclass
class Copies:
    """Augmented copies' functionals (cremad.augment, functionals.copy_functionals): copy i was
    made from clip source[i]; it trains only when that clip's actor does."""

    values: np.ndarray  # (copies, n_functionals), normalized as the clips are
    source: np.ndarray  # (copies,) row of the clip each copy was made from


def run_fold(
    values: np.ndarray,
    labels: np.ndarray,
    actors: np.ndarray,
    test_actor: str,
    seed: int = 0,
    copies: Copies | None = None,
) -> dict[str, Any]:
    """Hold out `test_actor`: fit on every other actor's clips (and their `copies`), predict the
    held-out ones. values (clips, n_functionals), labels and actors (clips,). Returns the test
    indices, their probabilities (n_test, len(EMOTIONS)) and the fit's record (best parameters,
    inner UA)."""
    started = time.time()
    actors = np.asarray(actors).astype(str)
    # The SVM needs no validation actors (nothing stops early): every other actor trains, and the
    # grid search makes its own actor splits among them. The test actor's clips are only predicted.
    test_index, train_index = np.flatnonzero(actors == test_actor), np.flatnonzero(actors != test_actor)
    if not len(test_index):
        raise ValueError(f"test actor {test_actor!r} has no clips")
    x_train, y_train, groups = values[train_index], labels[train_index], actors[train_index]
    n_copies = 0
    if copies is not None:
        # A copy joins its clip's actor, in the fit and in the grid search's actor splits alike.
        training = actors[copies.source] != test_actor
        taken = copies.source[training]
        x_train = np.concatenate([x_train, copies.values[training]])
        y_train = np.concatenate([y_train, labels[taken]])
        groups = np.concatenate([groups, actors[taken]])
        n_copies = len(taken)
    fit = fit_fold(x_train, y_train, groups, seed)
    probabilities = np.zeros((len(test_index), len(EMOTIONS)))  # a class absent from training gets 0
    probabilities[:, fit.model.classes_] = fit.model.predict_proba(values[test_index])
    return {
        "test_actor": test_actor,
        "test_index": test_index,
        "probabilities": probabilities,
        "best_params": fit.search.best_params_,
        "inner_ua": 100.0 * float(fit.search.best_score_),
        "n_train": int(len(train_index)),
        "n_train_copies": n_copies,
        "train_actors": sorted(set(actors[train_index])),
        "inner_splits": len(fit.search.cv),
        "seconds": time.time() - started,
    }


def fold_results(
    values: np.ndarray,
    labels: np.ndarray,
    actors: np.ndarray,
    test_actors: list[str],
    seed: int = 0,
    jobs: int = -1,
    copies: Copies | None = None,
):
    """Yield `run_fold`'s record for each of `test_actors` as its fold finishes, the folds running
    in parallel over `jobs` processes (-1: every core), each single-threaded."""
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):  # libsvm is single-threaded; BLAS threads would only contend
        yield from Parallel(n_jobs=jobs, return_as="generator_unordered")(
            delayed(run_fold)(values, labels, actors, actor, seed, copies) for actor in test_actors
        )


def fold_config(result: dict[str, Any], kind: str, seed: int) -> dict[str, Any]:
    """config.json of a baseline fold: who trained, and what the grid search chose (the grid is
    in run.json's "baseline" field)."""
    return {
        "test_actor": result["test_actor"],
        "train_actors": result["train_actors"],
        "n_train": result["n_train"],
        "n_train_copies": result["n_train_copies"],
        "n_test": len(result["test_index"]),
        "features": kind,
        "seed": seed,
        "pipeline": "StandardScaler -> SVC(class_weight=balanced), "
        "sigmoid-calibrated (CalibratedClassifierCV)",
        "inner_splits": result["inner_splits"],
        "best_params": result["best_params"],
        "inner_ua": round(result["inner_ua"], 4),
        "versions": runs.library_versions(),
    }


def add_arguments(parser) -> None:
    parser.add_argument(
        "--data", required=True, help="corpus folder (CREMA-D: holds AudioWAV/), or a manifest CSV"
    )
    parser.add_argument("--corpus", choices=CORPORA, default=DEFAULT_CORPUS, help=CORPUS_HELP)
    add_clip_arguments(parser)
    parser.add_argument(
        "--features",
        choices=FEATURE_KINDS,
        default="mfcc",
        help="mfcc: functionals of the 13 MFCCs; rich: plus spectral shape, ZCR, RMS and pitch",
    )
    parser.add_argument(
        "--experiment",
        default="paper",
        help="experiments/NAME.toml: its feature settings, and the run folder beside its models",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="train on the experiment's speed / VTLP copies of the training actors' clips too, as "
        "its models do (run folder svm-aug / svm-rich-aug)",
    )
    parser.add_argument("--runs", default="runs", help="root of the run folders (default: runs)")
    parser.add_argument("--cache-dir", default="cache", help="feature cache (default: cache)")
    parser.add_argument("--seed", type=int, help="override train.seed (the grid search's actor shuffle)")
    parser.add_argument("--force", action="store_true", help="refit folds that are already done")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def resolve_config(experiment: str, seed: int | None):
    """The experiment's config (its feature settings and seed), with `seed` overriding train.seed."""
    config = load_experiment(experiment)
    return replace(config, {"train": {"seed": seed}}) if seed is not None else config


def baseline_record(kind: str, names: list[str], voices: tuple[str, ...] = ()) -> dict[str, Any]:
    """What defines a baseline run beyond the experiment's config: run.json's "baseline" field."""
    record = {
        "features": kind,
        "n_functionals": len(names),
        "functionals_code": FUNCTIONALS_CODE_VERSION,
        "param_grid": list(PARAM_GRID),
        "scoring": SCORING,
        "inner_splits": INNER_SPLITS,
    }
    if voices:  # absent otherwise, as in run folders made before copies existed
        record["augmented"] = list(voices)
    return record


def run(args) -> int:
    started = time.time()
    config = resolve_config(args.experiment, args.seed)
    seed, model = config.train.seed, BASELINE_MODEL_NAMES[args.features]
    if args.augment:
        if not config.train.voices:
            raise CremadError(
                f"--augment: experiment {config.name} makes no copies (train.speed_factors, vtlp_factors)"
            )
        model += AUGMENTED_SUFFIX
    runs.refuse_old_layout(args.runs, args.corpus, config.name, model)
    features = load_features(
        args.data, corpus=args.corpus, config=config.features, cache_dir=args.cache_dir, **clip_options(args)
    )
    values, names = load_functionals(features, args.features, args.cache_dir)
    copies, voices = None, ()
    if args.augment:
        from cremad.augment import attach_augmented, copy_speakers, voice_name

        voices = tuple(voice_name(kind, factor) for kind, factor in config.train.voices)
        features = attach_augmented(features, config.train, args.cache_dir)
        copies = Copies(copy_functionals(features, args.features, args.cache_dir), features.augmented.source)
        log.info(
            "baseline: %d copies (%s) train beside their actors' clips", len(copies.source), ", ".join(voices)
        )
    elif config.train.voices or config.train.masks:
        log.info(
            "baseline: the experiment's augmented copies and masks (train.speed_factors, vtlp_factors, "
            "time/frequency masks) train its recurrent models; the SVM fits the original clips "
            "(--augment adds the copies)"
        )
    if config.train.speaker_normalization:  # as the experiment's models do (scaling.normalize_speakers)
        values = normalize_speakers(values, features.actors)
        if copies is not None:  # each (actor, voice) a speaker of its own, as the models' copies
            speakers = copy_speakers(features.actors, copies.source, features.augmented.voices)
            copies = Copies(normalize_speakers(copies.values, speakers), copies.source)

    run_dir = runs.run_dir(args.runs, args.corpus, config.name, model, seed)
    record = runs.run_record(
        config,
        model,
        args.corpus,
        args.data,
        features,
        baseline=baseline_record(args.features, names, voices),
    )
    previous = runs.read_run(run_dir).get("baseline")
    if previous and previous != record["baseline"] and not args.force:  # settings outside the config
        raise CremadError(
            f"{run_dir} holds a baseline run with other settings ({previous}); its folds would mix "
            "with this one. Use --force to refit there, or another --runs"
        )
    runs.prepare_run(run_dir, record, args.force)
    all_actors = loso_actors(features.actors)
    todo = runs.pending_folds(run_dir, all_actors, args.force)
    log.info(
        "%s (%d %s functionals), experiment %s, seed %d: %d clips, %d of %d folds to fit -> %s",
        model,
        len(names),
        args.features,
        config.name,
        seed,
        len(values),
        len(todo),
        len(all_actors),
        run_dir,
    )
    clip_ids = np.asarray(features.clip_ids)
    for count, result in enumerate(
        fold_results(values, features.labels, features.actors, todo, seed, copies=copies), start=1
    ):
        index = result["test_index"]
        folder = runs.start_fold(runs.fold_dir(run_dir, result["test_actor"]))
        done = runs.finish_fold(
            folder,
            clip_ids[index],
            features.actors[index],
            features.labels[index],
            result["probabilities"],
            fold_config(result, args.features, seed),
            seconds=round(result["seconds"], 1),
        )
        log.info(
            "fold %d/%d actor %s: acc %.3f (%d clips), %s, inner UA %.1f%%, %.1f s",
            count,
            len(todo),
            done["actor"],
            done["accuracy"],
            done["n_test"],
            result["best_params"],
            result["inner_ua"],
            result["seconds"],
        )
    log.info("baseline: %d fold(s) fitted in %s", len(todo), tqdm.format_interval(time.time() - started))
    print(format_summary(summarize(run_dir)))
    return 0
