"""Training throughput of the paper's four models at the paper's input size.

    python bench/bench_models.py                       # all four models, batch 32, 501 frames
    python bench/bench_models.py --models 1 3 --steps 20 --repeats 3 --out /tmp/bench.json

Random data stands in for MFCCs (throughput does not depend on the values). Each model is
compiled as the LOSO trainer compiles it (Adam, sparse categorical cross-entropy), warmed up
(the first steps trace and compile), then timed over `--steps` optimizer steps with
`train_on_batch`, `--repeats` times; the table shows the best repeat (the least disturbed by
other processes) and the JSON keeps every repeat. The projected epoch time is for the paper's
7360 training clips per LOSO fold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run as a script from a plain checkout

PAPER_TRAIN_CLIPS = 7360  # section II-C: training clips per LOSO fold


def device_description() -> str:
    """The device Keras trains on: 'cpu' or the GPU's name."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
    elif backend == "jax":
        import jax

        if jax.default_backend() == "gpu":
            return jax.devices()[0].device_kind
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    return "cpu"


def time_model(
    model_id: int,
    batch_size: int,
    n_frames: int,
    n_features: int,
    steps: int,
    warmup: int,
    repeats: int,
    jit_compile,
) -> dict:
    import keras
    import numpy as np

    from cremad.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model(model_id, n_frames, n_features)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, n_frames, n_features)).astype("float32")
    y = rng.integers(0, 6, size=batch_size)
    for _ in range(warmup):
        model.train_on_batch(x, y)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            loss = model.train_on_batch(x, y)
        float(np.asarray(loss))  # wait for the device
        seconds.append(time.perf_counter() - start)
    step_ms = [1000 * s / steps for s in seconds]
    best = min(step_ms)
    return {
        "model": model_id,
        "parameters": model.count_params(),
        "ms_per_step": best,
        "ms_per_step_repeats": step_ms,
        "sequences_per_s": batch_size / best * 1000,
        "epoch_s": PAPER_TRAIN_CLIPS / batch_size * best / 1000,
        "jit_compile": str(jit_compile),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=501, help="501 = a 5.005 s clip at 10 ms")
    parser.add_argument("--features", type=int, default=13)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--jit-compile",
        default="auto",
        choices=["auto", "true", "false"],
        help="passed to model.compile (auto: XLA where Keras supports it for the model)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "models.json")
    args = parser.parse_args(argv)

    import keras

    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    backend, device = keras.backend.backend(), device_description()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"backend {backend}  keras {keras.__version__}  device {device}  cpu cores {cores}  "
        f"batch {args.batch_size}  frames {args.frames}  features {args.features}"
    )
    rows = []
    for model_id in args.models:
        rows.append(
            time_model(
                model_id,
                args.batch_size,
                args.frames,
                args.features,
                args.steps,
                args.warmup,
                args.repeats,
                jit_compile,
            )
        )
        row = rows[-1]
        print(
            f"model {model_id}: {row['parameters']:6d} params  {row['ms_per_step']:7.1f} ms/step  "
            f"{row['sequences_per_s']:7.1f} seq/s  "
            f"{row['epoch_s']:6.1f} s per {PAPER_TRAIN_CLIPS}-clip epoch",
            flush=True,
        )

    result = {
        "backend": backend,
        "keras": keras.__version__,
        "device": device,
        "cpu_cores": cores,
        "host": platform.node(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "batch_size": args.batch_size,
        "frames": args.frames,
        "features": args.features,
        "steps": args.steps,
        "repeats": args.repeats,
        "models": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(temporary, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
