"""Process set-up: the warning when nvidia-smi lists a GPU that TensorFlow does not see (training
would run on the CPU without a word), with a stand-in nvidia-smi on PATH."""

from __future__ import annotations

import logging

import keras
import pytest

from cremad import process


def fake_nvidia_smi(folder, output: str, status: int = 0):
    """An `nvidia-smi` in `folder` that prints `output` and exits with `status` (shell builtins
    only: PATH holds nothing else)."""
    script = folder / "nvidia-smi"
    script.write_text(f"#!/bin/sh\nprintf '%s\\n' '{output}'\nexit {status}\n")
    script.chmod(0o755)


@pytest.fixture
def path_with(tmp_path, monkeypatch):
    """PATH holding only `tmp_path` (where a test puts its nvidia-smi), and a fresh warn-once."""
    monkeypatch.setenv("PATH", str(tmp_path))
    process.warn_if_gpu_unseen.cache_clear()
    yield tmp_path
    process.warn_if_gpu_unseen.cache_clear()


def tensorflow_sees_a_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@pytest.mark.skipif(keras.config.backend() != "tensorflow", reason="TensorFlow's view of the GPUs")
def test_a_gpu_tensorflow_does_not_see_is_said_once(path_with, caplog):
    if tensorflow_sees_a_gpu():
        pytest.skip("TensorFlow sees a GPU here: nothing to warn about")
    fake_nvidia_smi(path_with, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)")
    assert process.nvidia_gpus() == ["GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0000)"]
    with caplog.at_level(logging.WARNING, logger="cremad.process"):
        assert process.warn_if_gpu_unseen() is True
        process.warn_if_gpu_unseen()  # a second fold, a second seed: still one line
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 1
    assert "TensorFlow sees none" in said[0] and "tensorflow[and-cuda]" in said[0] and "H100" in said[0]


@pytest.mark.parametrize(
    "output, status",
    [
        (None, 0),  # no nvidia-smi at all: a machine without an NVIDIA driver
        ("No devices were found", 6),  # a driver but no device
        ("", 0),
    ],
)
def test_no_listed_gpu_means_no_warning(path_with, caplog, output, status):
    if output is not None:
        fake_nvidia_smi(path_with, output, status)
    with caplog.at_level(logging.WARNING, logger="cremad.process"):
        assert process.warn_if_gpu_unseen() is False
    assert not caplog.records
