"""Does every recurrent layer of every model reach the kernel its cell must reach on a GPU: cuDNN
for an LSTM (the paper's CuDNNLSTM), and for a GRU where the backend has one (the record's
`cremad.model_names.CELLS`)?

    KERAS_BACKEND=jax   python bench/gpu_check.py
    KERAS_BACKEND=torch python bench/gpu_check.py --models 1 2 --steps 20
    KERAS_BACKEND=tensorflow python bench/gpu_check.py --json /tmp/gpu_check.json

For each model: one training step (forward and backward) on the GPU, with two pieces of
evidence that must agree.

1. Which recurrent calls took Keras' cuDNN path: `keras.src.backend.<cell>` (and the fused
   `bidirectional_<cell>` on JAX) is wrapped for the duration of the step, for every cell of
   the record; on TensorFlow and JAX it raises NotImplementedError when cuDNN cannot be used, so
   a call that returns took cuDNN (JAX's GRU, which has none, returns from a lax.scan).
2. The cuDNN RNN ops in what was executed: TensorFlow, CudnnRNNV3 nodes in the traced step's
   graph (they have no CPU kernel, so a step that ran on them ran cuDNN); JAX, custom calls to
   `cudnn_rnn` in the compiled XLA program that is then run; PyTorch, `aten::_cudnn_rnn` events in
   a torch.profiler trace of `model.train_on_batch` (PyTorch falls back silently, so this is the
   deciding evidence there).

The check passes when no recurrent call was refused the backend's path and the executed program
holds at least one cuDNN forward op per call whose cell has cuDNN on this backend. The cuDNN
backward ops and the generic recurrent while-loops left in the program (TF, JAX; expect 0) are
reported alongside. Then the training throughput is timed as in bench/bench_models.py. Without a
GPU it says "no GPU" and exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))  # run as a script from a plain checkout


def gpu_available() -> bool:
    """Whether the active Keras backend sees a GPU (CUDA/cuDNN for PyTorch)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available() and torch.backends.cudnn.is_available()
    return False


@contextlib.contextmanager
def spy_on_recurrent_calls():
    """Record every call Keras makes to its backend kernels of the record's cells (`lstm`, `gru`
    and their `bidirectional_` versions): (function, cell, kernel, cudnn)."""
    from keras.src import backend as keras_backend

    from cremad.model_names import CELLS

    calls = []
    originals = {}

    def wrap(name, original):
        cell = name.removeprefix("bidirectional_")

        def spied(*args, **kwargs):
            kernel = kwargs.get("kernel", kwargs.get("fwd_kernel"))
            where = getattr(kernel, "path", "?")
            try:
                result = original(*args, **kwargs)
            except NotImplementedError:
                calls.append({"function": name, "cell": cell, "kernel": where, "cudnn_path": False})
                raise
            calls.append({"function": name, "cell": cell, "kernel": where, "cudnn_path": True})
            return result

        return spied

    for name in [prefix + cell for cell in CELLS for prefix in ("", "bidirectional_")]:
        if hasattr(keras_backend, name):
            originals[name] = getattr(keras_backend, name)
            setattr(keras_backend, name, wrap(name, originals[name]))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(keras_backend, name, original)


def _count(pattern: str, text: str) -> int:
    return len(re.findall(pattern, text))


def _tensorflow_step(model, x, y):
    import keras
    import tensorflow as tf

    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return loss, tape.gradient(loss, model.trainable_variables)

    with spy_on_recurrent_calls() as calls:
        graph = step.get_concrete_function(x, y).graph.as_graph_def()
    op_types = [node.op for node in graph.node]
    op_types += [node.op for function in graph.library.function for node in function.node_def]
    step(x, y)  # run it: CudnnRNN ops have no CPU kernel, so this executes them on the GPU
    return {
        "cudnn_forward_ops": sum(op in ("CudnnRNN", "CudnnRNNV2", "CudnnRNNV3") for op in op_types),
        "cudnn_backward_ops": sum(op.startswith("CudnnRNNBackprop") for op in op_types),
        "generic_loops": sum(op in ("While", "StatelessWhile") for op in op_types),
        "evidence": "CudnnRNN* nodes in the executed tf.function graph",
    }, calls


def _jax_step(model, x, y):
    import jax
    import keras

    loss_fn = keras.losses.SparseCategoricalCrossentropy()

    def loss(trainable, non_trainable, x, y):
        predictions, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
        return loss_fn(y, predictions), non_trainable

    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    step = jax.jit(jax.value_and_grad(loss, has_aux=True))
    with spy_on_recurrent_calls() as calls:
        lowered = step.lower(trainable, non_trainable, x, y)
    compiled = lowered.compile()
    jax.block_until_ready(compiled(trainable, non_trainable, x, y))  # the program inspected below
    hlo, stablehlo = compiled.as_text(), lowered.as_text()

    def custom_calls(target):  # in the compiled HLO, or failing that the StableHLO it came from
        return max(
            _count(rf'custom_call_target="{target}"', hlo), _count(rf"custom_call @{target}\(", stablehlo)
        )

    return {
        # jaxlib names the targets cudnn_rnn / cudnn_rnn_bwd, and since its FFI port
        # cudnn_rnn_ffi / cudnn_rnn_bwd_ffi (hipdnn_* on ROCm).
        "cudnn_forward_ops": custom_calls(r"\w*dnn_rnn(?:_ffi)?"),
        "cudnn_backward_ops": custom_calls(r"\w*dnn_rnn_bwd(?:_ffi)?"),
        "generic_loops": _count(r"\bwhile\(", hlo),
        "evidence": "cudnn_rnn custom calls in the compiled XLA program that was run",
    }, calls


def _torch_step(model, x, y):
    import torch
    from torch.profiler import ProfilerActivity, profile

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)  # build the optimizer outside the trace
    activities = [ProfilerActivity.CPU]
    if torch.cuda.is_available():
        activities.append(ProfilerActivity.CUDA)
    with spy_on_recurrent_calls() as calls, profile(activities=activities) as trace:
        model.train_on_batch(x, y)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
    counts = {event.key: event.count for event in trace.key_averages()}
    return {
        "cudnn_forward_ops": sum(n for key, n in counts.items() if key == "aten::_cudnn_rnn"),
        "cudnn_backward_ops": sum(n for key, n in counts.items() if key == "aten::_cudnn_rnn_backward"),
        "generic_loops": None,  # PyTorch's fallback is a Python loop; the op count decides
        "evidence": "aten::_cudnn_rnn events in a torch.profiler trace of model.train_on_batch",
    }, calls


def cudnn_report(model, batch_size: int = 8) -> dict:
    """Train `model` one step on the GPU and report whether each recurrent call reached the
    kernel its cell must reach (`cremad.model_names.CELLS`: cuDNN on the cell's cudnn_backends)."""
    import keras
    import numpy as np

    from cremad.model_names import CELLS

    backend = keras.backend.backend()
    steps = {"tensorflow": _tensorflow_step, "jax": _jax_step, "torch": _torch_step}
    if backend not in steps:
        raise ValueError(f"no cuDNN check for the {backend!r} backend")
    n_frames, n_features = model.input_shape[1:]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch_size, n_frames, n_features)).astype("float32")
    y = rng.integers(0, model.output_shape[-1], size=batch_size).astype("int32")
    ops, calls = steps[backend](model, x, y)
    # A fused bidirectional attempt that was refused is followed by two plain per-cell calls.
    kernel_calls = [call for call in calls if call["cudnn_path"] or call["function"] == call["cell"]]
    for call in kernel_calls:
        if backend == "torch":
            call["cudnn_path"] = None  # PyTorch never refuses: only the op count can tell
        call["must_reach"] = "cudnn" if backend in CELLS[call["cell"]].cudnn_backends else "backend loop"
    cudnn_calls = [call for call in kernel_calls if call["must_reach"] == "cudnn"]
    ok = (
        bool(kernel_calls)
        and all(call["cudnn_path"] is not False for call in kernel_calls)
        and ops["cudnn_forward_ops"] >= len(cudnn_calls)
    )
    return {"backend": backend, "model": model.name, "recurrent_calls": kernel_calls, **ops, "cudnn_ok": ok}


def main(argv=None) -> int:
    from cremad.model_names import MODEL_IDS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, nargs="+", default=list(MODEL_IDS))
    parser.add_argument("--frames", type=int, default=501)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=50, help="timed training steps per model")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--cpu-dry-run",
        action="store_true",
        help="without a GPU, run the checks anyway (they must answer NO): tests the checker itself",
    )
    args = parser.parse_args(argv)

    import keras
    from bench_models import device_description, time_model

    from cremad.models import build_model
    from cremad.process import warn_if_gpu_unseen

    backend = keras.backend.backend()
    print(f"backend {backend}  keras {keras.__version__}  device {device_description()}")
    warn_if_gpu_unseen()
    on_gpu = gpu_available()
    if not on_gpu and not args.cpu_dry_run:
        print("no GPU: nothing to check (the cuDNN kernel only exists on a GPU)")
        return 0
    reports, failed = [], False
    for model_id in args.models:
        report = cudnn_report(build_model(model_id, args.frames))
        timing = time_model(model_id, args.batch_size, args.frames, 13, args.steps, 5, 2, "auto")
        report.update({key: timing[key] for key in ("ms_per_step", "sequences_per_s", "epoch_s")})
        reports.append(report)
        failed |= not report["cudnn_ok"]
        print(
            f"model {model_id}: cuDNN {'yes' if report['cudnn_ok'] else 'NO'}  "
            f"({report['cudnn_forward_ops']} forward / {report['cudnn_backward_ops']} backward cuDNN ops, "
            f"generic loops {report['generic_loops']}; {report['evidence']})"
        )
        for call in report["recurrent_calls"]:
            path = {True: "yes", False: "REFUSED", None: "n/a (see op count)"}[call["cudnn_path"]]
            print(
                f"    {call['function']:<18} {call['kernel']:<45} "
                f"must reach {call['must_reach']}, took it: {path}"
            )
        print(
            f"    training: {report['ms_per_step']:.1f} ms/step, {report['sequences_per_s']:.0f} seq/s, "
            f"{report['epoch_s']:.1f} s per 7360-clip epoch (batch {args.batch_size}, {args.frames} frames)"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"backend": backend, "device": device_description(), "models": reports}, indent=2)
            + "\n"
        )
    return 1 if failed and on_gpu else 0


if __name__ == "__main__":
    sys.exit(main())
