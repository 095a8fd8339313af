"""`cremad report`: every test clip of a run in one offline page, from saved run folders only.

    cremad report --runs runs --experiment paper --data data/CREMA-D --out report/paper

`DIR/index.html` opens by double-click (file://, no server, no network): it shows, per clip,
each model's prediction and probabilities (seed ensembles and SVM runs too), the audio (linked
to the corpus's WAV, never copied), a log-mel spectrogram on the models' frame axis with the
padding marked, models 1 and 2's attention on the same axis with its share on the padding
(Fig. 2's measure, `cremad.plots.padding_share`) and CREMA-D's crowd vote shares. Across clips:
a confusion matrix per model whose cells open their clips, filters, sorting, and the share of
attention on padding by emotion and by clip length. The view lives in the URL
(`index.html#model=2&true=ANG&pred=SAD`).

The page reads its data as script files, as Chrome refuses `fetch()` from file://: `data/index.js`
holds what every view needs (one row per clip), `data/speaker-<k>.js` a speaker's probabilities,
attention and audio links, loaded when a page shows that speaker's clips, and `spec/<k>/<i>.png`
the spectrograms. Runs are selected as `cremad figures` selects them; nothing is retrained and
nothing is written outside `--out`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import shutil
import urllib.parse
from pathlib import Path

import numpy as np

from cremad import CremadError, runs
from cremad.atomic import atomic_path, write_text
from cremad.config import EMOTION_NAMES, EMOTIONS
from cremad.metrics import combined_results, load_results
from cremad.model_names import model_id_of, model_label, model_spec
from cremad.plots import padding_share, run_features, run_setting

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "report_assets"
ASSET_FILES = ("index.html", "report.js", "report.css")
SPECTROGRAM_LEVELS = 48  # colours of a spectrogram PNG: few enough to compress, enough to read
SPECTROGRAM_FLOOR_DB = -70.0  # below the clip's loudest bin: the quietest colour
LENGTH_BIN_SECONDS = 0.5  # width of the clip-length bins of the padding summary


@dataclasses.dataclass
class View:
    """One column of predictions in the page: a run of one model and seed, or a combined result."""

    key: str  # "model2", "model2/seed1" when the model has several seeds, "model2-ensemble"
    label: str
    predictions: runs.Predictions
    has_attention: bool  # the model has an attention block (models 1 and 2)
    run_dir: Path | None  # None for a combined result: no fold files of its own


@dataclasses.dataclass
class ClipAudio:
    """What a clip's WAV gives the page: its link, its own frames and its spectrogram."""

    link: str  # the WAV, relative to the report folder, URL-quoted
    duration: float  # seconds, as the models read it (resampled, trimmed)
    own_frames: int
    decibels: np.ndarray  # (n_mels, own_frames), 0 at the clip's loudest bin


def report_views(results: dict, combined: dict) -> list[View]:
    """Every run (model, seed) of `results`, then every seed ensemble and fusion of `combined`."""
    views = []
    for name, result in results.items():
        model_id = model_id_of(name)
        attention = model_id is not None and model_spec(model_id).attention
        for seed, predictions in result.predictions.items():
            several = len(result.predictions) > 1
            key = f"{name}/seed{seed}" if several else name
            label = model_label(name) + (f", seed {seed}" if several else "")
            views.append(View(key, label, predictions, attention, predictions.run_dir))
    for name, result in combined.items():
        (predictions,) = result.predictions.values()
        views.append(View(name, model_label(name), predictions, False, None))
    return views


def clip_rows(views: list[View]) -> tuple[list[str], dict[str, tuple[str, str]]]:
    """The clip ids of every view, sorted, and each clip's (held-out actor, true emotion)."""
    facts: dict[str, tuple[str, str]] = {}
    for view in views:
        for clip, actor, true in zip(
            view.predictions.clip_ids, view.predictions.actors, view.predictions.true
        ):
            facts.setdefault(str(clip), (str(actor), str(true)))
    return sorted(facts), facts


def view_attention(view: View) -> tuple[dict[str, np.ndarray], str | None]:
    """(clip id -> weights (steps, frames), why there are none) of an attention model's run."""
    if not view.has_attention:
        reason = "no attention weights: a combined result" if view.run_dir is None else "no attention block"
        return {}, reason
    weights, absent = {}, []
    for actor in view.predictions.folds:
        fold = runs.read_fold_attention(view.run_dir, actor)
        if fold is None:
            absent.append(actor)
        else:
            weights.update(fold)
    if absent and not weights:
        return {}, f"no {runs.ATTENTION} in its folds (an archived run?)"
    if absent:
        log.warning("%s: no %s in fold(s) %s", view.key, runs.ATTENTION, ", ".join(absent))
    return weights, None


def audio_paths(data: str | Path | None, corpus: str) -> dict[str, Path]:
    """clip id -> WAV of the corpus at `data`; {} without a folder (the page then says so)."""
    from cremad.corpus import scan

    if not data:
        log.warning("no --data and no data_dir in run.json: the page has no audio or spectrograms")
        return {}
    if not Path(data).exists():
        raise CremadError(f"--data {data}: no such file or folder")
    clips, _ = scan(data, corpus)
    return {clip.clip_id: Path(clip.path) for clip in clips}


def read_audio(path: Path, out: Path, features) -> ClipAudio:
    """The clip at `path` as the models read it: its link from `out`, length and log-mel spectrogram
    (the one its MFCCs are computed from)."""
    from cremad.features import log_mel_of_magnitude, n_frames, read_clip
    from cremad.frames import magnitude_spectrum

    signal, _ = read_clip(path, features)  # (n_samples,)
    log_mel = log_mel_of_magnitude(magnitude_spectrum(signal, features), features)  # (n_mels, own_frames)
    own_frames = n_frames(len(signal), features)
    link = urllib.parse.quote(Path(os.path.relpath(path.resolve(), out.resolve())).as_posix())
    return ClipAudio(link, len(signal) / features.sample_rate, own_frames, log_mel - log_mel.max())


def write_spectrogram(path: Path, decibels: np.ndarray) -> None:
    """A palette PNG of `decibels` (n_mels, frames), low frequencies at the bottom, magma colours."""
    from matplotlib import colormaps
    from PIL import Image

    scaled = np.clip(decibels / SPECTROGRAM_FLOOR_DB, 0.0, 1.0)  # 0 loudest, 1 at the floor
    levels = np.rint((1.0 - scaled) * (SPECTROGRAM_LEVELS - 1)).astype(np.uint8)[::-1]  # (n_mels, frames)
    palette = colormaps["magma"](np.linspace(0.0, 1.0, SPECTROGRAM_LEVELS))[:, :3]
    image = Image.fromarray(levels, mode="P")
    image.putpalette((255 * palette).astype(np.uint8).ravel().tolist())
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        image.save(temporary, format="PNG", optimize=True)


def encode_curve(weights: np.ndarray) -> dict:
    """Attention weights (steps, frames) as the page decodes them: attention.npz's float32 values,
    little-endian, base64 (the drawn curve is the saved one, not a rounding of it)."""
    values = np.asarray(weights, dtype="<f4")  # (steps, frames)
    return {"steps": len(values), "data": base64.b64encode(values.tobytes()).decode()}


def crowd_votes(meta: str | Path | None, data: str | Path | None) -> dict[str, np.ndarray]:
    """clip id -> CREMA-D's voice-only vote counts (6,), from `meta` (an error when it has none)
    or, without it, from the corpus folder when it holds tabulatedVotes.csv."""
    from cremad.crowd import find_meta_file, read_votes

    if meta:
        return read_votes(find_meta_file(Path(meta), "tabulatedVotes.csv"))["voice"]
    if data and Path(data).is_dir():
        try:
            return read_votes(find_meta_file(Path(data), "tabulatedVotes.csv"))["voice"]
        except CremadError:
            pass
    log.info("no crowd votes (pass --meta DIR holding tabulatedVotes.csv to show them)")
    return {}


def padding_summary(shares: list[float | None], true: list[str], durations: list[float | None]) -> dict:
    """The mean share of attention on padding by true emotion and by clip-length bin, with counts."""
    known = [(s, t, d) for s, t, d in zip(shares, true, durations) if s is not None and d is not None]
    by_emotion = {
        emotion: [float(np.mean(v)) if (v := [s for s, t, _ in known if t == emotion]) else None, len(v)]
        for emotion in EMOTIONS
    }
    by_length = {}
    for share, _, duration in known:
        start = LENGTH_BIN_SECONDS * int(duration // LENGTH_BIN_SECONDS)
        by_length.setdefault(round(start, 3), []).append(share)
    lengths = [
        [start, start + LENGTH_BIN_SECONDS, float(np.mean(values)), len(values)]
        for start, values in sorted(by_length.items())
    ]
    return {"byEmotion": by_emotion, "byLength": lengths}


def _script(path: Path, call: str, payload: dict) -> int:
    """Write `call(payload);` as a script file the page loads with a <script> tag; returns its bytes."""
    text = f"{call}({json.dumps(payload, separators=(',', ':'))});\n"
    write_text(path, text)
    return len(text)


def frame_axis(results: dict, attention: dict) -> int | None:
    """The models' frame count: an attention curve's length, else run.json's n_frames."""
    for weights, _ in attention.values():
        for curve in weights.values():
            return int(curve.shape[-1])
    frames = run_setting(results, "n_frames")
    return int(frames) if frames else None


def run_notes(views: list[View]) -> list[str]:
    """One line per run with unfinished or missing folds, as `cremad figures` logs them."""
    notes = []
    for view in views:
        if view.run_dir is None:
            continue
        for kind, folds in (
            ("unfinished (no done.json)", view.predictions.unfinished),
            ("not started", view.predictions.missing),
        ):
            if folds:
                notes.append(f"{view.label}: {len(folds)} fold(s) {kind}, not shown: {', '.join(folds)}")
    return notes


@dataclasses.dataclass
class Context:
    """What every clip of a page is read against: the runs' settings and the clip sources."""

    views: list[View]
    attention: dict[str, tuple[dict[str, np.ndarray], str | None]]  # view key -> view_attention
    features: object  # cremad.config.FeatureConfig of the runs
    pad_side: str
    total_frames: int | None
    wavs: dict[str, Path]
    votes: dict[str, np.ndarray]
    rows: dict[str, dict[str, int]]  # view key -> clip id -> row of its predictions


def clip_page(context: Context, clip: str, spectrogram: str, out: Path) -> tuple[dict, dict, dict]:
    """One clip: its index row (speaker left out), each view's index cells, and its speaker-file
    entry; writes its spectrogram to `out`/`spectrogram` when its WAV is there."""
    audio = read_audio(context.wavs[clip], out, context.features) if clip in context.wavs else None
    if audio is not None:
        write_spectrogram(out / spectrogram, audio.decibels)
    own = min(audio.own_frames, context.total_frames or audio.own_frames) if audio else None
    row = {"duration": round(audio.duration, 3) if audio else None, "frames": own}
    entry = {
        "probs": {},
        "att": {},
        "wav": audio.link if audio else None,
        "spec": spectrogram if audio else None,
        "votes": context.votes[clip].tolist() if clip in context.votes else None,
    }
    cells = {}
    for view in context.views:
        position = context.rows[view.key].get(clip)
        weights = context.attention[view.key][0].get(clip)
        share = padding_share(weights, own, context.pad_side) if weights is not None and own else None
        if position is None:
            cells[view.key] = (-1, None, None)
            continue
        probabilities = view.predictions.probabilities[position]  # (6,)
        predicted = EMOTIONS.index(str(view.predictions.predicted[position]))
        cells[view.key] = (
            predicted,
            round(float(probabilities[predicted]), 4),
            None if share is None else round(share, 4),
        )
        entry["probs"][view.key] = [round(float(p), 4) for p in probabilities]
        if weights is not None:
            entry["att"][view.key] = encode_curve(weights)
    return row, cells, entry


def view_record(
    view: View, context: Context, cells: dict[str, list], true: list[str], durations: list
) -> dict:
    """A view as data/index.js holds it: name, attention, and one prediction column per clip."""
    weights, reason = context.attention[view.key]
    predicted, confidence, shares = (list(column) for column in zip(*cells[view.key]))  # (clips,) each
    return {
        "key": view.key,
        "label": view.label,
        "attention": view.has_attention,
        "noAttention": reason,
        "padding": padding_summary(shares, true, durations) if weights else None,
        "pred": predicted,
        "conf": confidence,
        "pad": shares,
    }


def build_report(
    runs_root: str | Path,
    out: str | Path,
    data: str | Path | None = None,
    corpus: str | None = None,
    experiment: str | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
    meta: str | Path | None = None,
) -> Path:
    """Write the page of the runs of one corpus and experiment under `runs_root` (see
    `cremad.runs.select_runs`) into `out`; returns `out`/index.html."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise CremadError(f"--out {out}: a file, not a folder")
    selected = runs.select_runs(runs_root, corpus, experiment, models, seeds)
    first = next(iter(selected))
    results = load_results(selected)
    views = report_views(results, combined_results(results))
    clip_ids, facts = clip_rows(views)
    attention = {view.key: view_attention(view) for view in views}
    data = data or run_setting(results, "data_dir")
    context = Context(
        views=views,
        attention=attention,
        features=run_features(results),
        pad_side="start" if run_setting(results, "pad_side") == "start" else "end",
        total_frames=frame_axis(results, attention),
        wavs=audio_paths(data, first.corpus),
        votes=crowd_votes(meta, data),
        rows={
            view.key: {str(clip): row for row, clip in enumerate(view.predictions.clip_ids)} for view in views
        },
    )

    (out / "data").mkdir(parents=True, exist_ok=True)
    speakers = sorted({actor for actor, _ in facts.values()})
    speaker_of = {speaker: index for index, speaker in enumerate(speakers)}
    columns = {"id": clip_ids, "speaker": [], "duration": [], "frames": [], "true": []}
    cells: dict[str, list] = {view.key: [] for view in views}
    by_speaker: dict[str, dict] = {speaker: {} for speaker in speakers}
    for number, clip in enumerate(clip_ids):
        actor, true = facts[clip]
        row, clip_cells, entry = clip_page(context, clip, f"spec/{speaker_of[actor]}/{number}.png", out)
        columns["speaker"].append(speaker_of[actor])
        columns["duration"].append(row["duration"])
        columns["frames"].append(row["frames"])
        columns["true"].append(EMOTIONS.index(true))
        for key, cell in clip_cells.items():
            cells[key].append(cell)
        by_speaker[actor][clip] = entry
    for speaker, entries in by_speaker.items():
        payload = {"speaker": speaker_of[speaker], "clips": entries}
        _script(out / "data" / f"speaker-{speaker_of[speaker]}.js", "cremadReportSpeaker", payload)
    true = [facts[clip][1] for clip in clip_ids]
    index = {
        "title": f"{first.corpus} / {first.experiment}",
        "runs": str(runs_root),
        "data": str(data) if data else None,
        "emotions": list(EMOTIONS),
        "emotionNames": [EMOTION_NAMES[emotion] for emotion in EMOTIONS],
        "speakers": speakers,
        "frames": context.total_frames,
        "hopSeconds": context.features.hop_length / context.features.sample_rate,
        "padSide": context.pad_side,
        "crowd": bool(context.votes),
        "notes": run_notes(views),
        "clips": columns,
        "views": [view_record(view, context, cells, true, columns["duration"]) for view in views],
    }
    _script(out / "data" / "index.js", "cremadReportIndex", index)
    for name in ASSET_FILES:
        with atomic_path(out / name) as temporary:
            shutil.copyfile(ASSETS / name, temporary)
    log.info(
        "%s: %d clips, %d views, %d speakers; open %s",
        index["title"],
        len(clip_ids),
        len(views),
        len(speakers),
        out / "index.html",
    )
    return out / "index.html"


def add_arguments(parser) -> None:
    runs.add_selection_arguments(parser)
    parser.add_argument(
        "--out", required=True, help="folder for index.html and its data (nothing else is written)"
    )
    parser.add_argument(
        "--data", default=None, help="corpus folder of the audio (default: run.json's data_dir)"
    )
    parser.add_argument(
        "--meta",
        default=None,
        help="folder holding CREMA-D's tabulatedVotes.csv (default: --data, if it has it)",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    selected = runs.selected_runs(args)
    build_report(args.runs, args.out, data=args.data, meta=args.meta, **runs.selection_of(selected))
    return 0
