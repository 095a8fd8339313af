"""Frame feature sets beyond the paper's 13 MFCCs, on the MFCCs' own frames.

The paper's Discussion names what it did not try: "increasing the number of input features along
with 13 mfccs such as pitch, total energy, mean, variance". `features.frame_features` picks a set;
each adds columns after the MFCCs, frame t of every column describing the same 20 ms window
(centred on sample t * hop of the padded clip), so the four models take any set unchanged:

    mfcc         the paper's 13 MFCCs (the default)
    mfcc-deltas  + their deltas and delta-deltas (librosa's 9-frame regression)        39
    prosody      + log energy (dB), pitch (semitones re 27.5 Hz) and a voicing flag       42
    rich         + spectral centroid, bandwidth, flatness, roll-off, zero-crossing rate  47

Deltas, energy and pitch are computed over the clip's own frames only (FeatureSet.speech_mask's
frames): the jump from padding into speech never enters a delta. Pure-padding frames hold one
fixed value per column in every clip (0, energy its dB floor), as the MFCCs of the padding do.
Pitch is librosa.yin on the signal resampled to 8 kHz (pitch_track: pyin's voicing model costs
far more); a frame is voiced when it lies within VOICED_WITHIN_DB of the clip's loudest frame and
its period is not pinned to a search bound, the gate `cremad.functionals` uses. Unvoiced frames
carry the pitch interpolated between their voiced neighbours, so that the pitch column stays
continuous and the flag says which is which. `warp_spectrum` is VTLP's frequency warp
(cremad.augment): applied to the spectrum, it reaches the MFCCs, energy and spectral shape, while
pitch, voicing and the zero-crossing rate, read from the waveform, stay as they are.
"""

from __future__ import annotations

import numpy as np

from cremad.config import FRAME_FEATURE_SETS, FeatureConfig

DELTA_WIDTH = 9  # librosa's default regression window (4 frames each side, 40 ms)
# yin's search range covers adult speech from a low male voice to shouted female speech.
PITCH_FMIN, PITCH_FMAX = 60.0, 600.0
PITCH_FRAME = 1024  # 64 ms at 16 kHz: two periods of the lowest pitch fit in a frame
PITCH_REFERENCE_HZ = 27.5  # semitone reference, as in eGeMAPS (A0)
# yin reports a period for every frame, also in pauses and noise; pitch statistics use only frames
# within this many dB of the clip's loudest frame whose pitch is not pinned to a search bound (yin
# clips to the bound when no period lies in range): a plain gate instead of pyin's slow voicing.
VOICED_WITHIN_DB = 30.0
BOUND_MARGIN = 1.02  # a pitch within 2 % of PITCH_FMIN or PITCH_FMAX counts as pinned
SILENCE_DB = -100.0  # RMS floor in dB, as features.log_floor_db floors the log-mel power
PITCH_RATE = 8000  # the frame features' pitch track runs at this rate (pitch_track)
# VTLP (cremad.augment): Jaitly & Hinton's F_hi at 16 kHz. Below it frequencies scale by the warp
# factor; above it the warp is linear again, so that the band up to the Nyquist stays covered.
VTLP_BOUNDARY_HZ = 4800.0


PROSODY_COLUMNS = ("energy_db", "pitch_st", "voiced")
SPECTRAL_COLUMNS = ("centroid", "bandwidth", "flatness", "rolloff", "zcr")


def column_names(config: FeatureConfig) -> list[str]:
    """The names of the columns `frame_features` returns for config.frame_features."""
    if config.frame_features not in FRAME_FEATURE_SETS:
        raise ValueError(f"unknown frame feature set {config.frame_features!r} (known: {FRAME_FEATURE_SETS})")
    mfcc = [f"mfcc{index}" for index in range(config.n_mfcc)]
    if config.frame_features == "mfcc":
        return mfcc
    names = mfcc + [f"d_{name}" for name in mfcc] + [f"dd_{name}" for name in mfcc]
    if config.frame_features in ("prosody", "rich"):
        names += list(PROSODY_COLUMNS)
    if config.frame_features == "rich":
        names += list(SPECTRAL_COLUMNS)
    return names


def frame_features(
    mfcc: np.ndarray, padded: np.ndarray, n_own: int, config: FeatureConfig, magnitude: np.ndarray
) -> np.ndarray:
    """The columns of config.frame_features for one clip: `mfcc` (frames, n_mfcc) and `magnitude`
    (magnitude_spectrum's (bins, frames)) of the zero-padded signal `padded`, whose last (start
    padding) or first (end padding) `n_own` frames hold the clip's own audio.
    Returns float32 (frames, len(column_names(config)))."""
    if config.frame_features == "mfcc":
        return mfcc
    import librosa

    n_total = len(mfcc)
    n_own = max(1, min(n_own, n_total))
    own = slice(n_total - n_own, n_total) if config.pad_side == "start" else slice(0, n_own)
    columns = [mfcc]
    deltas = np.zeros((n_total, 2 * config.n_mfcc), np.float32)
    if n_own >= 3:  # librosa's regression needs an odd window of at least 3 frames
        width = min(DELTA_WIDTH, n_own if n_own % 2 else n_own - 1)
        clip = mfcc[own].T  # (n_mfcc, n_own)
        deltas[own] = np.concatenate(
            [
                librosa.feature.delta(clip, width=width, order=1),
                librosa.feature.delta(clip, width=width, order=2),
            ]
        ).T
    columns.append(deltas)
    if config.frame_features in ("prosody", "rich"):
        # yin and the zero-crossing rate run on the clip's own frames only: cut the padded signal
        # to them plus the widest window's half on each side, so that frame j of the piece is frame lo + j.
        hop = config.hop_length
        margin = -(-max(PITCH_FRAME, config.n_fft) // (2 * hop))  # frames
        lo, hi = max(0, own.start - margin), min(n_total, own.stop + margin)
        piece = padded[lo * hop :] if hi == n_total else padded[lo * hop : (hi - 1) * hop + 1]
        inner = slice(own.start - lo, own.stop - lo)  # the own frames, in the piece's frames
        own_magnitude = magnitude[:, own]  # (bins, n_own)
        prosody = np.zeros((n_total, len(PROSODY_COLUMNS)), np.float32)
        prosody[:, 0] = SILENCE_DB
        prosody[own] = _prosody(piece, own_magnitude, inner, config)
        columns.append(prosody)
        if config.frame_features == "rich":
            spectral = np.zeros((n_total, len(SPECTRAL_COLUMNS)), np.float32)
            spectral[own] = spectral_descriptors(piece, own_magnitude, config, inner)
            columns.append(spectral)
    return np.ascontiguousarray(np.concatenate(columns, axis=1), dtype=np.float32)


def pitch_track(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """yin's f0 (Hz) per frame of `signal`, frames as the MFCCs'. Speech pitch lies below 600 Hz,
    so yin runs on the signal resampled to PITCH_RATE: the same frames and window in seconds at
    about a third of the cost of the full rate."""
    import librosa

    rate = PITCH_RATE if config.sample_rate % PITCH_RATE == 0 else config.sample_rate
    factor = config.sample_rate // rate
    low = signal if factor == 1 else librosa.resample(signal, orig_sr=config.sample_rate, target_sr=rate)
    return librosa.yin(
        low,
        fmin=PITCH_FMIN,
        fmax=PITCH_FMAX,
        sr=rate,
        frame_length=PITCH_FRAME // factor,
        hop_length=config.hop_length // factor,
        center=config.center,
    )


def magnitude_spectrum(signal: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """|STFT| of `signal` framed as the MFCCs (window, hop, centring, zero-padded ends): (bins, frames)."""
    import librosa

    frame = dict(n_fft=config.n_fft, hop_length=config.hop_length, win_length=config.win_length)
    return np.abs(librosa.stft(signal, window="hann", center=config.center, pad_mode="constant", **frame))


def _vtlp_knots(factor: float, nyquist: float) -> tuple[list[float], list[float]]:
    """(frequencies, where vtlp_warp sends them): the warp is linear between these knots."""
    knee = min(VTLP_BOUNDARY_HZ, nyquist) * min(factor, 1.0) / factor
    return [0.0, knee, nyquist], [0.0, factor * knee, nyquist]


def vtlp_warp(frequencies: np.ndarray, factor: float, nyquist: float) -> np.ndarray:
    """Jaitly & Hinton's piecewise-linear warp: f -> factor * f up to the knee
    VTLP_BOUNDARY_HZ * min(factor, 1) / factor, then linear to the Nyquist, which stays fixed."""
    return np.interp(frequencies, *_vtlp_knots(factor, nyquist))


def warp_spectrum(magnitude: np.ndarray, factor: float, config: FeatureConfig) -> np.ndarray:
    """|STFT| (bins, frames) with its frequency axis warped by vtlp_warp: the output bin at f
    reads the input at the warp's inverse of f (linear interpolation between bins), so that a
    tone at f comes out at about factor * f. The same as warping the mel filterbank's
    frequencies, and every column computed from the spectrum is warped with it."""
    nyquist = config.sample_rate / 2
    bins = np.linspace(0.0, nyquist, magnitude.shape[0])  # (bins,) Hz
    knots, warped = _vtlp_knots(factor, nyquist)
    position = np.interp(bins, warped, knots) / bins[1]  # (bins,) fractional input bin of each output bin
    below = np.minimum(position.astype(int), len(bins) - 2)
    weight = (position - below)[:, None]  # (bins, 1)
    return ((1 - weight) * magnitude[below] + weight * magnitude[below + 1]).astype(magnitude.dtype)


def energy_db(magnitude: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """RMS level per frame in dB (re 1.0), floored at SILENCE_DB: (frames,)."""
    import librosa

    rms = librosa.feature.rms(S=magnitude, frame_length=config.n_fft, hop_length=config.hop_length)[0]
    return 20 * np.log10(np.maximum(rms, 10 ** (SILENCE_DB / 20)))


def voicing(f0: np.ndarray, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(voiced, loud) per frame: loud within VOICED_WITHIN_DB of the loudest frame, voiced when
    also its period is not pinned to a search bound (where yin clips when no period fits)."""
    loud = energy >= energy.max() - VOICED_WITHIN_DB
    return loud & (f0 > PITCH_FMIN * BOUND_MARGIN) & (f0 < PITCH_FMAX / BOUND_MARGIN), loud


def spectral_descriptors(
    signal: np.ndarray, magnitude: np.ndarray, config: FeatureConfig, frames: slice = slice(None)
) -> np.ndarray:
    """SPECTRAL_COLUMNS of the `frames` of `signal`, whose magnitude spectrum of those frames is
    `magnitude`: centroid, bandwidth (Hz), flatness, 85 % roll-off (Hz), zero-crossing rate.
    Returns (n_frames, 5)."""
    import librosa

    rate, n_fft = config.sample_rate, config.n_fft
    zcr = librosa.feature.zero_crossing_rate(
        signal, frame_length=config.win_length, hop_length=config.hop_length, center=config.center
    )[0][frames]
    n_frames = min(magnitude.shape[1], len(zcr))  # all share the hop; guard against off-by-one
    centroid = librosa.feature.spectral_centroid(S=magnitude, sr=rate, n_fft=n_fft)
    columns = (
        centroid[0],
        librosa.feature.spectral_bandwidth(S=magnitude, sr=rate, n_fft=n_fft, centroid=centroid)[0],
        librosa.feature.spectral_flatness(S=magnitude)[0],
        librosa.feature.spectral_rolloff(S=magnitude, sr=rate, n_fft=n_fft)[0],
        zcr,
    )
    return np.column_stack([column[:n_frames] for column in columns])


def _prosody(piece: np.ndarray, magnitude: np.ndarray, inner: slice, config: FeatureConfig) -> np.ndarray:
    """(n_own, 3): log energy in dB, pitch in semitones (interpolated where unvoiced), voiced 0/1."""
    energy = energy_db(magnitude, config)  # (n_own,)
    f0 = pitch_track(piece, config)[inner]
    voiced, loud = voicing(f0, energy)
    anchors = voiced if voiced.any() else loud  # the loudest frame always passes
    pitch = 12 * np.log2(f0 / PITCH_REFERENCE_HZ)
    positions = np.arange(len(pitch))
    pitch = np.interp(positions, positions[anchors], pitch[anchors])  # held flat at the ends
    return np.column_stack([energy, pitch, voiced])
