"""The paper's features (section II-B): every clip zero-padded to the longest clip of the corpus,
then 13 MFCCs per 20 ms window with a 10 ms hop, cached in one file keyed by what made it. The
sha256 of every clip is cached beside it: a rerun finds identical clips (cremad.duplicates) without
hashing them again.

`cremad features --data DIR` extracts (in parallel over cores) and caches; every later step calls
`load_features`, which returns the cache when nothing that made it has changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from cremad import CremadError
from cremad.atomic import atomic_path
from cremad.audio import BadAudioError, load_audio, pad_signal, trim_digital_silence
from cremad.config import EMOTIONS, FeatureConfig, load_experiment
from cremad.corpus import CORPORA, CORPUS_HELP, DEFAULT_CORPUS, Clip, scan
from cremad.duplicates import DROP_OPTION, clip_digests, find_identical

log = logging.getLogger(__name__)

# Bump when the extraction code (here or in cremad.audio) changes in a way that changes its output.
FEATURE_CODE_VERSION = 2  # 2: per-clip lengths cached, pad_side, log_floor_db
# (section of the cache key payload, setting, value before it existed): see cache_key.
KEY_ADDED_LATER = (("config", "frame_features", "mfcc"), ("", "drop_conflicting", False))
# With jobs=-1, corpora smaller than this are extracted in-process (about 1500 clips/s per core).
SERIAL_BELOW = 2000


@dataclasses.dataclass
class FeatureSet:
    """MFCCs of a corpus, in clip-id order: features[i] belongs to clips[i]."""

    features: np.ndarray  # (clips, frames, n_mfcc) float32
    clips: list[Clip]
    config: FeatureConfig
    pad_to: int  # samples every clip was zero-padded (or cropped) to
    cache_key: str = ""
    excluded: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # (clip path, reason)
    lengths: np.ndarray | None = None  # (clips,) samples of each clip before padding (at most pad_to)
    drop_conflicting: bool = False  # identical clips under different labels were left out
    # The training copies train.speed_factors / vtlp_factors ask for (cremad.augment.attach_augmented).
    augmented: Any = None  # cremad.augment.AugmentedSet, or None

    @property
    def actors(self) -> np.ndarray:
        return np.array([clip.speaker for clip in self.clips])

    @property
    def labels(self) -> np.ndarray:
        return np.array([clip.label for clip in self.clips], dtype=np.int64)

    @property
    def clip_ids(self) -> np.ndarray:
        return np.array([clip.clip_id for clip in self.clips])

    @property
    def n_frames(self) -> int:
        return self.features.shape[1]

    @property
    def frame_counts(self) -> np.ndarray:
        """(clips,) frames that hold each clip's own audio rather than padding only."""
        if self.lengths is None:
            raise CremadError("this feature set has no clip lengths (made by an older cremad); re-extract it")
        counts = [n_frames(int(length), self.config) for length in self.lengths]
        return np.minimum(np.array(counts, dtype=np.int64), self.n_frames)

    def speech_mask(self) -> np.ndarray:
        """(clips, frames) bool: True on frames of the clip's own audio, False on pure padding."""
        return speech_mask(self.frame_counts, self.n_frames, self.config.pad_side)


def speech_mask(frame_counts: np.ndarray, total_frames: int, pad_side: str) -> np.ndarray:
    """(clips, total_frames) bool mask of each clip's own frames: the first `frame_counts[i]`
    frames with end padding, the last ones with start padding."""
    positions = np.arange(total_frames)[None, :]  # (1, frames)
    counts = np.asarray(frame_counts)[:, None]  # (clips, 1)
    if pad_side == "end":
        return positions < counts
    if pad_side == "start":
        return positions >= total_frames - counts
    raise ValueError(f"features.pad_side must be 'end' or 'start', got {pad_side!r}")


def n_frames(n_samples: int, config: FeatureConfig = FeatureConfig()) -> int:
    """Frames for a clip of `n_samples`: centred frames give 1 + n // hop, else full windows only."""
    if config.center:
        return 1 + n_samples // config.hop_length
    return 1 + max(0, n_samples - config.win_length) // config.hop_length


def read_clip(path: str | Path, config: FeatureConfig) -> tuple[np.ndarray, int]:
    """(a clip's own samples as the features see them, samples trimmed off): float32 mono at
    config.sample_rate, without the corpus's own edge silence when config.trim_digital_silence is
    set. Training, Fig. 2, `predict` and the SVM baseline all read clips through this."""
    signal = load_audio(path, config.sample_rate)
    if not config.trim_digital_silence:
        return signal, 0
    kept = trim_digital_silence(signal, min_run=config.win_length)
    return kept, len(signal) - len(kept)


def extract_mfcc(signal: np.ndarray, config: FeatureConfig, pad_to: int) -> np.ndarray:
    """13 MFCCs of `signal` zero-padded (at config.pad_side) or cropped to `pad_to` samples.
    Returns float32 (n_frames(pad_to), n_mfcc)."""
    from cremad.frames import magnitude_spectrum

    return mfcc_of_magnitude(magnitude_spectrum(pad_signal(signal, pad_to, config.pad_side), config), config)


def mfcc_of_magnitude(magnitude: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The MFCCs of a clip from its |STFT| (bins, frames), frames.magnitude_spectrum's: the numbers
    librosa.feature.melspectrogram(y=...) would give, with the spectrum left for the other frame
    features. Returns float32 (frames, n_mfcc)."""
    import librosa

    log_mel = log_mel_of_magnitude(magnitude, config)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=config.n_mfcc)  # (n_mfcc, frames), DCT-II ortho
    return np.ascontiguousarray(mfcc.T, dtype=np.float32)  # (frames, n_mfcc)


def log_mel_of_magnitude(magnitude: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """The log-mel power the MFCCs are the DCT of, from |STFT| (bins, frames): dB re 1, floored at
    config.log_floor_db. Returns (n_mels, frames)."""
    import librosa

    mel = librosa.feature.melspectrogram(
        S=magnitude**2.0,  # power spectrum, as melspectrogram(power=2.0) squares it
        sr=config.sample_rate,
        n_fft=config.n_fft,
        n_mels=config.n_mels,
        fmin=config.fmin,
        fmax=config.fmax,
    )
    # top_db=None: padding and silence map to the same MFCC vector in every clip. librosa's
    # default (80 dB below each clip's own peak) would make the padding value depend on the clip.
    return librosa.power_to_db(mel, ref=1.0, amin=10 ** (config.log_floor_db / 10), top_db=None)


def extract_frames(signal: np.ndarray, config: FeatureConfig, pad_to: int, warp: float = 1.0) -> np.ndarray:
    """The model's input columns for `signal` padded or cropped to `pad_to` samples: the MFCCs,
    then whatever config.frame_features adds (cremad.frames), all from one STFT. `warp` other
    than 1 scales the spectrum's frequencies first (VTLP, cremad.frames.warp_spectrum).
    Returns float32 (frames, columns)."""
    from cremad.frames import frame_features, magnitude_spectrum, warp_spectrum

    padded = pad_signal(signal, pad_to, config.pad_side)
    magnitude = magnitude_spectrum(padded, config)
    if warp != 1.0:
        magnitude = warp_spectrum(magnitude, warp, config)
    mfcc = mfcc_of_magnitude(magnitude, config)
    if config.frame_features == "mfcc":
        return mfcc
    n_own = n_frames(min(len(signal), pad_to), config)
    return frame_features(mfcc, padded, n_own, config, magnitude)


def _clip_length(path: str, sample_rate: int) -> int | str:
    """Length in samples at `sample_rate` from the header alone, or the reason it is unreadable."""
    import soundfile

    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        info = soundfile.info(path)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        return f"unreadable audio ({error})"
    return int(np.ceil(info.frames * sample_rate / info.samplerate))


def _process_clip(path: str, config: FeatureConfig, pad_to: int) -> tuple[np.ndarray | None, float, int, str]:
    """Worker: (mfcc or None, peak amplitude, samples trimmed off, error reason or '')."""
    try:
        signal, trimmed = read_clip(path, config)
    except BadAudioError as error:
        return None, 0.0, 0, str(error)
    peak = float(np.abs(signal).max())
    return extract_frames(signal, config, pad_to), peak, trimmed, ""


def file_list(clips: list[Clip]) -> list[tuple[str, int, int]]:
    """(clip id, size, mtime) of every clip, sorted by clip id: what says a file has changed.
    Clip ids, not file names: CASIA repeats 201.wav in every folder, and the corpus may move."""
    files = []
    for clip in sorted(clips, key=lambda item: item.clip_id):
        stat = os.stat(clip.path)
        files.append((clip.clip_id, stat.st_size, stat.st_mtime_ns))
    return files


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:20]


def cache_key(
    clips: list[Clip],
    config: FeatureConfig,
    corpus: str,
    skip_bad: bool,
    keep_silent: bool,
    drop_conflicting: bool = False,
    files: list[tuple[str, int, int]] | None = None,
) -> str:
    """Hash of everything that determines the cache: feature parameters, the sorted (clip id, size,
    mtime) file list (`files`, computed when not given), the librosa version, this module's
    extraction version and which clips the options leave out."""
    import librosa

    payload = {
        "config": dataclasses.asdict(config),
        "corpus": corpus,
        "files": file_list(clips) if files is None else files,
        "librosa": librosa.__version__,
        "code": FEATURE_CODE_VERSION,
        "skip_bad": skip_bad,
        "keep_silent": keep_silent,
        "drop_conflicting": drop_conflicting,
    }
    # A setting added after caches were made leaves the key while it holds the value every older
    # cache was made with, so that those caches stay valid.
    for section, key, old_value in KEY_ADDED_LATER:
        holder = payload[section] if section else payload
        if holder[key] == old_value:
            del holder[key]
    return _digest(payload)


def digests_path(cache_dir: str | Path, corpus: str, files: list[tuple[str, int, int]]) -> Path:
    """Where the sha256 of each clip is cached: keyed by the file list alone, so that every
    feature cache of the same files shares it."""
    return Path(cache_dir) / f"{corpus}-sha256-{_digest({'corpus': corpus, 'files': files})}.json"


def _atomic_savez(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        np.savez(temporary, **arrays)


def _read_cache(
    path: Path, by_id: dict[str, Clip], config: FeatureConfig, key: str, drop_conflicting: bool
) -> FeatureSet:
    with np.load(path, allow_pickle=False) as data:
        clips = [by_id[str(item)] for item in data["clip_ids"]]  # by id: the corpus may have moved
        excluded = [tuple(item) for item in data["excluded"].reshape(-1, 2)]
        return FeatureSet(
            data["features"],
            clips,
            config,
            int(data["pad_to"]),
            key,
            excluded,
            data["lengths"],
            drop_conflicting,
        )


def load_features(
    data_dir: str | Path,
    corpus: str = "cremad",
    config: FeatureConfig = FeatureConfig(),
    cache_dir: str | Path = "cache",
    skip_bad: bool = False,
    keep_silent: bool = False,
    strict: bool = False,
    jobs: int = -1,
    progress: bool = True,
    drop_conflicting: bool = False,
) -> FeatureSet:
    """MFCCs of every clip of the corpus under `data_dir`, from the cache when it is current.

    Bad audio raises BadAudioError naming the file unless `skip_bad`; silent clips (peak below
    config.silence_peak) are excluded and reported unless `keep_silent`. Clips with identical
    bytes are reported one group per line; `drop_conflicting` leaves out the groups whose labels
    disagree (cremad.duplicates)."""
    if corpus not in CORPORA:
        raise CremadError(f"unknown corpus {corpus!r} (choose from {', '.join(CORPORA)})")
    clips, _rejected = scan(data_dir, corpus, strict=strict, skip_bad=skip_bad)
    if not clips:
        raise CremadError(f"{data_dir}: no {corpus} clips found")
    files = file_list(clips)  # one stat per clip, for both cache keys
    digests = clip_digests(clips, digests_path(cache_dir, corpus, files))
    by_id = {clip.clip_id: clip for clip in clips}
    key = cache_key(clips, config, corpus, skip_bad, keep_silent, drop_conflicting, files)
    clips, left_out = find_identical(clips, digests, str(data_dir), drop_conflicting)
    if not clips:
        raise CremadError(f"{data_dir}: every clip was left out as identical to another ({DROP_OPTION})")
    path = Path(cache_dir) / f"{corpus}-{key}.npz"
    if path.is_file():
        started = time.perf_counter()
        features = _read_cache(path, by_id, config, key, drop_conflicting)
        log.info(
            "features: cache hit %s (%d clips, %.2f s)",
            path,
            len(features.clips),
            time.perf_counter() - started,
        )
        for clip_path, reason in features.excluded:
            log.info("excluded %s: %s", Path(clip_path).name, reason)
        return features
    features = _extract(clips, config, corpus, path, key, skip_bad, keep_silent, jobs, progress, left_out)
    features.drop_conflicting = drop_conflicting
    return features


def _extract(clips, config, corpus, path, key, skip_bad, keep_silent, jobs, progress, left_out) -> FeatureSet:
    from threadpoolctl import threadpool_limits

    # One clip's matrices are tiny: a multi-threaded BLAS only spins, and on a busy machine it ran
    # MFCCs 6x slower than one thread (joblib's workers are limited to one thread already).
    with threadpool_limits(limits=1):
        return _extract_clips(
            clips, config, corpus, path, key, skip_bad, keep_silent, jobs, progress, left_out
        )


def _extract_clips(
    clips, config, corpus, path, key, skip_bad, keep_silent, jobs, progress, left_out
) -> FeatureSet:
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    started = time.perf_counter()
    excluded: list[tuple[str, str]] = list(left_out)  # the cache records them with the other exclusions
    lengths = {}
    for clip in clips:
        length = _clip_length(clip.path, config.sample_rate)
        if isinstance(length, str):
            if not skip_bad:
                raise BadAudioError(f"{clip.path}: {length} (use --skip-bad to list and exclude it)")
            excluded.append((clip.path, length))
        else:
            lengths[clip.path] = length
    if not lengths:
        raise CremadError("no readable clips")
    pad_to = config.pad_to or max(lengths.values())  # the longest clip as stored, edge silence and all
    readable = [clip for clip in clips if clip.path in lengths]
    if jobs == -1 and len(readable) < SERIAL_BELOW:
        jobs = 1  # starting worker processes (2-3 s) costs more than it saves on a small corpus
    results = Parallel(n_jobs=jobs, batch_size=32, return_as="generator")(
        delayed(_process_clip)(clip.path, config, pad_to) for clip in readable
    )
    kept_clips, kept_features, kept_lengths, seconds = [], [], [], 0.0
    for clip, (mfcc, peak, trimmed, error) in tqdm(
        zip(readable, results), total=len(readable), desc="MFCC", unit="clip", disable=not progress
    ):
        if error:
            if not skip_bad:
                raise BadAudioError(f"{error} (use --skip-bad to list and exclude it)")
            excluded.append((clip.path, error))
            continue
        if peak < config.silence_peak and not keep_silent:
            db = 20 * np.log10(max(peak, 1e-12))
            limit = 20 * np.log10(config.silence_peak)
            excluded.append(
                (clip.path, f"silent (peak {db:.0f} dBFS < {limit:.0f} dBFS; --keep-silent keeps it)")
            )
            continue
        kept_clips.append(clip)
        kept_features.append(mfcc)
        length = lengths[clip.path] - trimmed  # from the header, as pad_to is
        kept_lengths.append(min(length, pad_to))
        seconds += length / config.sample_rate
    for clip_path, reason in excluded:
        log.warning("excluded %s: %s", Path(clip_path).name, reason)
    if not kept_clips:
        raise CremadError("every clip was excluded; nothing to cache")
    features = np.stack(kept_features)  # (clips, frames, n_mfcc)
    _atomic_savez(
        path,
        features=features,
        paths=np.array([clip.path for clip in kept_clips]),
        clip_ids=np.array([clip.clip_id for clip in kept_clips]),
        pad_to=np.array(pad_to),
        lengths=np.array(kept_lengths, dtype=np.int64),
        excluded=np.array(excluded, dtype=str).reshape(-1, 2),
        config=np.array(json.dumps(dataclasses.asdict(config))),
    )
    elapsed = time.perf_counter() - started
    actors = len({clip.speaker for clip in kept_clips})
    log.info(
        "features: %d clips, %d actors, %d frames x %d columns, %.1f s of audio in %.1f s "
        "(%.0fx realtime) -> %s",
        len(kept_clips),
        actors,
        features.shape[1],
        features.shape[2],
        seconds,
        elapsed,
        seconds / max(elapsed, 1e-9),
        path,
    )
    return FeatureSet(
        features, kept_clips, config, pad_to, key, excluded, np.array(kept_lengths, dtype=np.int64)
    )


def add_clip_arguments(parser) -> None:
    """Which clips a command reads: every command that loads features takes these, so the cache
    `cremad features --skip-bad` wrote is the one `loso --skip-bad` (train, select, baseline) reads."""
    parser.add_argument(
        "--skip-bad", action="store_true", help="list and exclude unreadable or missing files"
    )
    parser.add_argument("--keep-silent", action="store_true", help="keep clips that hold no sound")
    parser.add_argument("--strict", action="store_true", help="fail on file names that do not parse")
    parser.add_argument(
        DROP_OPTION,
        action="store_true",
        help="leave out clips whose audio bytes are identical but whose labels disagree "
        "(CREMA-D has three such pairs; the paper kept them)",
    )


def clip_options(args) -> dict[str, bool]:
    """load_features' keyword arguments from `add_clip_arguments`' options."""
    return {
        "skip_bad": args.skip_bad,
        "keep_silent": args.keep_silent,
        "strict": args.strict,
        "drop_conflicting": args.drop_conflicting,
    }


def add_arguments(parser) -> None:
    parser.add_argument(
        "--data", default="data/CREMA-D", help="corpus root or its audio folder (manifest: the CSV)"
    )
    parser.add_argument("--corpus", choices=CORPORA, default=DEFAULT_CORPUS, help=CORPUS_HELP)
    parser.add_argument("--cache-dir", default="cache")
    add_clip_arguments(parser)
    parser.add_argument(
        "--experiment",
        default="paper",
        help="extract the [features] of experiments/NAME.toml, as loso will read them (default: paper)",
    )
    parser.add_argument("--jobs", type=int, default=-1, help="parallel workers (-1: all cores)")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    config = load_experiment(args.experiment).features
    features = load_features(
        args.data,
        args.corpus,
        config,
        args.cache_dir,
        jobs=args.jobs,
        **clip_options(args),
    )
    counts = np.bincount(features.labels, minlength=len(EMOTIONS))
    columns = "MFCCs" if config.frame_features == "mfcc" else f"columns ({config.frame_features})"
    print(
        f"{len(features.clips)} clips x {features.n_frames} frames x {features.features.shape[2]} {columns} "
        f"(padded to {features.pad_to} samples, {features.pad_to / features.config.sample_rate:.3f} s); "
        + ", ".join(f"{emotion} {count}" for emotion, count in zip(EMOTIONS, counts))
    )
    return 0
