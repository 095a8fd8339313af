"""`cremad loso`: leave-one-actor-out training (section II-C), resumable and distributable.

LOSO is a loop over test actors; each fold is `cremad.folds.run_fold`. Each seed is a run of
its own, in the run folder `cremad.runs` lays out:

    <runs>/<corpus>/<experiment>/model<k>/seed<s>/    run.json, summary.json, fold-<actor>/

A fold with done.json is finished and skipped on a rerun, so an interrupted run loses at most
the folds in progress; --force retrains. A run.json from a different configuration is never
silently mixed with the current one. Folds run one after another (--backend local) or as Ray
tasks (--backend ray), with the same files and the same seeds either way. The command line is
parsed once into a `LosoOptions`, which is all the library code below sees of it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cremad import CremadError, FoldsFailedError, runs
from cremad.arguments import comma_list, nonnegative_int
from cremad.config import load_experiment, replace
from cremad.corpus import CORPORA, CORPUS_HELP, DEFAULT_CORPUS
from cremad.features import add_clip_arguments, clip_options
from cremad.model_names import MODEL_IDS, model_name
from cremad.process import limit_threads, warn_if_gpu_unseen
from cremad.ray_backend import DEFAULT_MAX_RETRIES
from cremad.splits import loso_actors

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", type=int, choices=MODEL_IDS, required=True, help="model id (the paper's: 1-4)"
    )
    parser.add_argument("--data", required=True, help="corpus folder (CREMA-D: holds AudioWAV/)")
    parser.add_argument("--corpus", choices=CORPORA, default=DEFAULT_CORPUS, help=CORPUS_HELP)
    add_clip_arguments(parser)
    parser.add_argument("--runs", default="runs", help="root of the run folders (default: runs)")
    parser.add_argument("--experiment", default="paper", help="experiments/NAME.toml (default: paper)")
    parser.add_argument("--epochs", type=int, help="override train.max_epochs")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seed", type=int, help="override train.seed (fold i uses seed + i); the run goes to seed<s>/"
    )
    seeds.add_argument(
        "--seeds", help="comma-separated seeds, e.g. 0,1,2: one run (seed<s>/ folder) per seed"
    )
    parser.add_argument("--folds", help="comma-separated test actors to run, e.g. 1001,1002")
    parser.add_argument(
        "--shard", help="i/n: run every n-th fold of the sorted list, starting at i (0-based)"
    )
    parser.add_argument("--backend", choices=("local", "ray"), default="local")
    parser.add_argument("--ray-address", help="join this Ray cluster (default: start a local one)")
    parser.add_argument(
        "--gpus-per-fold", type=float, default=0.0, help="Ray: GPU share per fold (0.25 packs 4)"
    )
    parser.add_argument("--cpus-per-fold", type=float, default=1.0, help="Ray: CPUs per fold")
    parser.add_argument(
        "--ray-retries",
        type=int,
        default=DEFAULT_MAX_RETRIES,
        help="Ray: resubmissions of a fold whose worker or node died (default: %(default)s); a fold "
        "whose own code raises is not retried",
    )
    parser.add_argument("--cache-dir", default="cache", help="feature cache (default: cache)")
    parser.add_argument("--no-save-models", action="store_true", help="do not write model.keras")
    parser.add_argument("--force", action="store_true", help="retrain folds that are already done")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="local backend: folds trained at once, each in its own process (default: 1). On a "
        "CPU, one-thread folds side by side do more work than one process on every core "
        "(experiments/README.md#cost)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="TensorFlow CPU threads per process (default: all cores; 1 with --jobs > 1; "
        "with Ray, --cpus-per-fold rounded up)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="Keras epoch bars")


@dataclasses.dataclass(frozen=True)
class LosoOptions:
    """How to run one model's leave-one-actor-out folds: `cremad loso`'s options, parsed once
    (`from_args`) and checked here. The experiment's settings are the config, not these."""

    model_id: int
    data: str | None = None  # corpus folder (or manifest)
    corpus: str = "cremad"
    runs: str = "runs"
    experiment: str = "paper"
    epochs: int | None = None  # overrides train.max_epochs
    seeds: tuple[int, ...] | None = None  # one run per seed; None: the experiment's train.seed
    folds: tuple[str, ...] | None = None  # test actors to run; None: all
    shard: tuple[int, int] = (0, 1)  # (i, n): every n-th selected fold, starting at i
    backend: str = "local"
    ray_address: str | None = None
    gpus_per_fold: float = 0.0
    cpus_per_fold: float = 1.0
    ray_retries: int = DEFAULT_MAX_RETRIES  # resubmissions of a fold whose worker or node died
    cache_dir: str = "cache"
    save_models: bool = True
    force: bool = False  # retrain finished folds
    jobs: int = 1  # local backend: folds at once, each in its own process
    threads: int | None = None  # TensorFlow CPU threads per process
    verbose: int = 0
    skip_bad: bool = False
    keep_silent: bool = False
    strict: bool = False
    drop_conflicting: bool = False  # leave out identical clips whose labels disagree

    def __post_init__(self):
        if self.model_id not in MODEL_IDS:
            raise CremadError(f"--model must be one of {MODEL_IDS}, got {self.model_id!r}")
        if self.backend not in ("local", "ray"):
            raise CremadError(f"--backend must be 'local' or 'ray', got {self.backend!r}")
        if self.jobs < 1:
            raise CremadError(f"--jobs must be at least 1, got {self.jobs}")
        if self.jobs > 1 and self.backend != "local":
            raise CremadError("--jobs is for the local backend; Ray packs folds with --cpus-per-fold")
        if self.ray_retries < 0:
            raise CremadError(f"--ray-retries must be at least 0, got {self.ray_retries}")
        if self.threads is not None and self.threads < 1:
            raise CremadError(f"--threads must be at least 1, got {self.threads}")
        index, count = self.shard
        if count < 1 or not 0 <= index < count:
            raise CremadError(f"--shard {index}/{count}: need 0 <= i < n")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> LosoOptions:
        """The options of a parsed `cremad loso` command line."""
        seeds = (
            [args.seed]
            if args.seed is not None
            else comma_list(args.seeds, "--seeds", nonnegative_int, "0,1,2")
        )
        if args.seeds is not None and not seeds:
            raise CremadError(f"--seeds {args.seeds!r}: expected comma-separated seeds >= 0, e.g. 0,1,2")
        return cls(
            model_id=args.model,
            data=args.data,
            corpus=args.corpus,
            runs=args.runs,
            experiment=args.experiment,
            epochs=args.epochs,
            seeds=tuple(seeds) or None,
            folds=tuple(comma_list(args.folds, "--folds")) or None,
            shard=parse_shard(args.shard),
            backend=args.backend,
            ray_address=args.ray_address,
            gpus_per_fold=args.gpus_per_fold,
            cpus_per_fold=args.cpus_per_fold,
            ray_retries=args.ray_retries,
            cache_dir=args.cache_dir,
            save_models=not args.no_save_models,
            force=args.force,
            jobs=args.jobs,
            threads=args.threads,
            verbose=args.verbose,
            **clip_options(args),
        )

    @property
    def model(self) -> str:
        return model_name(self.model_id)

    @property
    def clip_options(self) -> dict[str, bool]:
        """load_features' keyword arguments for which clips to read (the same names as the options)."""
        return clip_options(self)


def parse_shard(text: str | None) -> tuple[int, int]:
    """--shard "1/4" -> (1, 4); None -> (0, 1), every fold."""
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CremadError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise CremadError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def select_folds(
    actors: list[str], folds: tuple[str, ...] | None = None, shard: tuple[int, int] = (0, 1)
) -> list[str]:
    """The test actors to run: `folds` or all, then every n-th for shard (i, n)."""
    selected = list(actors)
    if folds:
        unknown = [actor for actor in folds if actor not in actors]
        if unknown:
            raise CremadError(
                f"--folds: no clips for actor(s) {', '.join(unknown)} (have {actors[0]}..{actors[-1]})"
            )
        selected = [actor for actor in actors if actor in folds]
    index, count = shard
    return selected[index::count]


def run_folds(
    config,
    features,
    run_dir: str | Path,
    options: LosoOptions,
    test_actors: list[str] | None = None,
    pool=None,
) -> list[dict[str, Any]]:
    """Run model `options.model_id`'s folds of `test_actors` (default: all) into the run folder
    `run_dir`, skipping finished ones unless `options.force`. The caller has written run.json.
    With the local backend and a `pool` (a concurrent.futures executor, see `fold_pool`) folds
    train side by side in its processes; with Ray they train on the cluster's nodes and this
    process writes them (`cremad.ray_backend`). Returns the done records of this call; raises
    FoldsFailedError after the others when folds failed."""
    all_actors = loso_actors(features.actors)
    fold_index = {actor: index for index, actor in enumerate(all_actors)}  # seed offset per fold
    todo = runs.pending_folds(run_dir, test_actors or all_actors, options.force)
    for actor in test_actors or all_actors:
        if actor not in todo:
            log.info("skipped fold %s: done", actor)
    if not todo:
        return []
    jobs = [
        dict(
            test_actor=actor,
            model_id=options.model_id,
            fold_index=fold_index[actor],
            save_model=options.save_models,
            verbose=options.verbose,
        )
        for actor in todo
    ]
    started, records = time.time(), []
    for done in _finished_folds(config, features, run_dir, jobs, options, pool):
        records.append(done)
        elapsed = time.time() - started
        eta = elapsed / len(records) * (len(todo) - len(records))
        log.info(
            "fold %d/%d actor %s%s: acc %.3f (%d clips, %d epochs) %.0f s, elapsed %s, ETA %s",
            len(records),
            len(todo),
            done["actor"],
            f" on {done['node']}" if done.get("node") else "",
            done["accuracy"],
            done["n_test"],
            done["epochs"],
            done["seconds"],
            tqdm.format_interval(elapsed),
            tqdm.format_interval(eta),
        )
    return records


def _finished_folds(config, features, run_dir, jobs: list[dict[str, Any]], options: LosoOptions, pool):
    """The done records of `jobs` as their folds finish, on the backend `options` names."""
    from cremad.folds import run_fold

    if options.backend == "ray":  # the folds train on the cluster; this process writes them
        from cremad.ray_backend import run_ray_folds

        return run_ray_folds(
            config,
            features,
            jobs,
            run_dir,
            address=options.ray_address,
            cpus_per_fold=options.cpus_per_fold,
            gpus_per_fold=options.gpus_per_fold,
            threads=options.threads or max(1, math.ceil(options.cpus_per_fold)),
            max_retries=options.ray_retries,
            verbose=options.verbose,
        )
    jobs = [{**job, "out_dir": runs.fold_dir(run_dir, job["test_actor"])} for job in jobs]
    if pool is not None:
        return _run_pool(pool, config, features, jobs)
    return (run_fold(config, features, **job) for job in jobs)


def _init_pool_worker(threads: int | None) -> None:
    """A fold process: TensorFlow imported quietly (as the cremad command does), on `threads`
    (None: TensorFlow's default, every core)."""
    from cremad.process import quiet_libraries

    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # processes sharing a GPU take what they use
    quiet_libraries(import_keras=True)
    limit_threads(threads)


def fold_pool(jobs: int, threads: int | None = 1):
    """An executor of `jobs` fresh processes (spawned: no TensorFlow state is forked), each running
    TensorFlow on `threads` CPU threads (default 1: these LSTMs are too small to use more well;
    None: TensorFlow's default, as bench/bench_jobs.py compares)."""
    import concurrent.futures
    import multiprocessing

    if jobs < 1:
        raise CremadError(f"--jobs must be at least 1, got {jobs}")
    return concurrent.futures.ProcessPoolExecutor(
        jobs,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_pool_worker,
        initargs=(threads,),
    )


def _run_pool(pool, config, features, jobs):
    """Yield done records as the pool's folds finish (see `_gather` for failures); each pool
    process set its threads when it started (`_init_pool_worker`)."""
    import concurrent.futures

    from cremad.folds import run_fold

    actor_of = {pool.submit(run_fold, config, features, **job): job["test_actor"] for job in jobs}
    yield from _gather(
        ((actor_of[future], future.result) for future in concurrent.futures.as_completed(actor_of)), Exception
    )


def _gather(finished, fold_error):
    """Yield the records of `finished` ((actor, get_record) pairs, in finishing order). A fold whose
    get_record raises `fold_error` does not stop the others; the failures are raised together at
    the end (finished folds are on disk, a rerun retries the rest)."""
    failed = []
    for actor, get_record in finished:
        try:
            record = get_record()
        except fold_error as error:
            failed.append(actor)
            log.error("fold %s failed: %s: %s", actor, type(error).__name__, error)
            continue
        yield record
    if failed:
        raise FoldsFailedError(failed)


def resolve_configs(options: LosoOptions) -> list:
    """The experiment's config for the model, with `options.epochs` applied; one per seed of
    `options.seeds` (default: the experiment's own train.seed)."""
    config = load_experiment(options.experiment, model_id=options.model_id)
    if options.epochs is not None:
        config = replace(config, {"train": {"max_epochs": options.epochs}})
    seeds = options.seeds or (config.train.seed,)
    return [replace(config, {"train": {"seed": seed}}) for seed in seeds]


def run(args) -> int:
    return run_with(LosoOptions.from_args(args))


def run_with(options: LosoOptions) -> int:
    """`cremad loso`: load the features, then each seed's run (`run_seed`)."""
    from cremad.augment import attach_augmented
    from cremad.features import load_features

    if options.jobs == 1:
        limit_threads(options.threads)
    warn_if_gpu_unseen()
    configs = resolve_configs(options)
    runs.refuse_old_layout(options.runs, options.corpus, configs[0].name, options.model)
    features = load_features(
        options.data,
        corpus=options.corpus,
        config=configs[0].features,
        cache_dir=options.cache_dir,
        **options.clip_options,
    )
    features = attach_augmented(features, configs[0].train, options.cache_dir)  # seeds share train's voices
    test_actors = select_folds(loso_actors(features.actors), options.folds, options.shard)
    with contextlib.ExitStack() as stack:
        pool = None
        if options.jobs > 1:
            pool = stack.enter_context(fold_pool(options.jobs, options.threads or 1))
        for config in configs:
            with contextlib.suppress(FoldsFailedError):  # logged; the check below names them
                run_seed(options, config, features, test_actors, pool)
    check_done([seed_run_dir(options, config) for config in configs], test_actors)
    return 0


def seed_run_dir(options: LosoOptions, config) -> Path:
    return runs.run_dir(options.runs, options.corpus, config.name, options.model, config.train.seed)


def check_done(run_dirs: list[Path], test_actors: list[str]) -> None:
    """Raise, naming them, when a fold this command was asked to run has no done.json in its run
    folder: the exit status tells whether the run folder holds what was asked, on any backend."""
    not_done = {run_dir: runs.pending_folds(run_dir, test_actors) for run_dir in run_dirs}
    not_done = {run_dir: actors for run_dir, actors in not_done.items() if actors}
    if not_done:
        raise CremadError(
            f"{sum(map(len, not_done.values()))} fold(s) not done: "
            + "; ".join(f"{run_dir}: {', '.join(actors)}" for run_dir, actors in not_done.items())
            + " (rerun the same command to run them)"
        )


def run_seed(options: LosoOptions, config, features, test_actors: list[str], pool=None) -> None:
    """One seed's run of `loso`: run.json, the folds, then the summary (of the finished folds,
    also when some failed: FoldsFailedError is raised after it)."""
    import keras

    from cremad.metrics import format_summary, summarize

    run_dir = seed_run_dir(options, config)
    log.info(
        "model %d, experiment %s, seed %d: %d clips, %d frames, %d of %d folds selected -> %s",
        options.model_id,
        config.name,
        config.train.seed,
        len(features.labels),
        features.features.shape[1],
        len(test_actors),
        len(set(features.actors)),
        run_dir,
    )
    record = runs.run_record(
        config,
        options.model,
        options.corpus,
        options.data,
        features,
        model_id=options.model_id,
        keras_backend=keras.config.backend(),
    )
    runs.prepare_run(run_dir, record, options.force)
    failures = None
    try:
        run_folds(config, features, run_dir, options, test_actors, pool=pool)
    except FoldsFailedError as error:
        failures = error
    try:  # a failing summary must not cost the trained folds
        print(format_summary(summarize(run_dir)))
    except Exception as error:  # noqa: BLE001 (report and carry on; `cremad summarize` can redo it)
        log.warning("summary not written (%s: %s); run `cremad summarize` later", type(error).__name__, error)
    if failures is not None:
        raise failures
