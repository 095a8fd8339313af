"""`cremad loso`: leave-one-actor-out training (section II-C), resumable and distributable.

LOSO is a loop over test actors; each fold is `cremad.folds.run_fold`. Each seed is a run of
its own, in the run folder `cremad.runs` lays out:

    <runs>/<corpus>/<experiment>/model<k>/seed<s>/    run.json, summary.json, fold-<actor>/

A fold with done.json is finished and skipped on a rerun, so an interrupted run loses at most
the folds in progress; --force retrains. A run.json from a different configuration is never
silently mixed with the current one. Folds run one after another (--backend local) or as Ray
tasks (--backend ray), with the same files and the same seeds either way.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from cremad import CremadError, runs
from cremad.config import load_experiment, replace
from cremad.corpus import CORPORA, CORPUS_HELP
from cremad.features import add_clip_arguments, clip_options
from cremad.folds import loso_actors, run_fold
from cremad.models import MODEL_IDS, model_name

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=int, choices=MODEL_IDS, required=True, help="paper model 1-4")
    parser.add_argument("--data", required=True, help="corpus folder (CREMA-D: holds AudioWAV/)")
    parser.add_argument("--corpus", choices=CORPORA, default="cremad", help=CORPUS_HELP)
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
    parser.add_argument("--cache-dir", default="cache", help="feature cache (default: cache)")
    parser.add_argument("--no-save-models", action="store_true", help="do not write model.keras")
    parser.add_argument("--force", action="store_true", help="retrain folds that are already done")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="local backend: folds trained at once, each in its own process (default: 1). On a "
        "CPU, --jobs 2 with one thread each did 1.15-2.1x the work of one process on 2 cores "
        "(bench/bench_jobs.py)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="TensorFlow CPU threads per process (default: all cores; 1 with --jobs > 1; "
        "with Ray, --cpus-per-fold rounded up)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="Keras epoch bars")


def parse_seeds(text: str) -> list[int]:
    """--seeds "0,1,2" -> [0, 1, 2] (each once, in the order given)."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CremadError(f"--seeds {text!r}: expected comma-separated whole numbers, e.g. 0,1,2") from None
    if not seeds or min(seeds) < 0:
        raise CremadError(f"--seeds {text!r}: expected comma-separated seeds >= 0, e.g. 0,1,2")
    return list(dict.fromkeys(seeds))


def parse_shard(text: str | None) -> tuple[int, int]:
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise CremadError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise CremadError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def select_folds(actors: list[str], folds: str | None = None, shard: str | None = None) -> list[str]:
    """The test actors to run: `folds` (comma-separated) or all, then every n-th for shard i/n."""
    selected = list(actors)
    if folds:
        wanted = [actor.strip() for actor in folds.split(",") if actor.strip()]
        unknown = [actor for actor in wanted if actor not in actors]
        if unknown:
            raise CremadError(
                f"--folds: no clips for actor(s) {', '.join(unknown)} (have {actors[0]}..{actors[-1]})"
            )
        selected = [actor for actor in actors if actor in wanted]
    index, count = parse_shard(shard)
    return selected[index::count]


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def run_folds(
    config,
    features,
    model_id: int,
    run_dir: str | Path,
    test_actors: list[str] | None = None,
    force: bool = False,
    save_models: bool = True,
    verbose: int = 0,
    backend: str = "local",
    ray_address: str | None = None,
    gpus_per_fold: float = 0.0,
    cpus_per_fold: float = 1.0,
    pool=None,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Run the folds of `test_actors` (default: all) into the run folder `run_dir`, skipping
    finished ones unless `force`. The caller has written run.json. With the local backend and a
    `pool` (a concurrent.futures executor, see `fold_pool`) folds train side by side in its
    processes. A Ray task runs TensorFlow on `threads` CPU threads (default: `cpus_per_fold`
    rounded up). Returns the done records of this call."""
    all_actors = loso_actors(features.actors)
    fold_index = {actor: index for index, actor in enumerate(all_actors)}  # seed offset per fold
    todo = runs.pending_folds(run_dir, test_actors or all_actors, force)
    for actor in test_actors or all_actors:
        if actor not in todo:
            log.info("skipped fold %s: done", actor)
    if not todo:
        return []
    jobs = [
        dict(
            test_actor=actor,
            out_dir=runs.fold_dir(run_dir, actor),
            model_id=model_id,
            fold_index=fold_index[actor],
            save_model=save_models,
            verbose=verbose,
        )
        for actor in todo
    ]
    if backend == "ray":
        threads = threads or max(1, math.ceil(cpus_per_fold))
        finished = _run_ray(config, features, jobs, ray_address, gpus_per_fold, cpus_per_fold, threads)
    elif backend == "local" and pool is not None:
        finished = _run_pool(pool, config, features, jobs)
    elif backend == "local":
        finished = (run_fold(config, features, **job) for job in jobs)
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")

    started, records = time.time(), []
    for done in finished:
        records.append(done)
        elapsed = time.time() - started
        eta = elapsed / len(records) * (len(todo) - len(records))
        log.info(
            "fold %d/%d actor %s: acc %.3f (%d clips, %d epochs) %.0f s, elapsed %s, ETA %s",
            len(records),
            len(todo),
            done["actor"],
            done["accuracy"],
            done["n_test"],
            done["epochs"],
            done["seconds"],
            format_duration(elapsed),
            format_duration(eta),
        )
    return records


def _fold_task(config, features, job, threads: int | None = None):
    """One fold in a Ray task or a pool job. A pool worker has set its threads already
    (`_init_pool_worker`); a Ray worker sets them here, before its first fold's first op (a
    reused worker asking for the same count again is a no-op in TensorFlow)."""
    from cremad.training import limit_threads

    limit_threads(threads)
    return run_fold(config, features, **job)


def _init_pool_worker(threads: int | None) -> None:
    """A fold process: TensorFlow imported quietly (as the cremad command does), on `threads`
    (None: TensorFlow's default, every core)."""
    from cremad.cli import quiet_libraries
    from cremad.training import limit_threads

    os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")  # processes sharing a GPU take what they use
    quiet_libraries("loso")
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
    """Yield done records as the pool's folds finish (see `_gather` for failures)."""
    import concurrent.futures

    actor_of = {pool.submit(_fold_task, config, features, job): job["test_actor"] for job in jobs}
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
        raise CremadError(f"{len(failed)} fold(s) failed: {', '.join(failed)}; rerun to retry them")


def start_ray(address: str | None = None, log_to_driver: bool = False):
    """Join the Ray cluster at `address`, or start a local one on this machine's cores; returns
    the ray module. Ray is an optional extra, imported only here."""
    try:
        import ray
    except ImportError:
        raise CremadError("--backend ray needs Ray: pip install -e .[ray]") from None
    import keras

    # Workers must use the driver's Keras backend, and must not grab a whole GPU each when
    # several folds share one (TensorFlow and JAX both preallocate by default).
    env = {
        "KERAS_BACKEND": keras.config.backend(),
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    if address:
        ray.init(address=address, runtime_env={"env_vars": env})
    else:
        package_root = str(Path(__file__).resolve().parent.parent)  # a checkout need not be installed
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        ray.init(
            num_cpus=os.cpu_count(),
            runtime_env={"env_vars": env},
            include_dashboard=False,
            log_to_driver=log_to_driver,
        )
    return ray


def _run_ray(config, features, jobs, address, gpus_per_fold, cpus_per_fold, threads=None):
    """Yield done records as Ray tasks finish (see `_gather` for failures). The features go into
    the object store once."""
    try:
        import ray
    except ImportError:
        raise CremadError("--backend ray needs Ray: pip install -e .[ray]") from None
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(address, log_to_driver=any(job["verbose"] for job in jobs))
    try:
        available = ray.cluster_resources().get("GPU", 0)
        if gpus_per_fold > available:  # Ray would queue such tasks forever
            raise CremadError(
                f"--gpus-per-fold {gpus_per_fold:g}, but the Ray cluster has {available:g} GPU(s)"
            )
        features_ref = ray.put(features)
        task = ray.remote(num_gpus=gpus_per_fold, num_cpus=cpus_per_fold, max_retries=0)(_fold_task)
        actor_of = {task.remote(config, features_ref, job, threads): job["test_actor"] for job in jobs}

        def finished():
            pending = list(actor_of)
            while pending:
                (ready,), pending = ray.wait(pending, num_returns=1)
                yield actor_of[ready], lambda ref=ready: ray.get(ref)

        yield from _gather(finished(), ray.exceptions.RayTaskError)
    finally:
        if started_here:
            ray.shutdown()


def resolve_configs(args) -> list:
    """The experiment's config for --model, with --epochs applied; one per seed of --seed /
    --seeds (default: the experiment's own train.seed)."""
    config = load_experiment(args.experiment, model_id=args.model)
    if args.epochs is not None:
        config = replace(config, {"train": {"max_epochs": args.epochs}})
    seeds = (
        parse_seeds(args.seeds)
        if args.seeds
        else [args.seed]
        if args.seed is not None
        else [config.train.seed]
    )
    return [replace(config, {"train": {"seed": seed}}) for seed in seeds]


def run(args) -> int:
    from cremad.features import load_features
    from cremad.training import limit_threads

    if args.jobs < 1:
        raise CremadError(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs > 1 and args.backend != "local":
        raise CremadError("--jobs is for the local backend; Ray packs folds with --cpus-per-fold")
    if args.jobs == 1:
        limit_threads(args.threads)
    configs = resolve_configs(args)
    parse_shard(args.shard)  # fail on a bad --shard before the features load
    name = model_name(args.model)
    runs.refuse_old_layout(args.runs, args.corpus, configs[0].name, name)
    features = load_features(
        args.data,
        corpus=args.corpus,
        config=configs[0].features,
        cache_dir=args.cache_dir,
        **clip_options(args),
    )
    test_actors = select_folds(loso_actors(features.actors), args.folds, args.shard)
    with contextlib.ExitStack() as stack:
        pool = stack.enter_context(fold_pool(args.jobs, args.threads or 1)) if args.jobs > 1 else None
        for config in configs:
            run_seed(args, config, features, test_actors, pool)
    return 0


def run_seed(args, config, features, test_actors: list[str], pool=None) -> None:
    """One seed's run of `loso`: run.json, the folds, then the summary."""
    import keras

    from cremad.metrics import format_summary, summarize

    name = model_name(args.model)
    run_dir = runs.run_dir(args.runs, args.corpus, config.name, name, config.train.seed)
    log.info(
        "model %d, experiment %s, seed %d: %d clips, %d frames, %d of %d folds selected -> %s",
        args.model,
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
        name,
        args.corpus,
        args.data,
        features,
        model_id=args.model,
        keras_backend=keras.config.backend(),
    )
    runs.prepare_run(run_dir, record, args.force)
    run_folds(
        config,
        features,
        args.model,
        run_dir,
        test_actors,
        force=args.force,
        save_models=not args.no_save_models,
        verbose=args.verbose,
        backend=args.backend,
        ray_address=args.ray_address,
        gpus_per_fold=args.gpus_per_fold,
        cpus_per_fold=args.cpus_per_fold,
        pool=pool,
        threads=args.threads,
    )
    try:  # a failing summary must not cost the trained folds
        print(format_summary(summarize(run_dir)))
    except Exception as error:  # noqa: BLE001 (report and carry on; `cremad summarize` can redo it)
        log.warning("summary not written (%s: %s); run `cremad summarize` later", type(error).__name__, error)
