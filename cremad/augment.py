"""New voices for the few training speakers: speed and vocal-tract-length perturbation.

Beyond the paper, off by default. CASIA trains each fold on 3 speakers, and the models learn
them; both perturbations are the usual remedy in speech recognition and SER:

    speed  the clip resampled to play `factor` times faster, so that tempo and pitch both move
           by the factor (Kaldi's and Ko et al. 2015's speed perturbation)
    vtlp   the spectrum's frequency axis scaled by `factor` below VTLP_BOUNDARY_HZ and bent to
           keep the Nyquist frequency fixed above it (Jaitly & Hinton 2013; cremad.frames.warp_spectrum)

Each (kind, factor) is a *voice*: every clip of the corpus gets one copy per voice, extracted by
the feature code itself (cremad.features.extract_frames) and cached once per corpus and voice
beside the features, keyed by the features' own cache key, so that every fold and seed reuses it.
Only the fit rows' copies train: `augmented_inputs` takes the copies of the rows a caller passes
(never the test actor's), and `cremad.training.train_model` drops those of the watched rows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from cremad.atomic import atomic_path
from cremad.config import ExperimentConfig, FeatureConfig, TrainConfig
from cremad.frames import VTLP_BOUNDARY_HZ

log = logging.getLogger(__name__)

# Bump when a copy's extraction changes in a way that changes its output.
AUGMENT_CODE_VERSION = 1
VOICE_KINDS = ("speed", "vtlp")


@dataclasses.dataclass
class AugmentedSet:
    """The copies of a FeatureSet's clips: copy i was made from features.clips[source[i]]."""

    features: np.ndarray  # (copies, frames, columns) float32, the FeatureSet's frames and columns
    source: np.ndarray  # (copies,) row of the FeatureSet each copy was made from
    lengths: np.ndarray  # (copies,) samples of each copy's own audio (at most pad_to)
    voices: np.ndarray  # (copies,) str, e.g. "speed0.9": which perturbation made the copy


@dataclasses.dataclass
class TrainingCopies:
    """The copies of the rows passed to training, as training starts from them."""

    x: np.ndarray  # (copies, frames, columns)
    y: np.ndarray  # (copies,) their clips' labels
    frame_mask: np.ndarray | None  # (copies, frames) each copy's own frames
    source: np.ndarray  # (copies,) position, among the rows passed to training, of each copy's clip


def voice_name(kind: str, factor: float) -> str:
    return f"{kind}{factor:g}"


def parse_voice(name: str) -> tuple[str, float]:
    """("speed", 0.9) for the voice name "speed0.9" (`voice_name`'s inverse)."""
    for kind in VOICE_KINDS:
        if name.startswith(kind):
            try:
                return kind, float(name[len(kind) :])
            except ValueError:
                break
    raise ValueError(f"not a voice name: {name!r} (kinds: {', '.join(VOICE_KINDS)})")


def speed_perturb(signal: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """`signal` resampled so that, played at `sample_rate`, it runs `factor` times faster: about
    len(signal) / factor samples, every frequency (the pitch too) times `factor`."""
    import librosa

    if not factor > 0:
        raise ValueError(f"speed factor must be positive, got {factor!r}")
    # Read as if recorded at sample_rate * factor, then resampled to sample_rate.
    resampled = librosa.resample(
        signal, orig_sr=sample_rate * factor, target_sr=sample_rate, res_type="soxr_hq"
    )
    return np.ascontiguousarray(resampled, dtype=np.float32)


def fit_length(signal: np.ndarray, pad_to: int, pad_side: str) -> np.ndarray:
    """`signal` cut to at most `pad_to` samples at the padding's side: a slowed clip longer than
    the corpus's pad length loses its beginning with start padding (the end, which the last
    LSTM state reads, is kept) and its end with end padding (the models' frame count is fixed)."""
    if pad_side not in ("end", "start"):
        raise ValueError(f"features.pad_side must be 'end' or 'start', got {pad_side!r}")
    if len(signal) <= pad_to:
        return signal
    return signal[len(signal) - pad_to :] if pad_side == "start" else signal[:pad_to]


def augment_cache_key(feature_key: str, kind: str, factor: float) -> str:
    """Hash of what makes a voice's copies: the features' own cache key (parameters, file list,
    library versions), the perturbation and its factor, and this module's extraction version."""
    if kind not in VOICE_KINDS:
        raise ValueError(f"unknown augmentation {kind!r} (known: {', '.join(VOICE_KINDS)})")
    payload = {"features": feature_key, "kind": kind, "factor": float(factor), "code": AUGMENT_CODE_VERSION}
    if kind == "vtlp":
        payload["boundary_hz"] = VTLP_BOUNDARY_HZ
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def _copy_of(
    path: str, config: FeatureConfig, pad_to: int, kind: str, factor: float
) -> tuple[np.ndarray, int]:
    """Worker: (frames of one copy of the clip at `path`, samples of its own audio)."""
    from cremad.features import extract_frames, read_clip

    signal, _trimmed = read_clip(path, config)
    if kind == "speed":
        signal = fit_length(speed_perturb(signal, factor, config.sample_rate), pad_to, config.pad_side)
    return extract_frames(signal, config, pad_to, warp=factor if kind == "vtlp" else 1.0), min(
        len(signal), pad_to
    )


def voice_copies(
    features, kind: str, factor: float, cache_dir: str | Path, jobs: int = -1, progress: bool = True
) -> AugmentedSet:
    """One copy of every clip of the FeatureSet `features` under the voice (kind, factor), from
    the cache when it is there, else extracted (in parallel over `jobs` workers) and cached."""
    from cremad import CremadError
    from cremad.features import SERIAL_BELOW

    if not features.cache_key:
        raise CremadError("augmented copies need a cached feature set (load_features), whose key names them")
    path = (
        Path(cache_dir)
        / f"augment-{features.cache_key}-{augment_cache_key(features.cache_key, kind, factor)}.npz"
    )
    clip_ids = np.asarray(features.clip_ids)
    voice = voice_name(kind, factor)
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            if np.array_equal(data["clip_ids"], clip_ids):
                log.info("augment: cache hit %s (%s)", path, voice)
                return _augmented_set(data["features"], data["lengths"], voice)
    from joblib import Parallel, delayed
    from threadpoolctl import threadpool_limits
    from tqdm.auto import tqdm

    started = time.perf_counter()
    paths = [clip.path for clip in features.clips]
    if jobs == -1 and len(paths) < SERIAL_BELOW:
        jobs = 1  # worker start-up costs more than it saves on a small corpus (as features does)
    with threadpool_limits(limits=1):  # one clip's matrices are tiny: a threaded BLAS only spins
        results = list(
            tqdm(
                Parallel(n_jobs=jobs, batch_size=8, return_as="generator")(
                    delayed(_copy_of)(clip_path, features.config, features.pad_to, kind, factor)
                    for clip_path in paths
                ),
                total=len(paths),
                desc=voice,
                unit="clip",
                disable=not progress,
            )
        )
    frames = np.stack([result[0] for result in results])  # (clips, frames, columns)
    lengths = np.array([result[1] for result in results], dtype=np.int64)
    if frames.shape[1:] != features.features.shape[1:]:
        raise CremadError(
            f"{voice}: copies of shape {frames.shape[1:]}, features {features.features.shape[1:]}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        np.savez(temporary, features=frames, lengths=lengths, clip_ids=clip_ids)
    log.info(
        "augment: %s of %d clips in %.1f s -> %s", voice, len(paths), time.perf_counter() - started, path
    )
    return _augmented_set(frames, lengths, voice)


def _augmented_set(frames: np.ndarray, lengths: np.ndarray, voice: str) -> AugmentedSet:
    return AugmentedSet(frames, np.arange(len(frames)), np.asarray(lengths), np.full(len(frames), voice))


def attach_augmented(
    features, train: TrainConfig, cache_dir: str | Path, jobs: int = -1, progress: bool = True
):
    """`features` (a FeatureSet) with `augmented` holding one copy of every clip per voice of
    train.speed_factors and train.vtlp_factors (None without any). Returns a new FeatureSet."""
    parts = [voice_copies(features, kind, factor, cache_dir, jobs, progress) for kind, factor in train.voices]
    augmented = None
    if parts:
        augmented = AugmentedSet(
            *(
                np.concatenate([getattr(part, field.name) for part in parts])
                for field in dataclasses.fields(AugmentedSet)
            )
        )
    return dataclasses.replace(features, augmented=augmented)


def copy_speakers(actors, source: np.ndarray, voices: np.ndarray) -> np.ndarray:
    """Each copy's speaker for per-speaker normalization: "<actor>/<voice>", a speaker of its own."""
    return np.char.add(
        np.char.add(np.asarray(actors)[source].astype(str), "/"), np.asarray(voices).astype(str)
    )


def augmented_inputs(config: ExperimentConfig, features, rows: np.ndarray) -> TrainingCopies | None:
    """The copies of the clips `rows` (indices into `features`, the rows passed to training), as
    training starts from them, like cremad.scaling.model_inputs: with train.speaker_normalization
    each (actor, voice) z-scored by its own statistics, a new speaker of its own. No other clip's
    copy is returned. None when config.train asks for no voice."""
    from cremad.features import n_frames, speech_mask
    from cremad.scaling import normalize_speakers

    train = config.train
    if not train.voices:
        return None
    augmented = features.augmented
    wanted = {voice_name(kind, factor) for kind, factor in train.voices}
    if augmented is None or set(np.unique(augmented.voices)) != wanted:
        raise ValueError(
            f"the recipe's voices {sorted(wanted)} need their copies on the features "
            "(cremad.augment.attach_augmented)"
        )
    rows = np.asarray(rows)
    position = np.full(len(features.clips), -1)
    position[rows] = np.arange(len(rows))
    take = np.flatnonzero(position[augmented.source] >= 0)  # copies of the given rows only
    source = augmented.source[take]
    x = augmented.features[take]
    frame_mask = None
    if train.needs_frame_mask:
        counts = np.minimum(
            [n_frames(int(length), features.config) for length in augmented.lengths[take]], x.shape[1]
        )
        frame_mask = speech_mask(np.asarray(counts, dtype=np.int64), x.shape[1], features.config.pad_side)
    if train.speaker_normalization:
        groups = copy_speakers(features.actors, source, augmented.voices[take])
        scaler_mask = frame_mask if train.standardize_frames == "speech" else None
        x = normalize_speakers(x, groups, scaler_mask)
    return TrainingCopies(x, np.asarray(features.labels)[source], frame_mask, position[source])
