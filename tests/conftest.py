"""Shared fixtures: a tiny synthetic CREMA-D corpus and the optional real Emo-DB and CASIA."""

import functools
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared"
EMODB = SHARED / "emodb"
CASIA = SHARED / "casia"
CREMAD_META = SHARED / "cremad-meta"
META_FILES = ("tabulatedVotes.csv", "SentenceFilenames.csv", "summaryTable.csv", "VideoDemographics.csv")


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """3 synthetic actors x 82 clips, CREMA-D names, 16 kHz (written once per pytest run)."""
    from cremad.synth import write_corpus

    root = tmp_path_factory.mktemp("tiny") / "CREMA-D"
    write_corpus(root, actors=3, seed=0)
    return root


def real_corpus(folder: Path, corpus: str) -> Path:
    """`folder` for a test on a real corpus: the test is skipped when the folder is absent, and
    fails when it is there but cannot be read as `corpus` (a changed layout, no permission, a
    clip whose header does not parse), rather than skipping silently."""
    import soundfile

    from cremad.corpus import scan

    if not folder.exists():
        pytest.skip(f"{folder} is not present")
    try:
        clips, _ = scan(folder, corpus)
        if not clips:
            raise ValueError("no clip of the corpus in it")
        for clip in (clips[0], clips[-1]):
            soundfile.info(clip.path)
    except Exception as error:  # noqa: BLE001 (whatever went wrong, say it and fail)
        pytest.fail(f"{folder} is there but cannot be read as {corpus}: {type(error).__name__}: {error}")
    return folder


def real_metadata(folder: Path) -> Path:
    """CREMA-D's metadata CSVs in `folder`: skipped when the folder is absent, a failure when one
    of the files the tests read is missing or unreadable."""
    if not folder.exists():
        pytest.skip(f"{folder} is not present")
    for name in META_FILES:
        try:
            with open(folder / name, "rb") as handle:
                handle.read(1)
        except OSError as error:
            pytest.fail(f"{folder} is there but {name} cannot be read: {error}")
    return folder


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    return real_corpus(EMODB, "emodb")


@pytest.fixture(scope="session")
def casia_dir() -> Path:
    return real_corpus(CASIA, "casia")


@pytest.fixture(scope="session")
def cremad_meta() -> Path:
    return real_metadata(CREMAD_META)


@functools.cache
def gpu_visible() -> bool:
    """Whether the Keras backend sees a GPU (bench/gpu_check.py decides, as for the cuDNN tests)."""
    spec = importlib.util.spec_from_file_location("gpu_check", REPO / "bench" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.gpu_available()


def pytest_runtest_setup(item):
    # Byte-for-byte comparisons of trained models hold on a CPU; cuDNN's kernels are not
    # bit-deterministic by default, so on a GPU such a test would fail without a regression.
    if item.get_closest_marker("cpu_exact") and gpu_visible():
        pytest.skip("compares trained predictions byte for byte: holds on a CPU, not under cuDNN")
