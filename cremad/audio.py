"""Reading a clip: any sound file as float32 mono at the features' sample rate, checked first
(empty, truncated, unreadable or sample-less files raise BadAudioError naming the file), and
zero-padded or cropped to the corpus length.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from cremad import CremadError
from cremad.config import FeatureConfig


class BadAudioError(CremadError):
    """An unreadable, truncated or empty audio file; the message names the file."""


def pad_signal(signal: np.ndarray, pad_to: int, pad_side: str = "end") -> np.ndarray:
    """`signal` zero-padded to `pad_to` samples at `pad_side` ("end" or "start"); a longer one is
    cropped to its first `pad_to` samples. Returns float32 (pad_to,)."""
    if pad_side not in ("end", "start"):
        raise ValueError(f"features.pad_side must be 'end' or 'start', got {pad_side!r}")
    kept = signal[:pad_to]
    padded = np.zeros(pad_to, dtype=np.float32)
    if pad_side == "end":
        padded[: len(kept)] = kept
    else:
        padded[pad_to - len(kept) :] = kept
    return padded


# Digital silence: at most one and a half 16-bit steps, so that resampling a run of zeros (which
# leaves tiny values beside its edges) still reads as silence.
DIGITAL_SILENCE = 1.5 / 32768


def trim_digital_silence(signal: np.ndarray, min_run: int) -> np.ndarray:
    """`signal` without a leading or trailing run of digital silence (|x| <= DIGITAL_SILENCE) that is
    at least `min_run` samples long: zeros a corpus has already appended to a clip. Shorter runs,
    and an all-silent signal, are left as they are."""
    loud = np.flatnonzero(np.abs(signal) > DIGITAL_SILENCE)
    if len(loud) == 0:
        return signal
    start, stop = int(loud[0]), int(loud[-1]) + 1
    if start < min_run:
        start = 0
    if len(signal) - stop < min_run:
        stop = len(signal)
    return signal[start:stop]


def _declared_wav_bytes(path: Path) -> tuple[int, int] | None:
    """(declared data bytes, bytes actually present) from a RIFF/WAVE header, or None if the file
    is not a plain RIFF WAV. libsndfile silently reads a truncated file, so we check ourselves."""
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return None
        while True:
            chunk = handle.read(8)
            if len(chunk) < 8:
                return None
            chunk_id, size = struct.unpack("<4sI", chunk)
            if chunk_id == b"data":
                start = handle.tell()
                present = os.path.getsize(path) - start
                return size, present
            handle.seek(size + (size & 1), os.SEEK_CUR)


def load_audio(path: str | Path, sample_rate: int = FeatureConfig.sample_rate) -> np.ndarray:
    """Read a sound file as float32 mono at `sample_rate`: channels are averaged, other rates
    resampled (soxr, high quality). Raises BadAudioError naming the file."""
    import librosa
    import soundfile

    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise BadAudioError(f"{path}: empty file (0 bytes)")
        declared = _declared_wav_bytes(path)
        if declared is not None and declared[0] != 0xFFFFFFFF and declared[1] < declared[0]:
            raise BadAudioError(
                f"{path}: truncated WAV (header declares {declared[0]} data bytes, {declared[1]} present)"
            )
        signal, file_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except BadAudioError:
        raise
    except (OSError, RuntimeError, soundfile.LibsndfileError) as error:
        raise BadAudioError(f"{path}: unreadable audio ({error})") from error
    if signal.shape[0] == 0:
        raise BadAudioError(f"{path}: no audio samples")
    signal = signal.mean(axis=1)  # (samples,)
    if file_rate != sample_rate:
        signal = librosa.resample(signal, orig_sr=file_rate, target_sr=sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(signal, dtype=np.float32)
