"""Process-wide set-up that entry points run once (the `cremad` command, a fold's worker
process, a benchmark): quiet library logs, CPU threads, and a warning when a GPU is there that
TensorFlow does not see. Library code never calls these.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import subprocess
import sys

log = logging.getLogger(__name__)


def quiet_libraries(import_keras: bool = False, quiet_pooch: bool = False) -> None:
    """Hide what the libraries print that says nothing about the run: TensorFlow's start-up
    lines (absl's "All log messages before absl::InitializeLog()", "Could not find cuda drivers",
    the CPU-instruction and oneDNN notices), absl's Python warnings and, with `quiet_pooch`,
    pooch's line per file. Runs before anything imports TensorFlow; a TF_CPP_MIN_LOG_LEVEL the
    user set wins. `import_keras` imports Keras now, with its start-up noise hidden."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ logs: 3 keeps only FATAL
    for name in ("tensorflow", "absl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if import_keras:
        # TensorFlow 2.21 (2.19 too, tensorflow/tensorflow#100442) prints absl's notice and "Could
        # not find cuda drivers" at import whatever TF_CPP_MIN_LOG_LEVEL says: import it with
        # stderr closed. An import that fails still raises, and -v skips this.
        with _stderr_to_devnull():
            import keras  # noqa: F401
    if quiet_pooch:
        import pooch  # its logger stands outside logging's tree and logs every file at INFO

        pooch.get_logger().setLevel(logging.WARNING)


@contextlib.contextmanager
def _stderr_to_devnull():
    """Send file descriptor 2 (where C++ code writes) to /dev/null for the duration."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def limit_threads(threads: int | None) -> None:
    """Run TensorFlow's CPU kernels on `threads` threads (None: TensorFlow's choice, every core).
    These LSTMs are small: on a 2-core machine two single-threaded runs side by side (loso --jobs 2)
    did more work than one run on both cores (bench/bench_jobs.py). Must run before TensorFlow
    executes its first op; other Keras backends are left alone."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"--threads must be at least 1, got {threads}")
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def nvidia_gpus() -> list[str]:
    """The GPUs `nvidia-smi -L` lists ("GPU 0: NVIDIA H100 ..."); none without the command, or
    when it fails (no driver, no device)."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return []
    try:
        listed = subprocess.run([command, "-L"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.startswith("GPU ")]


@functools.cache  # once per process
def warn_if_gpu_unseen() -> bool:
    """Warn when nvidia-smi lists a GPU that TensorFlow does not see: training would then run on
    the CPU without a word. The usual cause is TensorFlow installed without its CUDA libraries
    (`pip install .[gpu]` brings them). Other Keras backends are left alone. Returns whether it
    warned."""
    import keras

    gpus = nvidia_gpus()
    if not gpus or keras.config.backend() != "tensorflow":
        return False
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return False
    log.warning(
        "nvidia-smi lists %d GPU(s) (%s) but TensorFlow sees none: this trains on the CPU. "
        "The usual cause is TensorFlow without its CUDA libraries: pip install '.[gpu]' "
        "(tensorflow[and-cuda]).",
        len(gpus),
        gpus[0],
    )
    return True
