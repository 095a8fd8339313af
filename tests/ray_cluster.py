"""A two-node Ray cluster on this machine and `cremad loso --backend ray` runs against it, as
tests/test_ray.py and bench/bench_ray.py need them. Run inside a network namespace of its own
(`loopback_namespace`), so that Ray's traffic stays on loopback.

    python tests/ray_cluster.py SCENARIO.json

SCENARIO.json names the cluster and the driver runs; each run's command, exit status and log
are written back into SCENARIO.json's "results". A driver run can
- see its runs folder alone (`private_runs`): the driver in a mount namespace of its own with a
  tmpfs on that folder, copied out when it ends, so no worker can read or write it;
- kill one fold's worker with SIGKILL once that fold trains (`kill_one_fold`), found by the
  partial history.csv that Keras' CSVLogger writes in the fold's scratch folder;
- be interrupted (SIGINT, as Ctrl-C) once its first fold is done (`interrupt_after_a_fold`);
- lose a whole node (`kill_a_node`): the raylet of a node whose worker trains a fold, SIGKILLed
  (never the head's, which holds the cluster).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Ray 2.60 turns token authentication on by default; a throwaway loopback cluster needs none.
os.environ["RAY_AUTH_MODE"] = "disabled"
NAMESPACE_SCRIPT = 'ip link set lo up && exec "$@"'
PRIVATE_RUNS_SCRIPT = (
    'mount -t tmpfs cremad-runs "$RUNS" || exit 97; "$@"; status=$?; cp -a "$RUNS/." "$COPY_TO"; exit $status'
)


def loopback_namespace(argv: list[str]) -> list[str]:
    """`argv` in a new network namespace whose only interface is loopback (needs root)."""
    return ["unshare", "--net", "--", "sh", "-c", NAMESPACE_SCRIPT, "sh", *argv]


def folds_in_training() -> list[int]:
    """The pids of the Ray workers that are training a fold now: their scratch folders hold
    Keras' partial history.csv, named after the pid."""
    pids = []
    for partial in Path(tempfile.gettempdir()).glob("cremad-fold-*/.history.csv.tmp-*"):
        pid = int(partial.name.rsplit("-", 1)[1])
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"ray::fold-"):
            pids.append(pid)
    return pids


def fold_in_training() -> int | None:
    """The pid of a Ray worker that is training a fold now, or None."""
    return next(iter(folds_in_training()), None)


def node_in_training(spare: set[int]) -> int | None:
    """The raylet pid of a node (not in `spare`) one of whose workers trains a fold now, or None."""
    for pid in folds_in_training():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])  # a worker's parent is its node's raylet
        if parent not in spare:
            return parent
    return None


def run_driver(run: dict, env: dict[str, str], spare: set[int] = frozenset()) -> dict:
    """One `cremad loso` driver run as `run` describes it; returns its exit status, the pid it
    killed (if asked) and the seconds it took."""
    command = [sys.executable, "-m", "cremad", *run["args"]]
    env = {**env, **run.get("env", {})}
    if run.get("private_runs"):
        Path(run["runs"]).mkdir(parents=True, exist_ok=True)
        Path(run["copy_to"]).mkdir(parents=True, exist_ok=True)
        env.update(RUNS=run["runs"], COPY_TO=run["copy_to"])
        command = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            PRIVATE_RUNS_SCRIPT,
            "sh",
        ] + command
    started, killed, interrupted = time.time(), None, False
    with open(run["log"], "w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run.get("cwd"))
        while driver.poll() is None:
            if run.get("kill_one_fold") and killed is None:
                killed = fold_in_training()
                if killed is not None:
                    os.kill(killed, signal.SIGKILL)
            if run.get("kill_a_node") and killed is None:
                killed = node_in_training(spare)
                if killed is not None:
                    os.kill(killed, signal.SIGKILL)
            if run.get("interrupt_after_a_fold") and not interrupted:
                if any(Path(run["runs"]).rglob("done.json")):
                    driver.send_signal(signal.SIGINT)
                    interrupted = True
            time.sleep(0.05)
    return {
        "status": driver.returncode,
        "killed": killed,
        "interrupted": interrupted,
        "seconds": round(time.time() - started, 1),
    }


def head_raylets(cluster) -> set[int]:
    """The head node's raylet pid: the node whose death would take the cluster with it."""
    return {process.process.pid for process in cluster.head_node.all_processes.get("raylet", [])}


def main(path: str) -> int:
    from ray.cluster_utils import Cluster

    scenario = json.loads(Path(path).read_text())
    node_env = scenario.get("node_env", {})
    saved = {name: os.environ.get(name) for name in node_env}
    os.environ.update(node_env)  # the nodes' workers inherit it; the drivers do not
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": scenario.get("cpus_per_node", 1), "object_store_memory": 300 * 2**20},
    )
    try:
        for _ in range(scenario.get("nodes", 2) - 1):
            cluster.add_node(num_cpus=scenario.get("cpus_per_node", 1), object_store_memory=300 * 2**20)
        cluster.wait_for_nodes()
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)
        env = {name: value for name, value in os.environ.items() if name != "RAY_ADDRESS"}
        results = []
        for run in scenario["runs"]:
            run["args"] = [arg.replace("{address}", cluster.address) for arg in run["args"]]
            results.append(run_driver(run, env, head_raylets(cluster)))
        scenario["results"] = results
        Path(path).write_text(json.dumps(scenario, indent=2))
    finally:
        cluster.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
