"""`cremad loso --backend ray`: folds as Ray tasks on a cluster that shares no disk.

A task trains its fold into a scratch folder on whichever node runs it and returns the fold's
files; the driver alone writes the run folder (`cremad.runs.write_fold_files`: atomic, done.json
last), so resume, `summarize` and `figures` read the same layout as for a local run, and nothing
a worker leaves on its own disk is needed. The driver's cremad travels with the tasks (Ray's
`py_modules`), and each task checks that the code it imported is the driver's.

Failures: a fold whose worker or node died, or whose result was lost with its node (Ray's
system errors), is resubmitted up to `max_retries` times, each retry said in the log; an
exception raised by the fold's own code fails that fold at once. Ctrl-C keeps every finished
fold and cancels the rest.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import cremad
from cremad import CremadError, FoldsFailedError, runs

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(cremad.__file__).resolve().parent
DEFAULT_MAX_RETRIES = 3  # resubmissions of a fold whose worker or node died
SCRATCH_PREFIX = "cremad-fold-"  # + pid-actor-: a fold's folder on the node that trains it


class CodeMismatchError(CremadError):
    """A worker imported another cremad than the driver's."""


def import_ray():
    """The ray module; Ray is an optional extra."""
    try:
        import ray
    except ImportError:
        raise CremadError("--backend ray needs Ray: pip install -e .[ray]") from None
    return ray


@functools.cache
def code_identity(package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    """What cremad this process runs: its version, a hash of its Python sources and where it
    was imported from (a version string alone misses an edited checkout)."""
    digest = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        digest.update(path.relative_to(package_dir).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return {"version": cremad.__version__, "source": digest.hexdigest()[:16], "path": str(package_dir)}


def check_code(driver: dict[str, str], worker: dict[str, str], node: str) -> None:
    """Refuse a worker whose cremad differs from the driver's, naming both."""
    if (driver["version"], driver["source"]) != (worker["version"], worker["source"]):
        raise CodeMismatchError(
            f"the worker on node {node} runs cremad {worker['version']} (source {worker['source']}, "
            f"{worker['path']}), the driver cremad {driver['version']} (source {driver['source']}, "
            f"{driver['path']}): the driver's code did not reach it"
        )


def start_ray(address: str | None = None, log_to_driver: bool = False):
    """Join the Ray cluster at `address`, or start a local one on this machine's cores; the
    driver's cremad is shipped to every worker. Returns the ray module."""
    ray = import_ray()
    import keras

    # Workers must use the driver's Keras backend, and must not grab a whole GPU each when
    # several folds share one (TensorFlow and JAX both preallocate by default).
    env = {
        "KERAS_BACKEND": keras.config.backend(),
        "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false",
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    runtime_env = {
        "env_vars": env,
        "py_modules": [str(PACKAGE_DIR)],
        "excludes": ["__pycache__", "*.pyc"],
    }
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=log_to_driver)
    else:
        ray.init(
            address="local",  # a new cluster, even where `ray start` left one running
            num_cpus=os.cpu_count(),
            runtime_env=runtime_env,
            include_dashboard=False,
            log_to_driver=log_to_driver,
        )
    return ray


def remote_fold(config, features, job: dict[str, Any], threads: int | None, driver_code: dict[str, str]):
    """A Ray task: one fold trained in a scratch folder of the node it runs on, returned as
    {"files": the fold's files, "node": where it ran, "code": the cremad it ran}; the scratch
    folder is removed."""
    import ray

    from cremad.folds import run_fold
    from cremad.process import limit_threads

    context = ray.get_runtime_context()
    node = f"{ray.util.get_node_ip_address()} ({context.get_node_id()[:8]})"
    check_code(driver_code, code_identity(), node)
    limit_threads(threads)
    sweep_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-{job['test_actor']}-"))
    try:
        run_fold(config, features, out_dir=scratch, **job)
        return {"files": runs.read_fold_files(scratch), "node": node, "code": code_identity()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def sweep_scratch() -> None:
    """Remove the scratch folders of fold processes that died before removing their own (a
    killed worker runs no cleanup)."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*"):
        pid = folder.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def system_failures(ray) -> dict[type[BaseException], str]:
    """Ray's errors that say a fold's process, node or result was lost, not that its code failed,
    each with what happened to the fold."""
    errors = ray.exceptions
    return {
        errors.WorkerCrashedError: "its worker died",
        errors.NodeDiedError: "its node died",
        errors.ObjectLostError: "its result was lost with its node",
        errors.OutOfMemoryError: "its worker was killed for memory",
    }


def lost_how(error: BaseException, lost: dict[type[BaseException], str]) -> str:
    """What happened to a fold that failed with `error`, one of `lost`'s kinds."""
    return next(what for kind, what in lost.items() if isinstance(error, kind))


def run_ray_folds(
    config,
    features,
    jobs: list[dict[str, Any]],
    run_dir: str | Path,
    *,
    address: str | None = None,
    cpus_per_fold: float = 1.0,
    gpus_per_fold: float = 0.0,
    threads: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    verbose: int = 0,
):
    """Run `jobs` (run_fold's keyword arguments, without out_dir) as Ray tasks and write each
    finished fold into `run_dir` here; yield the done records as folds finish. Raises
    FoldsFailedError at the end when a fold failed on every try (the others are written)."""
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(address, log_to_driver=verbose > 0)
    lost = system_failures(ray)
    try:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        if gpus_per_fold > gpus:  # Ray would queue such tasks forever
            raise CremadError(f"--gpus-per-fold {gpus_per_fold:g}, but the Ray cluster has {gpus:g} GPU(s)")
        log.info(
            "Ray cluster: %d node(s), %g CPU(s), %g GPU(s); %g CPU(s) and %g GPU(s) per fold",
            len([node for node in ray.nodes() if node.get("Alive")]),
            resources.get("CPU", 0),
            gpus,
            cpus_per_fold,
            gpus_per_fold,
        )
        task = ray.remote(num_cpus=cpus_per_fold, num_gpus=gpus_per_fold, max_retries=0)(remote_fold)
        features_ref, driver_code = ray.put(features), code_identity()
        job_of, tries, failed, written = {}, {}, [], []

        def submit(job):
            actor = job["test_actor"]
            tries[actor] = tries.get(actor, 0) + 1
            ref = task.options(name=f"fold-{actor}").remote(config, features_ref, job, threads, driver_code)
            job_of[ref] = job

        for job in jobs:
            submit(job)
        try:
            while job_of:
                (ready,), _ = ray.wait(list(job_of), num_returns=1)
                job = job_of.pop(ready)
                actor = job["test_actor"]
                try:
                    result = ray.get(ready)
                except tuple(lost) as error:
                    if tries[actor] > max_retries:
                        log.error(
                            "fold %s failed: %s on each of %d tries",
                            actor,
                            type(error).__name__,
                            tries[actor],
                        )
                        failed.append(actor)
                    else:
                        log.warning(
                            "fold %s retried after %s (%s; try %d of %d)",
                            actor,
                            lost_how(error, lost),
                            type(error).__name__,
                            tries[actor] + 1,
                            max_retries + 1,
                        )
                        submit(job)
                    continue
                except ray.exceptions.RayTaskError as error:
                    if isinstance(error.cause, CodeMismatchError):
                        raise CodeMismatchError(str(error.cause)) from None
                    cause = error.cause if error.cause is not None else error
                    log.error("fold %s failed: %s: %s", actor, type(cause).__name__, cause)
                    failed.append(actor)
                    continue
                except ray.exceptions.RayError as error:  # e.g. its runtime environment could not be set up
                    log.error("fold %s failed: %s: %s", actor, type(error).__name__, error)
                    failed.append(actor)
                    continue
                written.append(actor)
                yield _write_fold(run_dir, actor, result, tries[actor])
        except BaseException:  # Ctrl-C, or a refusal: keep what finished, stop the rest
            _keep_finished_and_cancel(ray, job_of, run_dir, tries, written)
            raise
        if failed:
            raise FoldsFailedError(failed)
    finally:
        if started_here:
            ray.shutdown()


def _write_fold(run_dir, actor: str, result: dict[str, Any], tries: int) -> dict[str, Any]:
    """A returned fold written into the driver's run folder; done.json says where it ran, on
    which try and with which cremad."""
    code = result["code"]
    return runs.write_fold_files(
        runs.fold_dir(run_dir, actor),
        result["files"],
        node=result["node"],
        tries=tries,
        cremad=f"{code['version']} (source {code['source']})",
    )


def _keep_finished_and_cancel(ray, job_of: dict, run_dir, tries: dict[str, int], written: list[str]) -> None:
    """Write the folds that finished but were not collected yet, cancel the others."""
    if not job_of:
        return
    ready, pending = ray.wait(list(job_of), num_returns=len(job_of), timeout=0)
    kept = len(written)
    for ref in ready:
        actor = job_of[ref]["test_actor"]
        try:
            result = ray.get(ref, timeout=0)
        except Exception:  # noqa: BLE001 (a failed or lost fold has nothing to keep)
            continue
        _write_fold(run_dir, actor, result, tries[actor])
        kept += 1
    for ref in pending:
        ray.cancel(ref, force=True)
    log.warning(
        "stopped: %d finished fold(s) kept in the run folder, %d cancelled (%s)",
        kept,
        len(pending),
        ", ".join(sorted(job_of[ref]["test_actor"] for ref in pending)) or "none",
    )
