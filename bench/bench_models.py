"""Training throughput of the paper's four models at the paper's input size, against the floor
set by their matrix products.

    python bench/bench_models.py                       # all four models, batch 32, 501 frames
    python bench/bench_models.py --models 1 3 --steps 20 --repeats 3 --out /tmp/bench.json

Random data stands in for MFCCs (throughput does not depend on the values). Each model is
compiled as the LOSO trainer compiles it (Adam, sparse categorical cross-entropy), warmed up
(the first steps trace and compile), then timed over `--steps` optimizer steps with
`train_on_batch`, `--repeats` times; the table shows the median repeat and the JSON keeps every
repeat. On TensorFlow without a GPU each model is timed twice in the same run, with Keras' own
LSTM loop ("stock", `cremad.lstm.cpu_kernel("stock")`) and with the fused recurrence ("fused",
what cremad trains with), so the two share the machine's state; with `--jit-compile true` only
"stock" (XLA has no kernel for the fused one).

The floor: the step's matrix products (every LSTM's per-frame products, forward and the two
backward ones; every Dense layer's) at the rate this machine reaches on each product's own shapes
in one op (the LSTM's B x (I + H) by (I + H) x 4H products batched over the frames: no per-op
dispatch). The rest of a step (gate nonlinearities, the optimizer, copies) is left out, so the
floor is a lower bound. `--profile` splits each LSTM layer's fused time into its forward kernel,
the backward loop through time and the backward products over all frames.

Table II's projection: 91 folds x 30 epochs x 230 steps (7360 training clips at batch 32), training
steps only, one fold at a time on one thread; `--jobs 2` runs two such folds on two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "bench")]  # run as a script from a plain checkout

PAPER_TRAIN_CLIPS = 7360  # section II-C: training clips per LOSO fold
TABLE_II_FOLDS, TABLE_II_EPOCHS = 91, 30  # CREMA-D's actors; the default recipe's epochs


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


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's word for it."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


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
    """Build, compile and time model `model_id`'s training step (under whatever CPU LSTM kernel is
    in force: build, trace and run all happen here)."""
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
    typical = statistics.median(step_ms)
    return {
        "model": model_id,
        "parameters": model.count_params(),
        "ms_per_step": typical,
        "ms_per_step_repeats": step_ms,
        "sequences_per_s": batch_size / typical * 1000,
        "epoch_s": PAPER_TRAIN_CLIPS / batch_size * typical / 1000,
        "jit_compile": str(jit_compile),
    }


def matrix_products(model, batch_size: int) -> list[dict]:
    """The training step's matrix products, one entry per layer call: its shape (rows x inner by
    inner x cols, `count` times) and its FLOPs, forward and backward (3x the forward: the input
    and weight gradients). A recurrent layer's per-frame product is B x (I + H) by (I + H) x gH,
    g its cell's gates (`cremad.model_names.CELLS`: LSTM 4, GRU 3)."""
    import keras

    from cremad.model_names import CELLS
    from cremad.models import cell_of

    products = []

    def add(kind, rows, inner, cols, count):
        flops = 3 * 2 * rows * inner * cols * count
        products.append(
            {"kind": kind, "rows": rows, "inner": inner, "cols": cols, "count": count, "flops": flops}
        )

    def add_recurrent(layer, shape):
        gates = CELLS[cell_of(layer)].gates
        add(cell_of(layer), batch_size, shape[-1] + layer.units, gates * layer.units, shape[1])

    for layer in model.layers:
        for node in layer._inbound_nodes:  # one per call: a shared layer counts each
            if not node.arguments.keras_tensors:
                continue  # the Input layer
            shape = node.arguments.keras_tensors[0].shape  # (None, ..., features)
            if isinstance(layer, keras.layers.Bidirectional):
                add_recurrent(layer.forward_layer, shape)
                add_recurrent(layer.backward_layer, shape)
            elif isinstance(layer, keras.layers.RNN):
                add_recurrent(layer, shape)
            elif isinstance(layer, keras.layers.Dense):
                rows = batch_size * math.prod(shape[1:-1])
                add("dense", rows, shape[-1], layer.units, 1)
    return products


def gemm_rate(rows: int, inner: int, cols: int, count: int, repeats: int = 20) -> float:
    """GFLOP/s of `count` products (rows x inner) @ (inner x cols) in one op (batched over count)."""
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((count, rows, inner)).astype("float32"))
    b = tf.constant(rng.standard_normal((inner, cols)).astype("float32"))
    from bench_features import median_seconds

    product = tf.function(lambda a, b: tf.reduce_sum(tf.matmul(a, b)[:, :1, :1]))
    seconds = median_seconds(lambda: float(product(a, b)), repeats)
    return 2 * rows * inner * cols * count / seconds / 1e9


def floor_ms(products: list[dict], rates: dict) -> float:
    """The products' time at the measured rates (`rates`: shape -> GFLOP/s), in ms."""
    total = 0.0
    for product in products:
        key = (product["rows"], product["inner"], product["cols"], product["count"])
        if key not in rates:
            rates[key] = gemm_rate(*key)
        total += product["flops"] / (rates[key] * 1e9) * 1000
    return total


def profile_lstm(n_inputs: int, units: int, n_frames: int, batch_size: int, repeats: int = 5) -> dict:
    """Where one fused LSTM layer's training time goes: its forward kernel, the backward loop
    through time, and the backward's products over every frame (the rest), in ms."""
    import numpy as np
    import tensorflow as tf
    from bench_features import median_seconds

    from cremad import lstm

    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((n_frames, batch_size, n_inputs)).astype("float32"))
    kernel = tf.Variable(rng.uniform(-0.1, 0.1, (n_inputs, 4 * units)).astype("float32"))
    recurrent = tf.Variable(rng.uniform(-0.1, 0.1, (units, 4 * units)).astype("float32"))
    bias = tf.Variable(np.zeros(4 * units, "float32"))
    h0 = tf.zeros((batch_size, units))

    @tf.function
    def forward():
        return tf.reduce_sum(lstm.fused_lstm(x, kernel, recurrent, bias, h0, h0)[0])

    @tf.function
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(lstm.fused_lstm(x, kernel, recurrent, bias, h0, h0)[0] ** 2)
        return tape.gradient(loss, [x, kernel, recurrent, bias])

    gates = lstm._block_lstm(x, kernel, recurrent, bias, h0, h0)  # i, cs, f, o, ci, co, h

    @tf.function
    def through_time():
        return lstm._backward_through_time()(gates[6], h0, h0, *gates[:6], h0, recurrent)[1]

    def median_ms(function):
        return 1000 * median_seconds(function, repeats)

    total, forward_only, loop = median_ms(forward_backward), median_ms(forward), median_ms(through_time)
    return {
        "inputs": n_inputs,
        "units": units,
        "frames": n_frames,
        "forward_ms": forward_only,
        "backward_loop_ms": loop,
        "backward_products_ms": total - forward_only - loop,
        "total_ms": total,
    }


def main(argv=None) -> int:
    from cremad.model_names import MODEL_IDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=list(MODEL_IDS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frames", type=int, default=501, help="501 = a 5.005 s clip at 10 ms")
    parser.add_argument("--features", type=int, default=13)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per repeat")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="TensorFlow threads (default 1, as --jobs runs)"
    )
    parser.add_argument("--profile", action="store_true", help="split each fused LSTM layer's time")
    parser.add_argument(
        "--jit-compile",
        default="auto",
        choices=["auto", "true", "false"],
        help="passed to model.compile (auto: XLA where Keras supports it for the model)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "models.json")
    args = parser.parse_args(argv)

    from cremad.process import limit_threads, quiet_libraries, warn_if_gpu_unseen

    quiet_libraries(import_keras=True)
    limit_threads(args.threads)
    warn_if_gpu_unseen()
    import keras

    from cremad.lstm import cpu_kernel, fused_available
    from cremad.models import build_model

    jit_compile = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    backend, device = keras.backend.backend(), device_description()
    # XLA cannot compile the fused kernel: under jit_compile=True every LSTM runs Keras' loop.
    kernels = ["stock", "fused"] if fused_available() and jit_compile is not True else ["stock"]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(
        f"backend {backend}  keras {keras.__version__}  device {device}  cpu {cpu_model()}  cores {cores}  "
        f"threads {args.threads}  load {os.getloadavg()[0]:.2f}  batch {args.batch_size}  "
        f"frames {args.frames}  features {args.features}"
    )
    timing = (args.batch_size, args.frames, args.features, args.steps, args.warmup, args.repeats, jit_compile)
    rows, rates = [], {}
    print(f"{'model':>5}  {'stock ms':>8}  {'fused ms':>8}  {'speed-up':>8}  {'floor ms':>8}  x floor")
    for model_id in args.models:
        row = {"model": model_id}
        for kernel in kernels:
            with cpu_kernel(kernel if backend == "tensorflow" else "stock"):
                row[kernel] = time_model(model_id, *timing)
        if backend == "tensorflow" and device == "cpu":
            row["floor_ms"] = floor_ms(
                matrix_products(build_model(model_id, args.frames, args.features), args.batch_size), rates
            )
        rows.append(row)
        stock = row["stock"]["ms_per_step"]
        fused = row["fused"]["ms_per_step"] if "fused" in row else None
        floor = row.get("floor_ms")
        print(
            f"{model_id:>5}  {stock:8.1f}  "
            + (f"{fused:8.1f}  {stock / fused:7.2f}x  " if fused else f"{'-':>8}  {'-':>8}  ")
            + (f"{floor:8.1f}  {(fused or stock) / floor:5.2f}" if floor else ""),
            flush=True,
        )
    steps_per_fold = TABLE_II_EPOCHS * math.ceil(PAPER_TRAIN_CLIPS / args.batch_size)
    projection = {}
    for kernel in kernels:
        total_ms = sum(row[kernel]["ms_per_step"] for row in rows)
        projection[kernel] = {
            "step_ms_all_models": total_ms,
            "table_ii_hours": TABLE_II_FOLDS * steps_per_fold * total_ms / 3.6e6,
        }
    line = "  ".join(
        f"{kernel} {value['step_ms_all_models']:.0f} ms -> {value['table_ii_hours']:.1f} h"
        for kernel, value in projection.items()
    )
    if "fused" in projection:
        speed_up = projection["stock"]["step_ms_all_models"] / projection["fused"]["step_ms_all_models"]
        line += f"  (speed-up {speed_up:.2f}x)"
    print(f"models {','.join(map(str, args.models))} together: {line}")
    print(f"Table II: {TABLE_II_FOLDS} folds x {steps_per_fold} steps, training steps only, one thread")

    profiles = []
    if args.profile and "fused" in kernels:
        shapes = sorted(
            {
                (p["inner"] - p["cols"] // 4, p["cols"] // 4, p["count"])
                for row in rows
                for p in matrix_products(
                    build_model(row["model"], args.frames, args.features), args.batch_size
                )
                if p["kind"] == "lstm" and p["count"] > 1
            }
        )
        print("fused LSTM layer (fwd + bwd), ms: forward kernel | backward loop | backward products")
        for n_inputs, units, frames in shapes:
            profile = profile_lstm(n_inputs, units, frames, args.batch_size)
            profile["floor_ms"] = floor_ms(
                [
                    {
                        "rows": args.batch_size,
                        "inner": n_inputs + units,
                        "cols": 4 * units,
                        "count": frames,
                        "flops": 3 * 2 * args.batch_size * (n_inputs + units) * 4 * units * frames,
                    }
                ],
                rates,
            )
            profiles.append(profile)
            print(
                f"  {n_inputs:>3} -> {units:>3} units x {frames} frames: {profile['total_ms']:6.1f} = "
                f"{profile['forward_ms']:5.1f} | {profile['backward_loop_ms']:5.1f} | "
                f"{profile['backward_products_ms']:5.1f}   (floor {profile['floor_ms']:.1f})"
            )

    result = {
        "backend": backend,
        "keras": keras.__version__,
        "device": device,
        "cpu": cpu_model(),
        "cpu_cores": cores,
        "threads": args.threads,
        "host": platform.node(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "batch_size": args.batch_size,
        "frames": args.frames,
        "features": args.features,
        "steps": args.steps,
        "repeats": args.repeats,
        "models": rows,
        "projection": projection,
        "gemm_rates_gflops": {"x".join(map(str, key)): rate for key, rate in rates.items()},
        "lstm_profile": profiles,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.out.with_name(args.out.name + ".tmp")
    temporary.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(temporary, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
