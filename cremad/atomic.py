"""Atomic writes: every file cremad leaves under its final name is complete.

A file is written under a temporary name in the same folder and renamed over the final name
only once it is whole; an error or Ctrl-C removes the temporary file instead.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside `path` (same suffix, which Keras and NumPy insist on);
    on success it replaces `path`, on any error or interrupt it is removed."""
    path = Path(path)
    temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_json(path: str | Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")
