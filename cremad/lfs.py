"""What each CREMA-D file must be: Git LFS pointers, git blob ids, checksum manifests, and the
check every file passes before cremad keeps it.

The repository keeps `AudioWAV/*.wav` as Git LFS objects: git holds a small pointer text
(`oid sha256:<hex>`, `size <n>`) and the audio lives elsewhere. A manifest is the same facts as a
table (filename,sha256,size: `cremad download` writes one, and `AudioWAV-lfs-pointers.csv` is
one for the whole corpus). Nothing here touches the network; `cremad.fetching` does.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import re
from pathlib import Path

import pooch

from cremad import CremadError
from cremad.atomic import atomic_path

AUDIO_DIR = "AudioWAV"
POINTER_VERSION = "version https://git-lfs.github.com/spec/v1"
POINTER_MAX_SIZE = 1024  # git-lfs's own rule: a blob this large or larger is never a pointer
LEGACY_NAMES = {"AudioWAV/1040_ITH_SAD_XX.wav": "AudioWAV/1040_ITH_SAD_X.wav"}  # on older mirrors


@dataclasses.dataclass(frozen=True)
class Target:
    """One file to have under dest: its relative path and what its bytes must hash to."""

    path: str  # relative, with forward slashes: "AudioWAV/1001_DFA_ANG_XX.wav"
    size: int
    digest: str
    algorithm: str  # "sha256" (an LFS object or a manifest row) or "git-sha1" (a plain git blob)
    lfs: bool


def parse_pointer(text: bytes | str) -> tuple[str, int]:
    """(sha256 hex, size) from a Git LFS pointer; ValueError if `text` is not one."""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    lines = text.splitlines()
    if not lines or lines[0] != POINTER_VERSION:
        raise ValueError("not a Git LFS pointer (no version line)")
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    oid = re.fullmatch(r"sha256:([0-9a-f]{64})", fields.get("oid", ""))
    if not oid or not fields.get("size", "").isdigit():
        raise ValueError("Git LFS pointer without a sha256 oid and a size")
    return oid[1], int(fields["size"])


def format_pointer(sha256: str, size: int) -> str:
    """The pointer text git-lfs writes for an object (the inverse of parse_pointer)."""
    return f"{POINTER_VERSION}\noid sha256:{sha256}\nsize {size}\n"


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content, as listed by the tree API."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def is_pointer(path: Path) -> bool:
    """True if the file holds a Git LFS pointer (a server that sent it in place of the object)."""
    try:
        parse_pointer(path.read_bytes())
        return True
    except (OSError, ValueError):
        return False


def read_manifest(path: str | Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, size)} from a filename,sha256,size table (the format of
    AudioWAV-lfs-pointers.csv); a bare *.wav name is taken to live in AudioWAV/."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    rows = {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if not {"filename", "sha256", "size"} <= set(reader.fieldnames or ()):
            raise CremadError(
                f"manifest {path}: header must name filename,sha256,size, not {reader.fieldnames}"
            )
        for line, row in enumerate(reader, start=2):
            if not re.fullmatch(r"[0-9a-f]{64}", row["sha256"] or "") or not (row["size"] or "").isdigit():
                raise CremadError(f"manifest {path}, line {line}: bad sha256 or size in {row}")
            name = row["filename"]
            bare_wav = "/" not in name and name.lower().endswith(".wav")
            rows[f"{AUDIO_DIR}/{name}" if bare_wav else name] = (row["sha256"], int(row["size"]))
    return rows


def write_manifest(path: Path, rows: dict[str, tuple[str, int]]) -> None:
    """Write `rows` as read_manifest reads them, sorted, atomically."""
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["filename", "sha256", "size"])
        writer.writerows([name, sha256, size] for name, (sha256, size) in sorted(rows.items()))


def verify(path: Path, target: Target) -> str | None:
    """None if the file at `path` holds exactly the target's bytes, else what is wrong."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != target.size:
        return f"{size} bytes, expected {target.size}"
    # pooch hashes in chunks; a plain git blob here is a metadata table of a few MB at most.
    digest = (
        pooch.file_hash(str(path), alg="sha256")
        if target.algorithm == "sha256"
        else git_blob_sha1(path.read_bytes())
    )
    if digest != target.digest:
        return f"{target.algorithm} {digest[:16]}..., expected {target.digest[:16]}..."
    return None


def local_copy(target: Target, dest: Path) -> tuple[Path | None, str | None]:
    """(verified file, note): the file itself, an older mirror's name for it, or a finished
    `<name>.part` left by cremad before it used pooch (renamed into place); (None, None) if none verifies."""
    final = dest / target.path
    if verify(final, target) is None:
        return final, None
    legacy = LEGACY_NAMES.get(target.path)
    if legacy and verify(dest / legacy, target) is None:
        return dest / legacy, f"{legacy} is the older mirrors' name for {target.path}; accepted as is"
    part = final.with_name(final.name + ".part")
    if verify(part, target) is None:
        os.replace(part, final)
        return final, None
    return None, None
