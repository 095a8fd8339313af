"""Utterance-level functionals for the classical baseline: statistics over each clip's own frames.

The baseline (cremad/baseline.py) describes a clip by a fixed-length vector, the way openSMILE and
nkululeko do: frame-level descriptors (low-level descriptors, LLDs) summarized over time by

    mean, std, min, max, range, 25/50/75 % quantiles, slope (least squares, per second),
    and the mean and std of the descriptor's deltas (librosa.feature.delta)

`--features mfcc` uses the paper's 13 MFCCs from the feature cache, restricted to the clip's own
frames by `FeatureSet.speech_mask()`: the padding never enters a statistic, so a clip gives the
same vector whatever length the corpus pads it to. `--features rich` adds librosa's spectral
centroid, bandwidth, flatness and roll-off, the zero-crossing rate, the RMS level (dB) and the
pitch (librosa.yin, in semitones) computed from the clip's own samples. The matrix is cached next
to the MFCCs, keyed by the MFCC cache key and everything else that made it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from cremad import CremadError
from cremad.atomic import atomic_path
from cremad.config import FeatureConfig
from cremad.frames import (
    BOUND_MARGIN,
    DELTA_WIDTH,
    PITCH_FMAX,
    PITCH_FMIN,
    PITCH_FRAME,
    PITCH_REFERENCE_HZ,
    VOICED_WITHIN_DB,
    energy_db,
    magnitude_spectrum,
    spectral_descriptors,
    voicing,
)

log = logging.getLogger(__name__)

# Bump when the functionals change in a way that changes their values.
FUNCTIONALS_CODE_VERSION = 1
FEATURE_KINDS = ("mfcc", "rich")
STATISTICS = (
    "mean",
    "std",
    "min",
    "max",
    "range",
    "q25",
    "median",
    "q75",
    "slope",
    "delta_mean",
    "delta_std",
)
RICH_DESCRIPTORS = ("centroid", "bandwidth", "flatness", "rolloff", "zcr", "rms_db", "pitch_st")


def statistic_names(descriptors: list[str] | tuple[str, ...]) -> list[str]:
    """Column names of `functionals`: '<descriptor>_<statistic>', descriptor by descriptor."""
    return [f"{descriptor}_{statistic}" for descriptor in descriptors for statistic in STATISTICS]


def functionals(frames: np.ndarray, frame_seconds: float) -> np.ndarray:
    """STATISTICS of every column of `frames` (n_frames, n_descriptors), one clip's own frames.

    The slope is the least-squares line over time in units per second (frames `frame_seconds`
    apart). Deltas use a window of DELTA_WIDTH frames, narrowed for clips shorter than that; a
    clip of one or two frames has slope and deltas 0. Returns float64 (n_descriptors * 11,),
    statistic by statistic within each descriptor (see `statistic_names`)."""
    import librosa

    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError(f"functionals need (n_frames >= 1, n_descriptors) frames, got shape {frames.shape}")
    n_frames = frames.shape[0]
    q25, median, q75 = np.percentile(frames, [25, 50, 75], axis=0)  # (n_descriptors,) each
    low, high = frames.min(axis=0), frames.max(axis=0)
    times = (np.arange(n_frames) - (n_frames - 1) / 2) * frame_seconds  # (n_frames,), centred
    spread = float(np.sum(times**2))
    slope = times @ (frames - frames.mean(axis=0)) / spread if spread > 0 else np.zeros(frames.shape[1])
    width = min(DELTA_WIDTH, n_frames if n_frames % 2 else n_frames - 1)  # odd, at most the clip
    if width >= 3:
        deltas = librosa.feature.delta(frames, width=width, axis=0)  # (n_frames, n_descriptors)
    else:
        deltas = np.zeros_like(frames)
    table = np.stack(
        [
            frames.mean(axis=0),
            frames.std(axis=0),
            low,
            high,
            high - low,
            q25,
            median,
            q75,
            slope,
            deltas.mean(axis=0),
            deltas.std(axis=0),
        ],
        axis=1,
    )  # (n_descriptors, 11)
    return table.reshape(-1)


def mfcc_functionals(features) -> tuple[np.ndarray, list[str]]:
    """Functionals of every clip's own MFCC frames (FeatureSet.speech_mask), padding left out: the
    MFCC columns only, whatever else features.frame_features adds, so that this yardstick stays
    the same under every experiment. Returns ((clips, 13 * 11) float64, column names)."""
    mask = features.speech_mask()  # (clips, frames)
    frame_seconds = features.config.hop_length / features.config.sample_rate
    n_mfcc = features.config.n_mfcc
    rows = [
        functionals(clip_features[own, :n_mfcc], frame_seconds)
        for clip_features, own in zip(features.features, mask)
    ]
    names = statistic_names([f"mfcc{index}" for index in range(n_mfcc)])
    return np.stack(rows), names


def rich_descriptors(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """RICH_DESCRIPTORS per frame of `signal` (the clip's own samples, no padding), framed like
    the MFCCs (config's window, hop and centring). Returns (n_frames, 7) float64; the pitch column
    holds semitones re PITCH_REFERENCE_HZ, NaN on unvoiced frames (see VOICED_WITHIN_DB); when no
    frame passes, the frames of the energy gate alone keep their pitch."""
    import librosa

    magnitude = magnitude_spectrum(signal, config)  # (bins, n_frames)
    spectral = spectral_descriptors(signal, magnitude, config)  # (n_frames, 5)
    rms_db = energy_db(magnitude, config)
    f0 = librosa.yin(  # at the full rate, as the baseline's runs were made
        signal,
        fmin=PITCH_FMIN,
        fmax=PITCH_FMAX,
        sr=config.sample_rate,
        frame_length=PITCH_FRAME,
        hop_length=config.hop_length,
        center=config.center,
    )
    n_frames = min(len(spectral), len(rms_db), len(f0))  # all share the hop; guard against off-by-one
    f0, rms_db = f0[:n_frames], rms_db[:n_frames]
    voiced, loud = voicing(f0, rms_db)
    pitch = 12 * np.log2(f0 / PITCH_REFERENCE_HZ)
    pitch[~(voiced if voiced.any() else loud)] = np.nan
    return np.column_stack([spectral[:n_frames], rms_db, pitch])  # (n_frames, 7)


def _rich_clip(
    path: str, length: int, config: FeatureConfig, speed: float = 1.0, pad_to: int = 0
) -> np.ndarray:
    """Worker: functionals of RICH_DESCRIPTORS of one clip, cropped to `length` samples as the
    MFCCs were; with `speed`, of its speed copy, made as cremad.augment makes the copy's frames."""
    from cremad.features import read_clip

    signal = read_clip(path, config)[0]
    if speed == 1.0:
        return _rich_of(signal[:length], config)
    from cremad.augment import fit_length, speed_perturb

    return _rich_of(
        fit_length(speed_perturb(signal, speed, config.sample_rate), pad_to, config.pad_side), config
    )


def _rich_of(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Functionals of RICH_DESCRIPTORS of one clip's own samples. Pitch statistics use the gated
    frames only."""
    descriptors = rich_descriptors(signal, config)  # (n_frames, 7)
    frame_seconds = config.hop_length / config.sample_rate
    spectral = functionals(descriptors[:, :-1], frame_seconds)
    pitch = descriptors[:, -1]
    voiced = pitch[np.isfinite(pitch)]  # never empty: the loudest frame passes the energy gate
    return np.concatenate([spectral, functionals(voiced[:, None], frame_seconds)])


def rich_functionals(features, jobs: int = -1, speed: float = 1.0) -> tuple[np.ndarray, list[str]]:
    """Functionals of RICH_DESCRIPTORS for every clip of `features` (a FeatureSet), from the
    audio (each clip's own samples, FeatureSet.lengths; with `speed`, each clip's speed copy), in
    parallel over `jobs` processes. Returns ((clips, 7 * 11) float64, column names)."""
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits

    if features.lengths is None:
        raise CremadError("this feature set has no clip lengths (made by an older cremad); re-extract it")
    with threadpool_limits(limits=1):  # per-clip FFTs are tiny; threads only contend
        rows = Parallel(n_jobs=jobs, batch_size=16)(
            delayed(_rich_clip)(clip.path, int(length), features.config, speed, features.pad_to)
            for clip, length in zip(features.clips, features.lengths)
        )
    return np.stack(rows), statistic_names(RICH_DESCRIPTORS)


def copy_functionals(
    features, kind: str = "mfcc", cache_dir: str | Path = "cache", jobs: int = -1
) -> np.ndarray:
    """`load_functionals` of every augmented copy in `features.augmented` (cremad.augment), rows in
    its order: each voice is read as a FeatureSet of its own (the copies' frames and lengths, keyed
    by the voice's cache key), its rich part from the copies' audio (speed copies only: VTLP warps
    the spectrum the descriptors would need to be computed from)."""
    from cremad.augment import augment_cache_key, parse_voice

    augmented = features.augmented
    if augmented is None:
        raise CremadError("copy functionals need the copies (cremad.augment.attach_augmented)")
    parts = []
    for voice in dict.fromkeys(augmented.voices):  # in the copies' order
        voice_kind, factor = parse_voice(str(voice))
        if kind == "rich" and voice_kind != "speed":
            raise CremadError(
                f"rich functionals of {voice} copies are not built (the spectral descriptors come "
                "from the unwarped audio); use --features mfcc, or speed_factors only"
            )
        rows = np.flatnonzero(augmented.voices == voice)
        copies = dataclasses.replace(
            features,
            features=augmented.features[rows],
            clips=[features.clips[source] for source in augmented.source[rows]],
            lengths=augmented.lengths[rows],
            cache_key=augment_cache_key(features.cache_key, voice_kind, factor),
            augmented=None,
        )
        speed = factor if voice_kind == "speed" else 1.0
        parts.append(load_functionals(copies, kind, cache_dir, jobs, speed=speed)[0])
    return np.concatenate(parts)


def functionals_key(features, kind: str) -> str:
    """Hash of what makes the functionals: the MFCC cache key (clips, files, feature settings,
    librosa), the kind, this module's version and the descriptor settings."""
    payload = {
        "features": features.cache_key,
        "kind": kind,
        "code": FUNCTIONALS_CODE_VERSION,
        "statistics": STATISTICS,
        "delta_width": DELTA_WIDTH,
        "pitch": [PITCH_FMIN, PITCH_FMAX, PITCH_FRAME, PITCH_REFERENCE_HZ, VOICED_WITHIN_DB, BOUND_MARGIN],
        "descriptors": RICH_DESCRIPTORS if kind == "rich" else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def load_functionals(
    features, kind: str = "mfcc", cache_dir: str | Path = "cache", jobs: int = -1, speed: float = 1.0
) -> tuple[np.ndarray, list[str]]:
    """The (clips, columns) functionals of `features` (a FeatureSet) for `kind` ("mfcc": the 13
    MFCCs; "rich": those and RICH_DESCRIPTORS) and their names, rows in the FeatureSet's clip
    order. Read from `cache_dir` when made before by the same inputs, else computed and cached.
    `speed`: the FeatureSet holds speed copies (copy_functionals), whose audio the rich part remakes."""
    if kind not in FEATURE_KINDS:
        raise ValueError(f"--features must be one of {', '.join(FEATURE_KINDS)}, got {kind!r}")
    if not features.cache_key:
        raise CremadError(
            "functionals need a cached feature set (load_features), whose key names what made it"
        )
    path = Path(cache_dir) / f"functionals-{kind}-{functionals_key(features, kind)}.npz"
    clip_ids = np.asarray(features.clip_ids).astype(str)
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if np.array_equal(data["clips"], clip_ids):
                log.info("functionals: cache hit %s", path)
                return data["values"], [str(name) for name in data["names"]]
        log.warning("functionals: %s lists other clips than the features; recomputing", path)
    started = time.perf_counter()
    values, names = mfcc_functionals(features)
    if kind == "rich":
        rich, rich_names = rich_functionals(features, jobs, speed)
        values, names = np.concatenate([values, rich], axis=1), names + rich_names
    if not np.all(np.isfinite(values)):
        bad = clip_ids[~np.all(np.isfinite(values), axis=1)]
        raise CremadError(f"functionals: non-finite values for clip(s) {', '.join(bad[:5])}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        np.savez(temporary, values=values, names=np.array(names), clips=clip_ids)
    log.info(
        "functionals: %d clips x %d %s functionals in %.1f s -> %s",
        len(values),
        values.shape[1],
        kind,
        time.perf_counter() - started,
        path,
    )
    return values, names
