"""Clips whose audio bytes are identical: found by sha256, reported in one log line per group,
and, when asked, the groups whose labels disagree left out.

CREMA-D holds three such pairs (`cremad.download.IDENTICAL_CLIPS`): the same recording under two
emotions, so one of its two labels is wrong and no model can be right on both. The paper used all
7442 clips, so every clip is kept unless `drop_conflicting`. Identical clips under one label (a
file copied twice into a manifest) are reported too and always kept.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pooch

from cremad.atomic import write_json
from cremad.corpus import Clip

log = logging.getLogger(__name__)

DROP_OPTION = "--drop-conflicting"


def identical_groups(digests: dict[str, str]) -> list[list[str]]:
    """The keys of `digests` that share a digest with another key: each group sorted, the
    groups sorted by their first key. Keys whose digest is unique are left out."""
    by_digest: dict[str, list[str]] = {}
    for key, digest in digests.items():
        by_digest.setdefault(digest, []).append(key)
    return sorted(sorted(keys) for keys in by_digest.values() if len(keys) > 1)


def clip_digests(clips: list[Clip], cache_file: str | Path) -> dict[str, str]:
    """{clip id: sha256 of the file's bytes}, read from `cache_file` when it holds every clip,
    else hashed (each file once) and written there. The caller keys the file name by the clips'
    sizes and modification times, as the feature cache is keyed, so a changed file is re-hashed."""
    cache_file = Path(cache_file)
    wanted = {clip.clip_id for clip in clips}
    if cache_file.is_file():
        cached = json.loads(cache_file.read_text())
        if wanted <= set(cached):
            return {clip_id: cached[clip_id] for clip_id in wanted}
    started = time.perf_counter()
    digests = {clip.clip_id: pooch.file_hash(clip.path, alg="sha256") for clip in clips}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    write_json(cache_file, dict(sorted(digests.items())))
    log.info("sha256 of %d clips in %.3f s -> %s", len(clips), time.perf_counter() - started, cache_file)
    return digests


def conflicting(group: list[Clip]) -> bool:
    """True when the clips of an identical group do not all carry the same emotion."""
    return len({clip.emotion for clip in group}) > 1


def describe(group: list[Clip], drop: bool) -> str:
    """One line naming every clip of an identical group, its label, and what becomes of it."""
    names = " = ".join(f"{clip.clip_id} ({clip.emotion})" for clip in group)
    if not conflicting(group):
        return f"identical audio under one label: {names}; all kept"
    fate = f"all left out ({DROP_OPTION})" if drop else f"all kept ({DROP_OPTION} leaves them out)"
    return f"identical audio under {len({clip.emotion for clip in group})} labels: {names}; {fate}"


def find_identical(
    clips: list[Clip], digests: dict[str, str], source: str, drop_conflicting: bool = False
) -> tuple[list[Clip], list[tuple[str, str]]]:
    """Report every group of identical clips (one warning each) and return (the clips kept,
    (path, reason) for each clip left out: every clip of a conflicting group when
    `drop_conflicting`, else none)."""
    by_id = {clip.clip_id: clip for clip in clips}
    left_out: list[tuple[str, str]] = []
    for ids in identical_groups({clip.clip_id: digests[clip.clip_id] for clip in clips}):
        group = [by_id[clip_id] for clip_id in ids]
        log.warning("%s: %s", source, describe(group, drop_conflicting))
        if drop_conflicting and conflicting(group):
            for clip in group:
                others = ", ".join(
                    f"{other.clip_id} ({other.emotion})" for other in group if other is not clip
                )
                left_out.append((clip.path, f"same audio as {others}; the labels disagree ({DROP_OPTION})"))
    dropped = {path for path, _ in left_out}
    return [clip for clip in clips if clip.path not in dropped], left_out
