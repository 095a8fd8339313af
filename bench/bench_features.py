"""Benchmark: feature extraction speed (clips/s, times realtime) on the demo corpus and Emo-DB.

Targets: the MFCCs at least 1000x realtime per core, i.e. CREMA-D's 5.2 h in < 15 s on 2 cores;
the richest frame feature set (cremad/frames.py) at least 200x. Run with `make bench` or
`python bench/bench_features.py [--out FILE]`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cremad.config import FeatureConfig
from cremad.features import extract_mfcc, load_features
from cremad.synth import write_corpus

EMODB = Path(__file__).resolve().parents[2] / "shared" / "emodb"


def time_corpus(
    name: str, data_dir: Path, corpus: str, jobs: int, config: FeatureConfig = FeatureConfig()
) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        features = load_features(data_dir, corpus, config, cache_dir=cache, jobs=jobs, progress=False)
        extract = time.perf_counter() - started
        started = time.perf_counter()
        load_features(data_dir, corpus, config, cache_dir=cache, jobs=jobs, progress=False)
        hit = time.perf_counter() - started
    import soundfile

    audio_seconds = sum(soundfile.info(clip.path).duration for clip in features.clips)
    return {
        "corpus": name,
        "clips": len(features.clips),
        "frames": features.n_frames,
        "jobs": jobs,
        "audio_s": round(audio_seconds, 1),
        "extract_s": round(extract, 2),
        "clips_per_s": round(len(features.clips) / extract, 1),
        "x_realtime": round(audio_seconds / extract, 1),
        "cache_hit_s": round(hit, 3),
    }


def time_mfcc_only(repeats: int = 200) -> dict:
    """Single-core MFCC of a 5.005 s clip (CREMA-D's longest), the kernel's own speed."""
    from threadpoolctl import threadpool_limits

    config = FeatureConfig()
    limits = threadpool_limits(limits=1)  # as load_features runs it
    signal = (np.random.default_rng(0).standard_normal(80_080) * 0.1).astype(np.float32)
    per_clip = median_seconds(lambda: extract_mfcc(signal, config, 80_080), repeats)
    limits.restore_original_limits()
    return {
        "mfcc_ms_per_5s_clip": round(per_clip * 1e3, 3),
        "mfcc_x_realtime_one_core": round(5.005 / per_clip, 1),
    }


def median_seconds(function, repeats: int) -> float:
    """Median wall time of `function()` over `repeats` calls after one warm-up: a call preempted by
    another process moves it little."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def time_frame_sets(repeats: int = 50) -> dict:
    """Single-core extraction of each frame feature set (cremad/frames.py) on a 5.005 s clip of
    speech-like audio (a gliding harmonic tone in noise), the clip's own samples unpadded, and the
    pitch track alone (the usual cost of prosodic features): median time per clip."""
    from threadpoolctl import threadpool_limits

    from cremad.config import FRAME_FEATURE_SETS
    from cremad.features import extract_frames
    from cremad.frames import pitch_track

    limits = threadpool_limits(limits=1)
    t = np.arange(80_080) / 16_000
    voice = sum(np.sin(2 * np.pi * k * (110 + 40 * t) * t) / k for k in range(1, 6))
    noise = np.random.default_rng(0).standard_normal(len(t))
    signal = (0.2 * voice + 0.02 * noise).astype(np.float32)
    results = {}
    for name in FRAME_FEATURE_SETS:
        config = FeatureConfig(frame_features=name)
        per_clip = median_seconds(lambda config=config: extract_frames(signal, config, 80_080), repeats)
        results[name] = {
            "ms_per_5s_clip": round(per_clip * 1e3, 2),
            "x_realtime_one_core": round(5.005 / per_clip),
        }
    pitch = median_seconds(lambda: pitch_track(signal, FeatureConfig()), repeats)
    results["pitch_track"] = {
        "ms_per_5s_clip": round(pitch * 1e3, 2),
        "x_realtime_one_core": round(5.005 / pitch),
    }
    limits.restore_original_limits()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results/features.json")
    parser.add_argument("--actors", type=int, default=6, help="demo corpus actors")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    cores = os.cpu_count()
    results = {"cores": cores, **time_mfcc_only(), "frame_sets": time_frame_sets()}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        demo = Path(tmp) / "demo"
        write_corpus(demo, actors=args.actors, seed=0)
        for jobs in (1, cores):
            rows.append(time_corpus(f"demo ({args.actors} actors)", demo, "cremad", jobs))
    if (EMODB / "wav").is_dir():
        for jobs in (1, cores):
            rows.append(time_corpus("emodb (22.05 kHz, resampled)", EMODB, "emodb", jobs))
        rich = FeatureConfig(frame_features="rich")
        for jobs in (1, cores):
            rows.append(time_corpus("emodb, frame set rich", EMODB, "emodb", jobs, rich))
    results["runs"] = rows
    best = max(row["x_realtime"] for row in rows if row["corpus"].startswith("demo"))
    results["cremad_projected_s"] = round(5.2 * 3600 / best, 1)  # CREMA-D holds about 5.2 h
    print(f"cores: {cores}; MFCC alone: {results['mfcc_x_realtime_one_core']}x realtime on one core")
    for name, row in results["frame_sets"].items():
        what = "pitch alone (yin, 8 kHz)" if name == "pitch_track" else f"frame set {name}"
        target = " (target: >= 200x)" if name == "rich" else ""
        print(
            f"{what:24} {row['ms_per_5s_clip']:7.2f} ms per 5.005 s clip, "
            f"{row['x_realtime_one_core']}x realtime on one core{target}"
        )
    print(
        f"{'corpus':32} {'jobs':>4} {'clips':>6} {'audio s':>8} {'extract s':>9} {'clips/s':>8} "
        f"{'x rt':>7} {'x rt/core':>9} {'hit s':>6}"
    )
    for row in rows:
        print(
            f"{row['corpus']:32} {row['jobs']:>4} {row['clips']:>6} {row['audio_s']:>8} "
            f"{row['extract_s']:>9} {row['clips_per_s']:>8} {row['x_realtime']:>7} "
            f"{row['x_realtime'] / row['jobs']:>9.0f} {row['cache_hit_s']:>6}"
        )
    print(
        f"projected CREMA-D (5.2 h) extraction: {results['cremad_projected_s']} s (target < 15 s on 2 cores)"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
