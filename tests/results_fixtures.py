"""Hand-made run folders written through `cremad.runs`, as `cremad loso` leaves them, for the
metrics and figures tests: no model is trained.

`HAND_CORRECT` fixes how many of the 4 test clips per emotion each model gets right (2 actors x 2
sentences x 6 emotions = 24 clips per model), so every recall is a multiple of 25 % and Table II
can be written down by hand (see `HAND_TABLE_II`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile

from cremad import runs
from cremad.config import EMOTIONS
from cremad.model_names import ATTENTION_MODEL_IDS, PAPER_MODEL_IDS, model_name

ACTORS = ("1001", "1002")
SENTENCES = ("DFA", "IEO")
SAMPLE_RATE = 16_000
HOP_LENGTH = 160
PAD_TO = 16_000  # every clip padded to 1 s
N_FRAMES = 1 + PAD_TO // HOP_LENGTH  # 101 centred frames
CLIP_SECONDS = 0.5  # the WAV written for Fig. 2

# model -> correct clips out of 4, per emotion in EMOTIONS order (ANG DIS FEA HAP NEU SAD).
HAND_CORRECT = {
    1: (2, 3, 1, 4, 4, 3),
    2: (4, 4, 3, 2, 3, 4),
    3: (3, 1, 0, 1, 2, 4),
    4: (3, 2, 2, 3, 3, 1),
}
# Worked out by hand from HAND_CORRECT: (best model, %), (worst model, %). Sad ties models 2 and 3
# at 100 %; the lower number wins.
HAND_TABLE_II = {
    "Anger": ((2, 100.0), (1, 50.0)),
    "Disgust": ((2, 100.0), (3, 25.0)),
    "Fear": ((2, 75.0), (3, 0.0)),
    "Happy": ((1, 100.0), (3, 25.0)),
    "Neutral": ((1, 100.0), (3, 50.0)),
    "Sad": ((2, 100.0), (4, 25.0)),
}


def clip_rows(model_id: int, correct=None) -> dict[str, list[tuple[str, str, str]]]:
    """actor -> [(clip, true, predicted)]: of an emotion's 4 clips (1001 DFA, 1001 IEO, 1002 DFA,
    1002 IEO) the first k are right (k from `correct`, default HAND_CORRECT[model_id]); a wrong
    one is predicted as the next emotion."""
    correct = correct or HAND_CORRECT[model_id]
    rows = {actor: [] for actor in ACTORS}
    for index, emotion in enumerate(EMOTIONS):
        k = correct[index]
        clips = [(actor, sentence) for actor in ACTORS for sentence in SENTENCES]
        for position, (actor, sentence) in enumerate(clips):
            predicted = emotion if position < k else EMOTIONS[(index + 1) % len(EMOTIONS)]
            rows[actor].append((f"{actor}_{sentence}_{emotion}_XX", emotion, predicted))
    return rows


def write_fold(
    run_dir: Path, actor: str, rows: list[tuple[str, str, str]], model_id: int, done: bool = True
) -> None:
    """fold-<actor>/ of `run_dir` with predictions (0.9 on the predicted emotion), attention for
    models 1 and 2, and, when `done`, confusion.csv, config.json and done.json."""
    folder = runs.start_fold(runs.fold_dir(run_dir, actor))
    clips = [row[0] for row in rows]
    labels = [EMOTIONS.index(true) for _, true, _ in rows]
    probabilities = np.array(
        [[0.9 if emotion == predicted else 0.02 for emotion in EMOTIONS] for _, _, predicted in rows]
    )
    if model_id in ATTENTION_MODEL_IDS:
        # A bump of attention over frames 10-30 (0.1-0.3 s), the rest near zero, summing to 1.
        frames = np.arange(N_FRAMES)
        centre = 20 if model_id == 1 else 25
        curve = np.exp(-0.5 * ((frames - centre) / 4.0) ** 2) + 1e-4
        runs.write_attention(
            folder, clips, np.tile(curve / curve.sum(), (len(rows), 1, 1))
        )  # (n_clips, 1, n_frames)
    if done:
        runs.finish_fold(
            folder,
            clips,
            [actor] * len(rows),
            labels,
            probabilities,
            {"test_actor": actor},
            epochs=2,
            seconds=1.0,
        )
    else:
        runs.write_predictions(folder, clips, [actor] * len(rows), labels, probabilities)


def write_model(
    root: Path,
    model_id: int,
    actors=ACTORS,
    listed=None,
    data_dir: Path | None = None,
    run_json: bool = True,
    seed: int = 0,
    correct=None,
    corpus: str = "cremad",
    experiment: str = "paper",
) -> Path:
    """The run folder <root>/<corpus>/<experiment>/model<k>/seed<seed>/ with run.json (listing
    `listed` actors, default `actors`) and one finished fold per actor in `actors`; returns it."""
    run_dir = runs.run_dir(root, corpus, experiment, model_name(model_id), seed)
    run_dir.mkdir(parents=True)
    if run_json:
        runs.prepare_run(
            run_dir,
            {
                "experiment": experiment,
                "model": model_name(model_id),
                "model_id": model_id,
                "corpus": corpus,
                "seed": seed,
                "data_dir": str(data_dir) if data_dir else None,
                "config": {
                    "features": {"sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH},
                    "train": {"seed": seed},
                },
                "n_frames": N_FRAMES,
                "pad_to": PAD_TO,
                "actors": list(listed or actors),
            },
            force=False,
        )
    rows = clip_rows(model_id, correct)
    for actor in actors:
        write_fold(run_dir, actor, rows[actor], model_id)
    return run_dir


def write_corpus(root: Path, clip_ids=("1001_DFA_ANG_XX",)) -> Path:
    """A CREMA-D-shaped folder with a 0.5 s voiced-then-silent WAV per clip id."""
    audio = root / "AudioWAV"
    audio.mkdir(parents=True)
    time = np.arange(int(CLIP_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    signal = 0.5 * np.sin(2 * np.pi * 220 * time) * (time < 0.3)
    for clip_id in clip_ids:
        soundfile.write(audio / f"{clip_id}.wav", signal.astype(np.float32), SAMPLE_RATE)
    return root


def write_runs(
    root: Path, models=PAPER_MODEL_IDS, data_dir: Path | None = None, experiment: str = "paper"
) -> Path:
    """A seed-0 run of each model, as `cremad loso --runs root` would leave them; returns
    root/cremad (a folder `--runs` takes)."""
    for model_id in models:
        write_model(root, model_id, data_dir=data_dir, experiment=experiment)
    return root / "cremad"


def write_probabilities(
    root: Path, model: str, probabilities: np.ndarray, seed: int = 0, experiment: str = "paper"
) -> Path:
    """The run folder <root>/cremad/<experiment>/<model>/seed<seed>/ whose 24 test clips (those of
    `clip_rows`, actor 1001's first) get the given class probabilities (24, 6); returns it."""
    run_dir = runs.run_dir(root, "cremad", experiment, model, seed)
    runs.prepare_run(
        run_dir,
        {"experiment": experiment, "model": model, "corpus": "cremad", "seed": seed, "actors": list(ACTORS)},
        force=False,
    )
    start = 0
    for actor, rows in clip_rows(1).items():
        folder = runs.start_fold(runs.fold_dir(run_dir, actor))
        labels = [EMOTIONS.index(true) for _, true, _ in rows]
        fold_probabilities = probabilities[start : start + len(rows)]
        runs.finish_fold(
            folder,
            [row[0] for row in rows],
            [actor] * len(rows),
            labels,
            fold_probabilities,
            {"test_actor": actor},
        )
        start += len(rows)
    return run_dir
