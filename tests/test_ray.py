"""`cremad loso --backend ray` on a two-node Ray cluster that shares no disk with the driver.

The cluster runs on this machine inside a network namespace of its own (Ray's traffic stays on
loopback; root only, as CI runs), its workers with another cremad on their PYTHONPATH; the
driver sees its runs folder alone (its own mount namespace, a tmpfs on the folder). One scenario,
run once for the tests below (tests/ray_cluster.py):
- `kill`: the demo's three folds, one fold's worker killed (SIGKILL) while it trains;
- `raise`: the driver's cremad raises inside fold 1002;
- `interrupt`: the driver gets SIGINT (Ctrl-C) once a fold is done;
- `node`: a whole node (its raylet) killed with SIGKILL while one of its workers trains a fold;
- `local`: one fold on a Ray cluster the driver starts itself.
Each is compared with a local `--jobs 1` run of the same folds, seed and thread count.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from ray_cluster import loopback_namespace

from cremad import runs
from cremad.ray_backend import SCRATCH_PREFIX, CodeMismatchError, check_code, code_identity

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HERE = Path(__file__).resolve().parent
ACTORS = ("1001", "1002", "1003")
FAILING = "1002"
RUN = ("cremad", "demo", "model1", 0)  # corpus, experiment, model, seed


def namespaces_available() -> str | None:
    """Why the cluster test cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "needs root for unshare --net / --mount (CI runs as root)"
    if not (shutil.which("unshare") and shutil.which("ip")):
        return "needs unshare (util-linux) and ip (iproute2)"
    probe = subprocess.run(loopback_namespace(["true"]), capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace here: {probe.stderr.strip()}"
    return None


def copy_package(destination: Path, edit=None) -> Path:
    """A copy of the cremad package under `destination` (a folder for PYTHONPATH); `edit`
    changes it: {relative file: (old text, new text)}."""
    import cremad
    from cremad.config import EXPERIMENTS_DIR

    target = destination / "cremad"
    shutil.copytree(Path(cremad.__file__).parent, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(EXPERIMENTS_DIR, destination / "experiments")  # where a checkout keeps the recipes
    for name, (old, new) in (edit or {}).items():
        text = (target / name).read_text()
        if old not in text:
            raise AssertionError(f"{name} no longer holds {old!r}: update the test's edit")
        (target / name).write_text(text.replace(old, new, 1))
    return destination


def loso_args(data: Path, cache: Path, runs_root: Path, *extra: str) -> list[str]:
    return [
        "loso", "--model", "1", "--data", str(data), "--corpus", "cremad", "--experiment", "demo",
        "--epochs", "2", "--seed", "0", "--threads", "1", "--cache-dir", str(cache), "--runs", str(runs_root),
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def cluster_runs(tmp_path_factory):
    """The local reference run and the three Ray scenarios; returns their folders and results."""
    pytest.importorskip("ray")
    reason = namespaces_available()
    if reason:
        pytest.skip(reason)
    from cremad.synth import write_corpus

    root = tmp_path_factory.mktemp("ray")
    data, cache = root / "CREMA-D", root / "cache"
    write_corpus(data, actors=len(ACTORS), seed=0)
    # In a process of its own: --threads must reach TensorFlow before its first op.
    local = [sys.executable, "-m", "cremad", *loso_args(data, cache, root / "local", "--jobs", "1")]
    subprocess.run(local, cwd=root, check=True, capture_output=True)

    other = copy_package(root / "other", {"__init__.py": ('__version__ = "', '__version__ = "0.0.0+other-')})
    injected = "    started = time.time()\n"
    patched = copy_package(
        root / "patched",
        {
            "folds.py": (
                injected,
                f'    if test_actor == "{FAILING}":\n        raise RuntimeError("injected")\n{injected}',
            )
        },
    )
    scenario = {
        "nodes": 2,
        "cpus_per_node": 1,
        "node_env": {"PYTHONPATH": str(other)},  # what the workers would import by themselves
        "runs": [
            {
                "name": "kill",
                "args": loso_args(
                    data, cache, root / "driver-runs", "--backend", "ray", "--ray-address", "{address}"
                ),
                "private_runs": True,
                "runs": str(root / "driver-runs"),
                "copy_to": str(root / "kill"),
                "kill_one_fold": True,
                "log": str(root / "kill.log"),
            },
            {
                "name": "raise",
                "args": loso_args(
                    data, cache, root / "raise", "--backend", "ray", "--ray-address", "{address}"
                ),
                "env": {"PYTHONPATH": str(patched)},
                "log": str(root / "raise.log"),
            },
            {
                "name": "interrupt",
                "args": loso_args(
                    data, cache, root / "interrupt", "--backend", "ray", "--ray-address", "{address}"
                ),
                "runs": str(root / "interrupt"),
                "interrupt_after_a_fold": True,
                "log": str(root / "interrupt.log"),
            },
            {  # last on this cluster: it leaves one node
                "name": "node",
                "args": loso_args(
                    data, cache, root / "node", "--backend", "ray", "--ray-address", "{address}"
                ),
                "kill_a_node": True,
                "log": str(root / "node.log"),
            },
            {
                "name": "local",
                "args": loso_args(data, cache, root / "ray-local", "--backend", "ray", "--folds", "1003"),
                "log": str(root / "local.log"),
            },
        ],
    }
    path = root / "scenario.json"
    path.write_text(json.dumps(scenario))
    # Outside the checkout, so that a driver's PYTHONPATH decides which cremad it imports.
    subprocess.run(
        loopback_namespace([sys.executable, str(HERE / "ray_cluster.py"), str(path)]), cwd=root, check=True
    )
    scenario = json.loads(path.read_text())
    results = {run["name"]: {**run, **result} for run, result in zip(scenario["runs"], scenario["results"])}
    return root, results


def run_folder(root: Path, name: str) -> Path:
    return runs.run_dir(root / name, *RUN)


def predictions(run_dir: Path, actor: str) -> bytes:
    return (runs.fold_dir(run_dir, actor) / runs.PREDICTIONS).read_bytes()


def test_killed_worker_is_retried_and_the_driver_alone_writes_every_fold(cluster_runs):
    root, results = cluster_runs
    kill = results["kill"]
    log = Path(kill["log"]).read_text()
    assert kill["status"] == 0, log
    assert kill["killed"] is not None, "no fold was seen training: nothing was killed"
    assert "retried after its worker died (WorkerCrashedError; try 2 of 4)" in log
    # The killed worker's scratch folder was swept by a later fold on the same machine.
    assert not list(Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}{kill['killed']}-*"))
    # The workers could not see the driver's runs folder: nothing landed in the folder they see.
    assert not any((root / "driver-runs").iterdir())
    ray_run, local_run = run_folder(root, "kill"), run_folder(root, "local")
    assert (ray_run / runs.SUMMARY_JSON).is_file()
    for actor in ACTORS:
        folder = runs.fold_dir(ray_run, actor)
        assert (folder / runs.DONE).is_file(), actor
        for name in (runs.CONFUSION, runs.HISTORY, runs.SCALER, runs.ATTENTION, runs.MODEL_FILE):
            assert (folder / name).is_file(), (actor, name)
        # Same seed, one thread, a CPU: the worker trained exactly what the local loop trained.
        assert predictions(ray_run, actor) == predictions(local_run, actor), actor
        done = json.loads((folder / runs.DONE).read_text())
        assert done["node"].startswith("127.0.0.1 (")
    tries = [json.loads((runs.fold_dir(ray_run, actor) / runs.DONE).read_text())["tries"] for actor in ACTORS]
    assert sorted(tries) == [1, 1, 2]


def test_workers_run_the_drivers_cremad_not_their_own(cluster_runs):
    root, results = cluster_runs
    ours = code_identity()
    for actor in ACTORS:
        done = json.loads((runs.fold_dir(run_folder(root, "kill"), actor) / runs.DONE).read_text())
        assert done["cremad"] == f"{ours['version']} (source {ours['source']})"
    # The injected failure lives only in the driver's copy: the workers ran that copy.
    assert "RuntimeError: injected" in Path(results["raise"]["log"]).read_text()


def test_an_exception_in_a_fold_fails_it_once_and_the_others_finish(cluster_runs):
    root, results = cluster_runs
    failing = results["raise"]
    log = Path(failing["log"]).read_text()
    assert failing["status"] == 2, log
    assert log.count(f"fold {FAILING} failed") == 1
    assert "retried" not in log
    assert f"fold(s) not done: {run_folder(root, 'raise')}: {FAILING}" in log
    for actor in ACTORS:
        done = (runs.fold_dir(run_folder(root, "raise"), actor) / runs.DONE).is_file()
        assert done == (actor != FAILING), actor
    assert (run_folder(root, "raise") / runs.SUMMARY_JSON).is_file()  # of the folds that finished


def test_ctrl_c_keeps_every_finished_fold_and_cancels_the_rest(cluster_runs):
    root, results = cluster_runs
    stopped = results["interrupt"]
    log = Path(stopped["log"]).read_text()
    assert stopped["interrupted"] and stopped["status"] == 130, log
    assert "stopped: " in log and "cancelled" in log
    done = [
        actor
        for actor in ACTORS
        if (runs.fold_dir(run_folder(root, "interrupt"), actor) / runs.DONE).is_file()
    ]
    assert done, log
    for actor in done:  # finished folds are whole, and the same as the local run's
        assert predictions(run_folder(root, "interrupt"), actor) == predictions(
            run_folder(root, "local"), actor
        )


def test_a_node_that_dies_loses_no_fold(cluster_runs):
    """A preempted machine: its fold is resubmitted to the node left, and every fold is the same."""
    root, results = cluster_runs
    node = results["node"]
    log = Path(node["log"]).read_text()
    assert node["killed"] is not None and node["status"] == 0, log
    assert "retried after its node died (NodeDiedError; try 2 of 4)" in log
    for actor in ACTORS:
        assert predictions(run_folder(root, "node"), actor) == predictions(run_folder(root, "local"), actor)


def test_a_cluster_the_driver_starts_writes_the_same_fold(cluster_runs):
    root, results = cluster_runs
    local = results["local"]
    assert local["status"] == 0, Path(local["log"]).read_text()
    assert predictions(run_folder(root, "ray-local"), "1003") == predictions(
        run_folder(root, "local"), "1003"
    )


def test_a_worker_with_another_cremad_is_refused_naming_both():
    driver = {"version": "0.1.0", "source": "aaaa", "path": "/driver/cremad"}
    check_code(driver, dict(driver, path="/elsewhere/cremad"), "10.0.0.2 (abc)")  # same code: fine
    with pytest.raises(
        CodeMismatchError, match="0.2.0 \\(source bbbb, /node/cremad\\).*0.1.0 \\(source aaaa"
    ):
        check_code(driver, {"version": "0.2.0", "source": "bbbb", "path": "/node/cremad"}, "10.0.0.2 (abc)")
