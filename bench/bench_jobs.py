"""CPU throughput of `cremad loso --jobs N`: N single-threaded fold processes against one process.

    python bench/bench_jobs.py                                   # model 3, CASIA-shaped folds
    python bench/bench_jobs.py --model 2 --clips 400 --frames 201 --out /tmp/jobs.json   # Emo-DB-shaped

Each configuration trains `--epochs` epochs of one paper model with `model.fit` (batch 32) on
random data of a fold's shape, in the fresh processes of `cremad.loso.fold_pool` (the pool
`loso --jobs` trains in), and times every epoch after the first
(which traces the graph):

- `1 process, default threads`: TensorFlow on every core, as `cremad loso` without --threads;
- `1 process, 1 thread`: as `--threads 1`;
- `N processes, 1 thread each`: as `--jobs N`, started together.

Throughput is epochs per second summed over the processes; the table prints each configuration's
throughput relative to the first. Run it on an otherwise idle machine: other work on the cores
shows up as lower throughput. The defaults are a CASIA fold (750 training clips of 494 frames).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a plain checkout


def epoch_seconds(model_id: int, clips: int, frames: int, epochs: int) -> list[float]:
    """Seconds of each epoch after the first, in a fold process of `cremad.loso.fold_pool`."""
    import keras
    import numpy as np

    from cremad.models import build_model

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((clips, frames, 13)).astype("float32")
    y = rng.integers(0, 6, size=clips)
    model = build_model(model_id, frames, 13)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    stamps = []
    stamp = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: stamps.append(time.perf_counter())
    )
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, callbacks=[stamp])
    return [later - earlier for earlier, later in zip(stamps, stamps[1:])]


def run_configuration(processes: int, threads: int | None, args) -> dict:
    """`processes` fold processes (the pool `loso --jobs` uses) training side by side; each one's
    epoch times."""
    from cremad.loso import fold_pool

    with fold_pool(processes, threads) as pool:
        futures = [
            pool.submit(epoch_seconds, args.model, args.clips, args.frames, args.epochs)
            for _ in range(processes)
        ]
        per_process = [future.result() for future in futures]
    means = [sum(times) / len(times) for times in per_process]
    return {
        "processes": processes,
        "threads": threads or "default",
        "epoch_s": per_process,
        "mean_epoch_s": means,
        "epochs_per_s": sum(1 / mean for mean in means),
    }


def main(argv=None) -> int:
    from cremad.model_names import MODEL_IDS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=int, default=3, choices=MODEL_IDS)
    parser.add_argument("--clips", type=int, default=750, help="training clips per fold (CASIA: 750)")
    parser.add_argument("--frames", type=int, default=494, help="frames per clip (CASIA: 494)")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per process; the first is not timed")
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count(), help="processes side by side (default: cores)"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")

    rows = [
        run_configuration(1, None, args),
        run_configuration(1, 1, args),
        run_configuration(args.jobs, 1, args),
    ]
    print(
        f"model {args.model}, {args.clips} clips x {args.frames} frames, {args.epochs - 1} timed epochs, "
        f"{os.cpu_count()} cores"
    )
    print("| configuration | s per epoch (each process) | epochs/s, all processes | vs first row |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        label = (
            f"{row['processes']} process{'es' if row['processes'] > 1 else ''}, {row['threads']} thread(s)"
        )
        each = " / ".join(f"{mean:.2f}" for mean in row["mean_epoch_s"])
        print(
            f"| {label} | {each} | {row['epochs_per_s']:.3f} "
            f"| {row['epochs_per_s'] / rows[0]['epochs_per_s']:.2f}x |"
        )
    if args.out:
        from cremad.atomic import write_json

        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(
            args.out,
            {
                "machine": platform.platform(),
                "cores": os.cpu_count(),
                "model": args.model,
                "clips": args.clips,
                "frames": args.frames,
                "epochs": args.epochs,
                "rows": rows,
            },
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
