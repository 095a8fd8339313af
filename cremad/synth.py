"""A deterministic demo corpus laid out and named like CREMA-D, for trying the pipeline without
the real audio.

Each actor has a voice (base pitch, formant scale, breathiness); each of the 12 sentence codes is
a fixed syllable sequence; each emotion moves prosody away from neutral: pitch level and range,
energy, tempo, spectral tilt, jitter and breathiness, scaled by the emotion level (LO/MD/HI/XX)
and varied from clip to clip. The profiles overlap so that no single cue separates all six
classes. Clips have variable length and leading/trailing silence with a faint noise floor.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import zlib
from pathlib import Path

import numpy as np

from cremad.atomic import atomic_path
from cremad.config import EMOTIONS, SAMPLE_RATE
from cremad.corpus import CREMAD_SENTENCES

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Prosody:
    """Offsets from an actor's neutral voice at full intensity."""

    pitch: float  # semitones added to the base pitch
    pitch_range: float  # multiplier on the intonation excursion
    energy_db: float  # level change
    tempo: float  # >1 speaks faster
    tilt_db: float  # spectral tilt change per octave (positive = brighter)
    jitter: float  # relative cycle-to-cycle pitch perturbation
    breath: float  # share of aspiration noise


# Chosen so that pairs share cues: ANG/HAP are both high and loud (tilt and jitter differ),
# SAD/DIS both slow and low (energy and breath differ), FEA/HAP both high (range differs).
PROSODY = {
    "NEU": Prosody(
        pitch=0.0, pitch_range=1.0, energy_db=0.0, tempo=1.0, tilt_db=0.0, jitter=0.004, breath=0.05
    ),
    "ANG": Prosody(
        pitch=3.0, pitch_range=1.4, energy_db=7.0, tempo=1.12, tilt_db=3.0, jitter=0.012, breath=0.04
    ),
    "HAP": Prosody(
        pitch=4.0, pitch_range=1.9, energy_db=4.0, tempo=1.1, tilt_db=0.5, jitter=0.004, breath=0.06
    ),
    "FEA": Prosody(
        pitch=5.0, pitch_range=0.6, energy_db=-1.0, tempo=1.2, tilt_db=-1.0, jitter=0.02, breath=0.2
    ),
    "SAD": Prosody(
        pitch=-2.5, pitch_range=0.5, energy_db=-6.0, tempo=0.78, tilt_db=-3.0, jitter=0.006, breath=0.14
    ),
    "DIS": Prosody(
        pitch=-1.5, pitch_range=1.2, energy_db=1.0, tempo=0.85, tilt_db=-1.5, jitter=0.016, breath=0.08
    ),
}
LEVEL_INTENSITY = {"LO": 0.45, "MD": 0.7, "HI": 1.0, "XX": 0.8}
# (F1, F2, F3) in Hz of a few vowels for a neutral adult voice.
VOWELS = np.array(
    [[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410], [300, 870, 2240]]
)


def _rng(seed: int, *parts: str) -> np.random.Generator:
    return np.random.default_rng([seed] + [zlib.crc32(part.encode()) for part in parts])


def actor_voice(seed: int, actor: str) -> dict:
    rng = _rng(seed, "actor", actor)
    female = int(actor) % 2 == 0
    return {
        "f0": float(rng.uniform(180, 240) if female else rng.uniform(95, 135)),
        "formant_scale": float(rng.uniform(1.08, 1.2) if female else rng.uniform(0.92, 1.02)),
        "breath": float(rng.uniform(0.0, 0.08)),
        "tilt_db": float(rng.uniform(-2.0, 2.0)),
        "energy_db": float(rng.normal(0, 2.0)),
        "tempo": float(rng.uniform(0.9, 1.1)),
    }


def sentence_plan(seed: int, sentence: str) -> list[tuple[int, float]]:
    """(vowel index, relative duration) for each syllable of a sentence code."""
    rng = _rng(seed, "sentence", sentence)
    syllables = int(rng.integers(5, 10))
    return [(int(rng.integers(len(VOWELS))), float(rng.uniform(0.7, 1.4))) for _ in range(syllables)]


def _envelope(frequencies: np.ndarray, formants: np.ndarray, tilt_db: float) -> np.ndarray:
    """Spectral envelope (linear gain) at `frequencies`: formant resonances and a tilt."""
    gain = np.zeros_like(frequencies)
    for index, formant in enumerate(formants):
        bandwidth = 80.0 + 40.0 * index
        gain += 1.0 / (1.0 + ((frequencies - formant) / bandwidth) ** 2) / (index + 1)
    octaves = np.log2(np.maximum(frequencies, 50.0) / 500.0)
    return gain * 10 ** ((tilt_db - 6.0) * octaves / 20)


def synthesize_clip(
    seed: int, actor: str, sentence: str, emotion: str, level: str, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """One clip as float32 in [-1, 1]."""
    rng = _rng(seed, actor, sentence, emotion, level)
    voice = actor_voice(seed, actor)
    neutral, target = PROSODY["NEU"], PROSODY[emotion]
    strength = LEVEL_INTENSITY[level] * rng.uniform(0.7, 1.2)

    def mix(field: str) -> float:  # neutral -> emotion, scaled by level, varied per clip
        base, full = getattr(neutral, field), getattr(target, field)
        return base + (full - base) * strength

    pitch = mix("pitch") + rng.normal(0, 1.2)
    pitch_range = mix("pitch_range") * rng.uniform(0.8, 1.25)
    energy_db = mix("energy_db") + voice["energy_db"] + rng.normal(0, 1.5)
    tempo = mix("tempo") * voice["tempo"] * rng.uniform(0.92, 1.08)
    tilt_db = mix("tilt_db") + voice["tilt_db"] + rng.normal(0, 1.0)
    jitter = mix("jitter") * rng.uniform(0.7, 1.4)
    breath = mix("breath") + voice["breath"]

    f0_base = voice["f0"] * 2 ** (pitch / 12)
    pieces = [np.zeros(int(rng.uniform(0.1, 0.45) * sample_rate))]  # leading silence
    plan = sentence_plan(seed, sentence)
    for position, (vowel, duration) in enumerate(plan):
        n = int(0.17 * duration / tempo * sample_rate)
        t = np.arange(n) / sample_rate
        progress = (position + t / (n / sample_rate)) / len(plan)
        # Declination over the sentence, an accent on each syllable, excursion scaled by range.
        contour = -2.0 * progress + pitch_range * 2.5 * np.sin(np.pi * t / t[-1]) * (
            1 if position % 2 else 0.5
        )
        f0 = (
            f0_base
            * 2 ** (contour / 12)
            * (1 + jitter * rng.standard_normal(n).cumsum() / np.sqrt(np.arange(1, n + 1)))
        )
        phase = 2 * np.pi * np.cumsum(f0) / sample_rate
        formants = VOWELS[vowel] * voice["formant_scale"] * rng.uniform(0.95, 1.05)
        harmonics = np.arange(1, int(sample_rate / 2 / f0.max()))
        gains = _envelope(harmonics * f0_base, formants, tilt_db)  # (harmonics,)
        voiced = (gains[:, None] * np.sin(harmonics[:, None] * phase[None, :])).sum(axis=0)
        voiced /= np.abs(voiced).max() + 1e-9
        noise = rng.standard_normal(n)
        syllable = (1 - breath) * voiced + breath * noise * 0.5
        attack = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.02)
        pieces.append(syllable * attack * 10 ** (rng.normal(0, 1.5) / 20))
        gap = int(rng.uniform(0.02, 0.09) / tempo * sample_rate)  # consonant: a short noise burst
        pieces.append(rng.standard_normal(gap) * 0.05 * (1 + 2 * breath))
    pieces.append(np.zeros(int(rng.uniform(0.1, 0.45) * sample_rate)))  # trailing silence
    signal = np.concatenate(pieces)
    signal *= 0.2 * 10 ** (energy_db / 20)
    signal += rng.standard_normal(len(signal)) * 3e-4  # recording noise floor (about -70 dBFS)
    return np.clip(signal, -1.0, 1.0).astype(np.float32)


def clip_names(actors: list[str]) -> list[tuple[str, str, str, str]]:
    """CREMA-D's design per actor: 11 sentences x 6 emotions unspecified (XX), and IEO at three
    levels (LO/MD/HI) for the five non-neutral emotions plus neutral XX: 82 clips."""
    names = []
    for actor in actors:
        for sentence in CREMAD_SENTENCES:
            for emotion in EMOTIONS:
                if sentence == "IEO" and emotion != "NEU":
                    names.extend((actor, sentence, emotion, level) for level in ("LO", "MD", "HI"))
                else:
                    names.append((actor, sentence, emotion, "XX"))
    return names


def write_corpus(out_dir: str | Path, actors: int = 6, seed: int = 0, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write `actors` x 82 clips to OUT_DIR/AudioWAV/ (16-bit PCM). The same seed gives
    byte-identical files; files that are already identical are left untouched."""
    import soundfile

    if actors < 1 or actors > 999:
        raise ValueError(f"--actors must be between 1 and 999, got {actors}")
    folder = Path(out_dir) / "AudioWAV"
    folder.mkdir(parents=True, exist_ok=True)
    actor_ids = [str(1001 + index) for index in range(actors)]
    written = 0
    for actor, sentence, emotion, level in clip_names(actor_ids):
        path = folder / f"{actor}_{sentence}_{emotion}_{level}.wav"
        buffer = io.BytesIO()
        signal = synthesize_clip(seed, actor, sentence, emotion, level, sample_rate)
        soundfile.write(buffer, signal, sample_rate, subtype="PCM_16", format="WAV")
        data = buffer.getvalue()
        if path.is_file() and path.read_bytes() == data:
            continue  # unchanged: keep the file (and its mtime, so feature caches stay valid)
        with atomic_path(path) as temporary:
            temporary.write_bytes(data)
        written += 1
    log.info(
        "synth: %d clips (%d new) for actors %s..%s in %s",
        actors * 82,
        written,
        actor_ids[0],
        actor_ids[-1],
        folder,
    )
    return folder


def add_arguments(parser) -> None:
    parser.add_argument("out_dir", help="corpus root; clips go to OUT_DIR/AudioWAV/")
    parser.add_argument("--actors", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=SAMPLE_RATE)
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    write_corpus(args.out_dir, args.actors, args.seed, args.sample_rate)
    return 0
