"""Corpus readers: CREMA-D file names (section II-A) and Emo-DB's, mapped to six emotions.

A corpus is a list of `Clip`s. Names that do not parse are returned with the reason, never
dropped silently; `strict=True` turns them into an error.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from pathlib import Path

from cremad import CremadError
from cremad.config import EMOTIONS

log = logging.getLogger(__name__)

CORPORA = ("cremad", "emodb")

# The published corpus: 7442 clips by 91 actors (1001-1091) reading 12 sentences.
CREMAD_CLIPS = 7442
CREMAD_ACTORS = tuple(str(actor) for actor in range(1001, 1092))
CREMAD_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMAD_LEVELS = ("LO", "MD", "HI", "XX")
# Older mirrors shorten the level to one letter (1040_ITH_SAD_X.wav).
LEGACY_LEVELS = {"L": "LO", "M": "MD", "H": "HI", "X": "XX"}
CREMAD_PATTERN = re.compile(r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{1,2})$")

# Emo-DB: SSTTTEV.wav, German emotion initials; boredom (L) has no CREMA-D counterpart.
EMODB_EMOTIONS = {"W": "ANG", "E": "DIS", "A": "FEA", "F": "HAP", "N": "NEU", "T": "SAD"}
EMODB_PATTERN = re.compile(r"^(?P<actor>\d{2})(?P<sentence>[ab]\d{2})(?P<emotion>[WLEAFTN])(?P<take>[a-z])$")


class CorpusError(CremadError):
    """A corpus folder or file that cannot be used; the message names the path."""


@dataclasses.dataclass(frozen=True)
class Clip:
    path: str
    clip_id: str  # file name without extension
    actor: str
    sentence: str
    emotion: str  # one of EMOTIONS
    level: str  # LO/MD/HI/XX on CREMA-D, the take letter on Emo-DB

    @property
    def label(self) -> int:
        return EMOTIONS.index(self.emotion)


@dataclasses.dataclass(frozen=True)
class Rejected:
    path: str
    reason: str


def parse_cremad_name(path: str | Path) -> Clip:
    """Parse `1001_DFA_ANG_XX.wav` (or legacy `1040_ITH_SAD_X.wav`); ValueError says why not."""
    path = Path(path)
    match = CREMAD_PATTERN.match(path.stem)
    if path.suffix.lower() != ".wav":
        raise ValueError("not a .wav file")
    if not match:
        raise ValueError("name is not <actor:4 digits>_<sentence:3 letters>_<emotion>_<level>")
    level = match["level"]
    level = LEGACY_LEVELS.get(level, level)
    if match["emotion"] not in EMOTIONS:
        raise ValueError(f"emotion {match['emotion']!r} is not one of {', '.join(EMOTIONS)}")
    if level not in CREMAD_LEVELS:
        raise ValueError(f"level {match['level']!r} is not one of {', '.join(CREMAD_LEVELS)}")
    return Clip(str(path), path.stem, match["actor"], match["sentence"], match["emotion"], level)


def parse_emodb_name(path: str | Path) -> Clip | None:
    """Parse `03a01Fa.wav`; returns None for boredom (no CREMA-D class), ValueError if bad."""
    path = Path(path)
    match = EMODB_PATTERN.match(path.stem)
    if path.suffix.lower() != ".wav":
        raise ValueError("not a .wav file")
    if not match:
        raise ValueError("name is not <speaker:2 digits><text:a01..b10><emotion letter><take>")
    emotion = EMODB_EMOTIONS.get(match["emotion"])
    if emotion is None:
        return None
    return Clip(str(path), path.stem, match["actor"], match["sentence"], emotion, match["take"])


def audio_dir(data_dir: str | Path, corpus: str = "cremad") -> Path:
    """The folder holding the WAVs: `DIR/AudioWAV` (CREMA-D) or `DIR/wav` (Emo-DB) or DIR itself."""
    if corpus not in CORPORA:
        raise CorpusError(f"unknown corpus {corpus!r} (choose from {', '.join(CORPORA)})")
    root = Path(data_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder (expected a {corpus} checkout or its audio folder)")
    sub = root / ("AudioWAV" if corpus == "cremad" else "wav")
    folder = sub if sub.is_dir() else root
    if not any(path.suffix.lower() == ".wav" for path in folder.iterdir()):
        expected = "AudioWAV/*.wav" if corpus == "cremad" else "wav/*.wav"
        raise CorpusError(f"{root}: no .wav files in it (expected {expected} or the WAVs themselves)")
    return folder


def scan(data_dir: str | Path, corpus: str = "cremad", strict: bool = False) -> tuple[list[Clip], list[Rejected]]:
    """List the corpus clips under `data_dir`, sorted by clip id, and the names rejected."""
    folder = audio_dir(data_dir, corpus)
    clips, rejected = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        try:
            clip = parse_cremad_name(path) if corpus == "cremad" else parse_emodb_name(path)
        except ValueError as error:
            rejected.append(Rejected(str(path), str(error)))
            continue
        if clip is None:
            continue  # Emo-DB boredom: no CREMA-D class, dropped by design
        clips.append(clip)
    if rejected and strict:
        lines = "\n".join(f"  {Path(item.path).name}: {item.reason}" for item in rejected)
        raise CorpusError(f"{folder}: {len(rejected)} file name(s) do not parse:\n{lines}")
    for item in rejected:
        log.warning("skipped %s: %s", item.path, item.reason)
    if corpus == "cremad":
        check_against_published(clips)
    return clips, rejected


def check_against_published(clips: list[Clip]) -> list[str]:
    """Compare a CREMA-D clip list with the published corpus; return (and log) the differences."""
    notes = []
    actors = {clip.actor for clip in clips}
    if len(clips) != CREMAD_CLIPS:
        notes.append(f"{len(clips)} clips, the published CREMA-D has {CREMAD_CLIPS}")
    missing = sorted(set(CREMAD_ACTORS) - actors)
    if missing:
        notes.append(f"{len(actors)} actors, {len(missing)} of the published 91 missing")
    extra = sorted(actors - set(CREMAD_ACTORS))
    if extra:
        notes.append(f"actors outside 1001-1091: {', '.join(extra[:5])}{'...' if len(extra) > 5 else ''}")
    sentences = {clip.sentence for clip in clips} - set(CREMAD_SENTENCES)
    if sentences:
        notes.append(f"unknown sentence codes: {', '.join(sorted(sentences))}")
    for note in notes:
        log.warning("subset of CREMA-D: %s", note)
    return notes
