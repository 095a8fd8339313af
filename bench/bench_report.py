"""`cremad report` at CREMA-D's size: 7442 clips of 91 actors, models 1-4, one seed.

Writes a synthetic corpus (`cremad synth`'s voices, CREMA-D's names, 7442 of them), synthetic
crowd votes, and a run folder per model with 91 finished folds written through `cremad.runs`
(random predictions; for models 1 and 2 a random attention curve per clip on a 501-frame axis,
CREMA-D's longest clip padded), then builds the report and measures:

- the report folder's size (the audio is linked, never copied, so none of it counts),
- how long the build takes,
- the load time in headless Chromium: from navigation start until the first page of clips is
  drawn with its speakers' data (`cremadReport.readyAt`), for the opening view, a confusion cell
  and the clips sorted by attention on padding; each in a fresh browser, median of `--repeats`.

    .venv/bin/python bench/bench_report.py --out bench/results/report.json

Needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver) and about
700 MB of disk for the corpus in --workdir (removed afterwards unless --keep).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile
from bench_models import cpu_model

from cremad import runs
from cremad.config import EMOTIONS, FeatureConfig
from cremad.crowd import VOTE_COLUMNS
from cremad.features import n_frames
from cremad.model_names import PAPER_MODEL_IDS, model_name, model_spec
from cremad.report import build_report
from cremad.synth import write_corpus

CREMAD_CLIPS = 7442
CREMAD_ACTORS = 91
PAD_TO = 80_080  # samples of CREMA-D's longest clip (5.005 s): 501 centred frames
ACCURACY = {1: 0.55, 2: 0.60, 3: 0.45, 4: 0.50}  # how often each synthetic model is right
VIEWS = {
    "opening": "",
    "confusion cell": "#model=2&true=ANG&pred=SAD",
    "sorted by padding": "#model=1&sort=padding&order=desc",
}


def write_clips(corpus: Path) -> list[tuple[str, str, int]]:
    """7442 synthetic clips with CREMA-D names; returns (clip id, actor, emotion index) of each."""
    folder = write_corpus(corpus, actors=CREMAD_ACTORS, seed=0)
    paths = sorted(folder.glob("*.wav"))
    for path in paths[CREMAD_CLIPS:]:  # 91 x 82 is 7462: CREMA-D has 20 fewer
        path.unlink()
    clips = [path.stem for path in paths[:CREMAD_CLIPS]]
    return [(clip, clip.split("_")[0], EMOTIONS.index(clip.split("_")[2])) for clip in clips]


def write_votes(meta: Path, clips, rng) -> None:
    """tabulatedVotes.csv: 4-12 voice-only votes per clip, most for the intended emotion."""
    meta.mkdir(parents=True, exist_ok=True)
    with open(meta / "tabulatedVotes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["", *VOTE_COLUMNS, "fileName", "numResponses"])
        for number, (clip, _, label) in enumerate(clips):
            share = np.full(len(EMOTIONS), 0.4 / (len(EMOTIONS) - 1))
            share[label] = 0.6
            votes = rng.multinomial(int(rng.integers(4, 13)), share)
            writer.writerow([f"1{number:05d}", *votes, clip, votes.sum()])


def write_run(root: Path, model_id: int, clips, own_frames: dict[str, int], rng) -> None:
    """One model's run of 91 finished folds: random predictions, attention for models 1 and 2."""
    total = n_frames(PAD_TO)
    run_dir = runs.run_dir(root, "cremad", "paper", model_name(model_id), 0)
    actors = sorted({actor for _, actor, _ in clips})
    record = {
        "experiment": "paper",
        "model": model_name(model_id),
        "model_id": model_id,
        "corpus": "cremad",
        "seed": 0,
        "config": {"features": {"pad_side": "start"}, "train": {"seed": 0}},
        "n_frames": total,
        "pad_to": PAD_TO,
        "actors": actors,
    }
    runs.prepare_run(run_dir, record, force=False)
    for actor in actors:
        fold = [clip for clip in clips if clip[1] == actor]
        folder = runs.start_fold(runs.fold_dir(run_dir, actor))
        labels = np.array([label for _, _, label in fold])
        right = rng.random(len(fold)) < ACCURACY[model_id]
        predicted = np.where(right, labels, rng.integers(0, len(EMOTIONS), len(fold)))
        probabilities = rng.dirichlet(np.ones(len(EMOTIONS)), len(fold)) * 0.5  # (n, 6)
        probabilities[np.arange(len(fold)), predicted] += 0.5
        if model_spec(model_id).attention:
            scores = rng.standard_normal((len(fold), 1, total)).cumsum(axis=-1) * 0.3  # (n, 1, frames)
            for row, (clip, _, _) in enumerate(fold):
                scores[row, :, : total - own_frames[clip]] -= 3.0  # start padding: less weight there
            weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
            runs.write_attention(
                folder, [clip for clip, _, _ in fold], weights / weights.sum(axis=-1, keepdims=True)
            )
        runs.finish_fold(
            folder, [c for c, _, _ in fold], [actor] * len(fold), labels, probabilities, {"test_actor": actor}
        )


def folder_size(folder: Path) -> dict:
    files = [path for path in folder.rglob("*") if path.is_file()]
    disk = subprocess.run(
        ["du", "-sk", str(folder)], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    return {"files": len(files), "bytes": sum(path.stat().st_size for path in files), "du_kib": int(disk)}


def load_seconds(page: Path, fragment: str) -> dict:
    """One fresh headless Chromium: seconds from navigation start to the first drawn page of clips."""
    from selenium import webdriver
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(argument)
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        start = time.perf_counter()
        driver.get(page.as_uri() + fragment)
        WebDriverWait(driver, 60).until(
            lambda d: (
                d.execute_script("return document.body && document.body.dataset.rendered")
                == (fragment or "#")
            )
        )
        wall = time.perf_counter() - start
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return document.body.dataset.images") == (fragment or "#")
        )
        ready = driver.execute_script("return cremadReport.readyAt") / 1000
        images = driver.execute_script("return cremadReport.imagesAt") / 1000
        loaded = (
            driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000
        )
        cards = driver.execute_script("return document.querySelectorAll('#clips article.clip').length")
    finally:
        driver.quit()
    return {
        "ready_s": ready,
        "images_s": images,
        "load_event_s": loaded,
        "webdriver_wall_s": wall,
        "cards": cards,
    }


def browser_version() -> str | None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        return None
    return subprocess.run(["chromium", "--version"], capture_output=True, text=True).stdout.strip()


def measure_loads(page: Path, repeats: int) -> dict | str:
    """Per view of VIEWS: median and max of `repeats` loads, each in a fresh browser."""
    if browser_version() is None:
        return "not measured: chromium and chromedriver are not installed"
    summary = {}
    for name, fragment in VIEWS.items():
        loads = [load_seconds(page, fragment) for _ in range(repeats)]
        summary[name] = {
            "median_ready_s": statistics.median(load["ready_s"] for load in loads),
            "max_ready_s": max(load["ready_s"] for load in loads),
            "median_images_s": statistics.median(load["images_s"] for load in loads),
            "max_images_s": max(load["images_s"] for load in loads),
            "median_load_event_s": statistics.median(load["load_event_s"] for load in loads),
            "median_webdriver_wall_s": statistics.median(load["webdriver_wall_s"] for load in loads),
            "cards": loads[0]["cards"],
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir", default=None, help="where the corpus, runs and report go (default: a temporary folder)"
    )
    parser.add_argument("--keep", action="store_true", help="keep --workdir afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="reuse the corpus and runs a --keep left in --workdir"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None, help="JSON file for the numbers")
    args = parser.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench-report-"))
    rng = np.random.default_rng(0)
    try:
        start = time.perf_counter()
        wavs = workdir / "CREMA-D" / "AudioWAV"
        if args.reuse and (workdir / "runs").is_dir():  # the corpus and runs of an earlier --keep
            names = [path.stem for path in sorted(wavs.glob("*.wav"))]
            clips = [(clip, clip.split("_")[0], EMOTIONS.index(clip.split("_")[2])) for clip in names]
        else:
            clips = write_clips(workdir / "CREMA-D")
            own = {
                clip: n_frames(soundfile.info(wavs / f"{clip}.wav").frames, FeatureConfig())
                for clip, _, _ in clips
            }
            write_votes(workdir / "meta", clips, rng)
            for model_id in PAPER_MODEL_IDS:
                write_run(workdir / "runs", model_id, clips, own, rng)
        prepared = time.perf_counter() - start
        start = time.perf_counter()
        page = build_report(
            workdir / "runs", workdir / "report", data=workdir / "CREMA-D", meta=workdir / "meta"
        )
        built = time.perf_counter() - start
        size = folder_size(workdir / "report")
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "cpu": cpu_model(),
            "cpus": len(os.sched_getaffinity(0)),
            "chromium": browser_version(),
            "clips": len(clips),
            "models": len(PAPER_MODEL_IDS),
            "frames": n_frames(PAD_TO),
            "mean_clip_seconds": float(
                np.mean([soundfile.info(wavs / f"{c}.wav").duration for c, _, _ in clips])
            ),
            "prepare_s": prepared,
            "build_s": built,
            "size": size,
            "size_by_part": {part: folder_size(workdir / "report" / part) for part in ("data", "spec")},
            "load": measure_loads(page, args.repeats),
        }
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
