"""Shared fixtures: a tiny synthetic CREMA-D corpus and the optional real Emo-DB and CASIA."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
EMODB = SHARED / "emodb"
CASIA = SHARED / "casia"
CREMAD_META = SHARED / "cremad-meta"


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    """3 synthetic actors x 82 clips, CREMA-D names, 16 kHz (written once per pytest run)."""
    from cremad.synth import write_corpus

    root = tmp_path_factory.mktemp("tiny") / "CREMA-D"
    write_corpus(root, actors=3, seed=0)
    return root


@pytest.fixture(scope="session")
def emodb_dir() -> Path:
    if not (EMODB / "wav").is_dir():
        pytest.skip("../shared/emodb is not present")
    return EMODB


@pytest.fixture(scope="session")
def casia_dir() -> Path:
    if not (CASIA / "wangzhe").is_dir():
        pytest.skip("../shared/casia is not present")
    return CASIA


@pytest.fixture(scope="session")
def cremad_meta() -> Path:
    if not CREMAD_META.is_dir():
        pytest.skip("../shared/cremad-meta is not present")
    return CREMAD_META
