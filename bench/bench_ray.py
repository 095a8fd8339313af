"""Folds per hour of `cremad loso --backend ray` on a two-node Ray cluster against `--jobs 2`,
on the same cores, the same folds and the same seed.

    python bench/bench_ray.py                          # model 2, the 6-actor demo, 15 epochs
    python bench/bench_ray.py --model 1 --epochs 5 --out /tmp/ray.json

Both runs train every fold of the synthetic demo corpus (`cremad synth`) with `--experiment demo`,
one TensorFlow thread per fold:
- `--jobs 2`: two fold processes on this machine, writing the run folder themselves;
- Ray: a cluster of two one-CPU nodes on this machine (`ray.cluster_utils.Cluster`, started
  before the clock), `--backend ray --ray-address`: the features travel to the workers through
  the object store and each fold's files back to the driver, which writes them.
Each time is the driver command's wall time, start-up and feature loading included (the
features are cached before either run). The cluster runs inside a network namespace of its own
(needs root), as the tests' does. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the loopback cluster harness the tests use
from bench_models import cpu_model  # noqa: E402
from ray_cluster import loopback_namespace  # noqa: E402

INSIDE = "CREMAD_BENCH_RAY_NAMESPACE"


def cremad(*args: str, cwd: Path) -> float:
    """Run `cremad ARGS`; its wall seconds."""
    started = time.time()
    subprocess.run([sys.executable, "-m", "cremad", *args], cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.time() - started


def measure(args, root: Path) -> dict:
    from cremad.runs import PREDICTIONS, fold_dir, run_dir

    data, cache = root / "CREMA-D", root / "cache"
    subprocess.run(
        [sys.executable, "-m", "cremad", "synth", str(data), "--actors", str(args.actors)], check=True
    )
    cremad("features", "--data", str(data), "--cache-dir", str(cache), cwd=root)
    common = [
        "loso", "--model", str(args.model), "--data", str(data), "--experiment", "demo", "--epochs",
        str(args.epochs), "--seed", "0", "--threads", "1", "--cache-dir", str(cache), "--no-save-models",
    ]  # fmt: skip
    local_seconds = cremad(*common, "--runs", str(root / "local"), "--jobs", "2", cwd=root)

    scenario = {
        "nodes": 2,
        "cpus_per_node": 1,
        "runs": [
            {
                "name": "ray",
                "args": [
                    *common,
                    "--runs",
                    str(root / "ray"),
                    "--backend",
                    "ray",
                    "--ray-address",
                    "{address}",
                ],
                "log": str(root / "ray.log"),
            }
        ],
    }
    path = root / "scenario.json"
    path.write_text(json.dumps(scenario))
    subprocess.run([sys.executable, str(REPO / "tests" / "ray_cluster.py"), str(path)], cwd=root, check=True)
    (result,) = json.loads(path.read_text())["results"]
    if result["status"] != 0:
        raise SystemExit(f"the Ray run failed:\n{Path(scenario['runs'][0]['log']).read_text()}")

    actors = [str(1001 + index) for index in range(args.actors)]

    def fold_predictions(name: str, actor: str) -> bytes:
        folder = fold_dir(run_dir(root / name, "cremad", "demo", f"model{args.model}", 0), actor)
        return (folder / PREDICTIONS).read_bytes()

    same = all(fold_predictions("ray", actor) == fold_predictions("local", actor) for actor in actors)
    folds = len(actors)
    local_rate, ray_rate = 3600 * folds / local_seconds, 3600 * folds / result["seconds"]
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "model": args.model,
        "folds": folds,
        "epochs": args.epochs,
        "jobs2_seconds": round(local_seconds, 1),
        "ray_seconds": result["seconds"],
        "jobs2_folds_per_hour": round(local_rate, 1),
        "ray_folds_per_hour": round(ray_rate, 1),
        "ray_over_jobs2": round(ray_rate / local_rate, 3),
        "same_predictions": same,
        "load_average_after": os.getloadavg(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=int, default=2)
    parser.add_argument("--actors", type=int, default=6, help="demo actors = folds (default: 6)")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--out", help="write the figures as JSON here too")
    parser.add_argument(
        "--no-namespace",
        action="store_true",
        help="run the cluster without a network namespace of its own (Ray then binds this machine's "
        "network address, as `ray start` does)",
    )
    args = parser.parse_args()
    if os.environ.get(INSIDE) != "1" and not args.no_namespace:
        if os.geteuid() != 0:  # `make bench` goes on with the other benchmarks
            print(
                "bench_ray.py: skipped: its loopback-only network namespace needs root (unshare --net); "
                "--no-namespace runs the cluster on this machine's network address",
                file=sys.stderr,
            )
            return 0
        env = {**os.environ, INSIDE: "1"}  # start again inside the namespace
        return subprocess.run(loopback_namespace([sys.executable, *sys.argv]), env=env).returncode
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as folder:
        figures = measure(args, Path(folder))
    print(json.dumps(figures, indent=2))
    print(
        f"model {args.model}, {figures['folds']} folds x {args.epochs} epochs on {figures['cpu']} "
        f"({figures['cores']} cores): --jobs 2 {figures['jobs2_folds_per_hour']:.0f} folds/h, Ray 2 nodes "
        f"{figures['ray_folds_per_hour']:.0f} folds/h = {figures['ray_over_jobs2']:.2f}x (target >= 0.9)"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
