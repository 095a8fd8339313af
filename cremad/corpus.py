"""Corpus readers: every corpus becomes one table (path, speaker, emotion, clip, ...) and the
table becomes `Clip`s, the emotion label mapped to CREMA-D's six classes (section II-A).

The table is what a CSV manifest holds (`--corpus manifest --data FILE.csv`); the presets build
it from the layouts we know: CREMA-D, Emo-DB and RAVDESS file names, CASIA's
<speaker>/<emotion>/<id>.wav. Each preset is one `CorpusPreset` record in `PRESETS`: the CLI
choices, the audio-folder check and the README's corpus table come from it.
`cremad manifest --corpus X --data DIR` writes a preset's table for editing. File names that do
not parse are returned with the reason, never dropped silently; `strict=True` makes them an error.
Labels with no CREMA-D class (surprise, boredom, calm) are dropped and counted in one log line.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import io
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from cremad import CremadError
from cremad.atomic import write_text
from cremad.config import EMOTIONS

log = logging.getLogger(__name__)

# The published corpus: 7442 clips by 91 actors (1001-1091) reading 12 sentences.
CREMAD_CLIPS = 7442
CREMAD_ACTORS = tuple(str(actor) for actor in range(1001, 1092))
CREMAD_SENTENCES = ("IEO", "TIE", "IOM", "IWW", "TAI", "MTI", "IWL", "ITH", "DFA", "ITS", "TSI", "WSI")
CREMAD_LEVELS = ("LO", "MD", "HI", "XX")
# Older mirrors shorten the level to one letter (1040_ITH_SAD_X.wav).
LEGACY_LEVELS = {"L": "LO", "M": "MD", "H": "HI", "X": "XX"}
CREMAD_PATTERN = re.compile(
    r"^(?P<actor>\d{4})_(?P<sentence>[A-Z]{3})_(?P<emotion>[A-Z]{3})_(?P<level>[A-Z]{1,2})$"
)

# Emo-DB: SSTTTEV.wav, German emotion initials; boredom has no CREMA-D class.
EMODB_LABELS = {
    "W": "anger",
    "L": "boredom",
    "E": "disgust",
    "A": "fear",
    "F": "happiness",
    "T": "sadness",
    "N": "neutral",
}
EMODB_PATTERN = re.compile(r"^(?P<actor>\d{2})(?P<sentence>[ab]\d{2})(?P<emotion>[WLEAFTN])(?P<take>[a-z])$")

# RAVDESS: MM-VV-EE-II-SS-RR-AA.wav (modality, vocal channel, emotion, intensity, statement,
# repetition, actor); the speech set as distributed is audio-only (03) speech (01).
RAVDESS_LABELS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
RAVDESS_PATTERN = re.compile(
    r"^(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})-"
    r"(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})$"
)
RAVDESS_REFUSED = {  # what the other files of the distribution are, named when one is refused
    ("modality", "01"): "audio-video, not the audio-only speech set",
    ("modality", "02"): "video-only, not the audio-only speech set",
    ("channel", "02"): "the song set (vocal channel 02), not speech",
}

# Emotion labels (matched case-insensitively) and the CREMA-D class each means; others are dropped.
EMOTION_ALIASES = {
    "ANG": ("ang", "angry", "anger"),
    "DIS": ("dis", "disgust", "disgusted"),
    "FEA": ("fea", "fear", "fearful"),
    "HAP": ("hap", "happy", "happiness", "joy"),
    "NEU": ("neu", "neutral"),
    "SAD": ("sad", "sadness"),
}
EMOTION_OF_LABEL = {alias: code for code, aliases in EMOTION_ALIASES.items() for alias in aliases}

REQUIRED_COLUMNS = ("path", "speaker", "emotion")
TABLE_COLUMNS = (*REQUIRED_COLUMNS, "clip", "sentence", "level")  # the rest are kept as Clip.extra


class CorpusError(CremadError):
    """A corpus folder or file that cannot be used; the message names the path."""


@dataclasses.dataclass(frozen=True)
class Clip:
    path: str
    clip_id: str  # unique in the corpus: the file name without extension on CREMA-D and Emo-DB
    speaker: str  # the table's speaker (CREMA-D's actor): folds leave one out
    sentence: str
    emotion: str  # one of EMOTIONS
    level: str  # LO/MD/HI/XX on CREMA-D, the take letter on Emo-DB
    extra: dict[str, str] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )  # manifest columns

    @property
    def label(self) -> int:
        return EMOTIONS.index(self.emotion)


@dataclasses.dataclass(frozen=True)
class Rejected:
    path: str
    reason: str


def emotion_code(label: str) -> str | None:
    """The CREMA-D class of an emotion label (`Anger`, `happy`, `SAD`), None if it has none."""
    return EMOTION_OF_LABEL.get(label.strip().lower())


def clip_of(row: dict[str, str]) -> Clip | None:
    """The Clip of one table row, None when its emotion has no CREMA-D class."""
    emotion = emotion_code(row["emotion"])
    if emotion is None:
        return None
    extra = {key: value for key, value in row.items() if key not in TABLE_COLUMNS}
    return Clip(
        row["path"],
        row["clip"],
        row["speaker"],
        row.get("sentence", ""),
        emotion,
        row.get("level", ""),
        extra,
    )


def row_of(clip: Clip) -> dict[str, str]:
    return {
        "path": clip.path,
        "speaker": clip.speaker,
        "emotion": clip.emotion,
        "clip": clip.clip_id,
        "sentence": clip.sentence,
        "level": clip.level,
        **clip.extra,
    }


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


def emodb_row(path: str | Path) -> dict[str, str]:
    """The table row of `03a01Fa.wav` (emotion in English, boredom included); ValueError if bad."""
    path = Path(path)
    match = EMODB_PATTERN.match(path.stem)
    if path.suffix.lower() != ".wav":
        raise ValueError("not a .wav file")
    if not match:
        raise ValueError("name is not <speaker:2 digits><text:a01..b10><emotion letter><take>")
    return {
        "path": str(path),
        "speaker": match["actor"],
        "emotion": EMODB_LABELS[match["emotion"]],
        "clip": path.stem,
        "sentence": match["sentence"],
        "level": match["take"],
    }


def parse_emodb_name(path: str | Path) -> Clip | None:
    """Parse `03a01Fa.wav`; returns None for boredom (no CREMA-D class), ValueError if bad."""
    return clip_of(emodb_row(path))


def audio_dir(data_dir: str | Path, corpus: str = "cremad") -> Path:
    """The folder holding a preset's WAVs: its `audio_folder` under DIR (`AudioWAV` on CREMA-D,
    `wav` on Emo-DB) or DIR itself."""
    flat = [name for name, preset in PRESETS.items() if preset.audio_folder]
    if corpus not in flat:
        raise CorpusError(f"{corpus!r} is not a corpus of named files in one folder ({', '.join(flat)})")
    subfolder = PRESETS[corpus].audio_folder
    root = Path(data_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder (expected a {corpus} checkout or its audio folder)")
    folder = root / subfolder if (root / subfolder).is_dir() else root
    if not any(path.suffix.lower() == ".wav" for path in folder.iterdir()):
        raise CorpusError(f"{root}: no .wav files in it (expected {subfolder}/*.wav or the WAVs themselves)")
    return folder


def _named_files(folder: Path, parse) -> tuple[list[dict[str, str]], list[Rejected]]:
    rows, rejected = [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.is_dir():
            continue
        try:
            rows.append(parse(path))
        except ValueError as error:
            rejected.append(Rejected(str(path), str(error)))
    return rows, rejected


def cremad_table(data_dir: str | Path) -> tuple[list[dict[str, str]], list[Rejected]]:
    """CREMA-D: `DIR/AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav`."""
    return _named_files(audio_dir(data_dir, "cremad"), lambda path: row_of(parse_cremad_name(path)))


def emodb_table(data_dir: str | Path) -> tuple[list[dict[str, str]], list[Rejected]]:
    """Emo-DB: `DIR/wav/<speaker><text><emotion letter><take>.wav`."""
    return _named_files(audio_dir(data_dir, "emodb"), emodb_row)


def ravdess_row(path: str | Path) -> dict[str, str]:
    """The table row of `Actor_01/03-01-05-02-01-01-01.wav` (emotion in English, calm and
    surprised included); ValueError for a name that does not parse or a file of the song set or
    a video modality."""
    path = Path(path)
    match = RAVDESS_PATTERN.match(path.stem)
    if path.suffix.lower() != ".wav":
        raise ValueError("not a .wav file")
    if not match:
        raise ValueError(
            "name is not <modality>-<channel>-<emotion>-<intensity>-<statement>-<repetition>-<actor>"
        )
    for (field, code), what in RAVDESS_REFUSED.items():
        if match[field] == code:
            raise ValueError(f"refused: {what}")
    if match["modality"] != "03" or match["channel"] != "01" or match["emotion"] not in RAVDESS_LABELS:
        raise ValueError("modality, vocal channel or emotion code outside RAVDESS's (03, 01, 01-08)")
    folder = path.parent.name
    if folder.startswith("Actor_") and folder != f"Actor_{match['actor']}":
        raise ValueError(f"actor {match['actor']} of the name is not the folder's {folder}")
    return {
        "path": str(path),
        "speaker": match["actor"],
        "emotion": RAVDESS_LABELS[match["emotion"]],
        "clip": path.stem,
        "sentence": match["statement"],
        "level": match["intensity"],
    }


def ravdess_table(data_dir: str | Path) -> tuple[list[dict[str, str]], list[Rejected]]:
    """RAVDESS speech: `DIR/Actor_XX/03-01-<emotion>-<intensity>-<statement>-<repetition>-XX.wav`."""
    root = Path(data_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder (expected RAVDESS's Actor_XX/*.wav)")
    rows, rejected = [], []
    for folder in sorted(path for path in root.glob("Actor_*") if path.is_dir()):
        folder_rows, folder_rejected = _named_files(folder, ravdess_row)
        rows, rejected = rows + folder_rows, rejected + folder_rejected
    if not rows:
        raise CorpusError(f"{root}: no Actor_XX/*.wav speech files in it (RAVDESS's layout)")
    return rows, rejected


def casia_table(data_dir: str | Path) -> tuple[list[dict[str, str]], list[Rejected]]:
    """CASIA: `DIR/<speaker>/<emotion>/<sentence id>.wav`; ids repeat across folders, so the clip
    id is `<speaker>_<emotion>_<id>`."""
    root = Path(data_dir)
    if not root.is_dir():
        raise CorpusError(f"{root}: no such folder (expected CASIA's <speaker>/<emotion>/<id>.wav)")
    rows, rejected = [], []
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.suffix.lower() != ".wav" or path.is_dir() or any(part.startswith(".") for part in parts):
            continue
        if len(parts) != 3:
            rejected.append(Rejected(str(path), "not at <speaker>/<emotion>/<id>.wav"))
            continue
        speaker, emotion, _ = parts
        rows.append(
            {
                "path": str(path),
                "speaker": speaker,
                "emotion": emotion,
                "clip": f"{speaker}_{emotion}_{path.stem}",
                "sentence": path.stem,
                "level": "",
            }
        )
    if not rows:
        raise CorpusError(f"{root}: no <speaker>/<emotion>/<id>.wav files in it (CASIA's layout)")
    return rows, rejected


def manifest_table(manifest: str | Path) -> tuple[list[dict[str, str]], list[Rejected]]:
    """A CSV manifest `path,speaker,emotion[,clip,sentence,level,...]`, paths relative to the
    manifest's folder; the clip id defaults to the path without extension, `/` written `_`."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise CorpusError(f"{manifest}: no such manifest file (--corpus manifest takes a CSV file as --data)")
    with open(manifest, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, skipinitialspace=True)
        columns = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED_COLUMNS if name not in columns]
        if missing:
            header = ", ".join(columns) or "nothing"
            raise CorpusError(
                f"{manifest}: missing column(s) {', '.join(missing)} "
                f"(a manifest needs path,speaker,emotion; its header has {header})"
            )
        reader.fieldnames = columns
        rows = [dict(row) for row in reader]
    table, problems = [], []
    for line, row in enumerate(rows, start=2):
        if None in row:
            problems.append(f"line {line}: more fields than the header")
            continue
        row = {key: (value or "").strip() for key, value in row.items()}
        empty = [name for name in REQUIRED_COLUMNS if not row[name]]
        if empty:
            problems.append(f"line {line}: empty {', '.join(empty)}")
            continue
        relative = Path(row["path"])
        row["clip"] = row.get("clip") or relative.with_suffix("").as_posix().replace("/", "_")
        row["path"] = os.path.normpath(manifest.parent / relative)
        table.append(row)
    if problems:
        raise CorpusError(
            f"{manifest}: {len(problems)} bad row(s):\n" + "\n".join(f"  {item}" for item in problems)
        )
    return table, []


@dataclasses.dataclass(frozen=True)
class CorpusPreset:
    """One `--corpus` choice: how its table is read and what README's corpus table says of it."""

    name: str
    reader: Callable[[str | Path], tuple[list[dict[str, str]], list[Rejected]]]  # --data -> table
    data: str  # what --data is
    speaker: str  # where the speaker comes from
    emotion: str  # where the emotion comes from, and its codes
    clip: str  # the clip id
    audio_folder: str = ""  # the folder of --data the WAVs sit in, flat; "" when they are not flat

    def readme_row(self) -> str:
        """This preset's row of README's corpus table."""
        name = f"`{self.name}`" + (" (default)" if self.name == DEFAULT_CORPUS else "")
        return f"| {name} | {self.data} | {self.speaker} | {self.emotion} | {self.clip} |"


DEFAULT_CORPUS = "cremad"
PRESETS = {
    preset.name: preset
    for preset in (
        CorpusPreset(
            "cremad",
            cremad_table,
            data="folder holding `AudioWAV/`",
            speaker="`1001` of `1001_DFA_ANG_XX.wav`",
            emotion="`ANG`",
            clip="file name",
            audio_folder="AudioWAV",
        ),
        CorpusPreset(
            "emodb",
            emodb_table,
            data="folder holding `wav/`",
            speaker="`03` of `03a01Wa.wav`",
            emotion="letter: `W` anger ... `L` boredom",
            clip="file name",
            audio_folder="wav",
        ),
        CorpusPreset(
            "casia",
            casia_table,
            data="folder of `<speaker>/<emotion>/<id>.wav`",
            speaker="first folder",
            emotion="second folder",
            clip="`wangzhe_angry_201`",
        ),
        CorpusPreset(
            "ravdess",
            ravdess_table,
            data="folder of `Actor_XX/03-01-EE-II-SS-RR-AA.wav`",
            speaker="`AA` of the name",
            emotion="`EE`: `01` neutral ... `08` surprised; `02` calm, `08` dropped",
            clip="file name",
        ),
        CorpusPreset(
            "manifest",
            manifest_table,
            data="a CSV file",
            speaker="`speaker` column",
            emotion="`emotion` column",
            clip="`clip` column",
        ),
    )
}
CORPORA = tuple(PRESETS)
CORPUS_HELP = "corpus layout; with manifest, --data is a CSV file path,speaker,emotion[,clip,...]"


def corpus_table(data_dir: str | Path, corpus: str) -> tuple[list[dict[str, str]], list[Rejected]]:
    """The table of corpus `corpus` at `data_dir` (a folder, or a CSV file for `manifest`)."""
    if corpus not in PRESETS:
        raise CorpusError(f"unknown corpus {corpus!r} (choose from {', '.join(CORPORA)})")
    return PRESETS[corpus].reader(data_dir)


def clips_of_table(rows: list[dict[str, str]], source: str, skip_bad: bool = False) -> list[Clip]:
    """Clips of a table, sorted by clip id. Labels with no CREMA-D class are dropped and counted in
    one log line; duplicate paths or ids, missing files (unless `skip_bad`) and speakers left with
    no clip raise one CorpusError listing them all."""
    problems, missing, kept = [], [], []
    dropped = collections.Counter()
    speakers = collections.Counter(row["speaker"] for row in rows)
    for column in ("path", "clip"):
        repeated = [
            value for value, count in collections.Counter(row[column] for row in rows).items() if count > 1
        ]
        problems += [f"{column} {value} is listed more than once" for value in repeated]
    for row in rows:
        clip = clip_of(row)
        if clip is None:
            dropped[row["emotion"].strip().lower()] += 1
        elif not os.path.isfile(clip.path):
            missing.append(clip.path)
        else:
            kept.append(clip)
    if missing and not skip_bad:
        problems += [f"no such file: {path}" for path in missing]
    if dropped:
        log.info(
            "%s: dropped %d clips whose emotion has no CREMA-D class (%s)",
            source,
            sum(dropped.values()),
            ", ".join(f"{label} {count}" for label, count in sorted(dropped.items())),
        )
    if missing and skip_bad:
        log.warning("%s: skipped %d missing file(s): %s", source, len(missing), ", ".join(missing))
    empty = sorted(set(speakers) - {clip.speaker for clip in kept})
    problems += [
        f"speaker {speaker} has no clips left ({speakers[speaker]} row(s), each a label with no CREMA-D "
        "class or a missing file)"
        for speaker in empty
    ]
    if problems:
        hint = " (--skip-bad skips missing files)" if missing else ""
        lines = "\n".join(f"  {item}" for item in problems)
        raise CorpusError(f"{source}: {len(problems)} problem(s){hint}:\n{lines}")
    return sorted(kept, key=lambda clip: clip.clip_id)


def scan(
    data_dir: str | Path, corpus: str = "cremad", strict: bool = False, skip_bad: bool = False
) -> tuple[list[Clip], list[Rejected]]:
    """List the corpus clips under `data_dir`, sorted by clip id, and the file names rejected."""
    rows, rejected = corpus_table(data_dir, corpus)
    if rejected and strict:
        lines = "\n".join(f"  {Path(item.path).name}: {item.reason}" for item in rejected)
        raise CorpusError(f"{data_dir}: {len(rejected)} file name(s) do not parse:\n{lines}")
    for item in rejected:
        log.warning("skipped %s: %s", item.path, item.reason)
    clips = clips_of_table(rows, str(data_dir), skip_bad)
    if corpus == "cremad":
        check_against_published(clips)
    return clips, rejected


def check_against_published(clips: list[Clip]) -> list[str]:
    """Compare a CREMA-D clip list with the published corpus; return (and log) the differences."""
    notes = []
    actors = {clip.speaker for clip in clips}
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


def format_manifest(rows: list[dict[str, str]], relative_to: str | Path) -> str:
    """The CSV text of a table, paths relative to the folder `relative_to` (where it will live)."""
    extras = sorted({key for row in rows for key in row} - set(TABLE_COLUMNS))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=[*TABLE_COLUMNS, *extras], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "path": Path(os.path.relpath(row["path"], relative_to)).as_posix()})
    return text.getvalue()


def add_arguments(parser) -> None:
    parser.add_argument("--corpus", choices=CORPORA, required=True, help=CORPUS_HELP)
    parser.add_argument("--data", required=True, help="corpus folder (a CSV file for --corpus manifest)")
    parser.add_argument(
        "--out", help="write the manifest here (default: standard output); paths are relative to it"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    """`cremad manifest`: the table of a preset as a CSV manifest, every row kept (dropped labels
    too, so that the manifest reads back to the same clips)."""
    rows, rejected = corpus_table(args.data, args.corpus)
    for item in rejected:
        log.warning("not in the manifest: %s: %s", item.path, item.reason)
    clips_of_table(rows, args.data)  # the same checks as training will make, before writing
    if args.out:
        write_text(args.out, format_manifest(rows, Path(args.out).resolve().parent))
        log.info("%d rows -> %s", len(rows), args.out)
    else:
        sys.stdout.write(format_manifest(rows, Path.cwd()))
    return 0
