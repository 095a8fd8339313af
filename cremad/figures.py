"""`cremad figures`: the paper's Table II, Fig. 2 and Fig. 3 (section III), drawn only from saved
run folders, for one corpus and one experiment at a time.

    cremad figures --runs runs --experiment tuned --data data/CREMA-D [--clip 1015_DFA_ANG_XX] [--out figures]

Nothing is retrained: tables and confusion matrices come from `fold-*/predictions.csv` (read by
`cremad.runs`, summarized by `cremad.metrics`, over seeds by `cremad.stats`), Fig. 2's attention
curves from the `attention.npz` of the fold that held the clip's actor out. Beyond the paper:
the per-fold accuracy of each model, paired tests between models, and each model's seed
ensemble and its fusion with each SVM baseline (`cremad.ensembles`): rows of the full table and
the tests, drawn together in fig3_confusion_combined, their predictions written under
combined/. Missing models or folds are
named in log lines and left out; what exists is drawn. The tables are `cremad.result_tables`,
the drawings `cremad.plots`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib
import numpy as np

from cremad import CremadError, ensembles, runs
from cremad.metrics import combined_results, load_results
from cremad.model_names import ENSEMBLE_SUFFIX, FIG2_MODEL_IDS, model_name
from cremad.plots import STYLE, attention_figure, confusion_figures, fold_accuracy_figure, run_setting, save
from cremad.result_tables import write_tables

log = logging.getLogger(__name__)

PAPER_CLIP = "1015_DFA_ANG_XX"  # the clip of the paper's Fig. 2
ATTENTION_MODELS = tuple(model_name(model_id) for model_id in FIG2_MODEL_IDS)


def find_clip(results: dict, clip_id: str) -> str | None:
    """The held-out actor whose fold tested `clip_id` in model 1 or 2, else None."""
    for name in ATTENTION_MODELS:
        for predictions in results[name].predictions.values() if name in results else ():
            hits = np.flatnonzero(predictions.clip_ids == clip_id)
            if hits.size:
                return str(predictions.actors[hits[0]])
    return None


def locate_audio(results: dict, clip_id: str, data: str | None, corpus: str) -> Path:
    """The WAV of `clip_id` in the corpus at `data` (default: run.json's data_dir)."""
    from cremad.corpus import scan

    data = data or run_setting(results, "data_dir")
    if not data:
        raise CremadError(
            "Fig. 2 needs the audio: pass --data DIR (the corpus folder the runs were trained on)"
        )
    clips, _ = scan(data, corpus)
    match = [clip for clip in clips if clip.clip_id == clip_id]
    if not match:
        raise CremadError(
            f"clip {clip_id} is not in the {corpus} corpus at {data} (pass --data DIR for another copy)"
        )
    return Path(match[0].path)


def choose_clip(
    results: dict, runs_root: str | Path, clip: str | None, corpus: str
) -> tuple[str, str] | None:
    """(clip id, held-out actor) for Fig. 2, or None to skip it. An explicit `clip` that no fold
    of model 1 or 2 tested is an error; the paper's default clip may be absent (a subset, Emo-DB)."""
    clip_id = clip or PAPER_CLIP
    if not any(name in results for name in ATTENTION_MODELS):
        log.warning("Fig. 2 skipped: no results for model 1 or model 2")
        return None
    actor = find_clip(results, clip_id)
    if actor is not None:
        return clip_id, actor
    hint = (
        f"list valid names with `cremad figures --runs {runs_root} --corpus {corpus} --list-clips` "
        "(the clip column of the predictions.csv of model 1 or 2)"
    )
    if clip is not None:
        raise CremadError(f"clip {clip_id} is in no finished fold of model 1 or 2 under {runs_root}; {hint}")
    log.warning(
        "Fig. 2 skipped: the paper's clip %s is not in these runs; pick one with --clip: %s", clip_id, hint
    )
    return None


def make_figures(
    runs_root: str | Path,
    out: str | Path = "figures",
    clip: str | None = None,
    data: str | None = None,
    corpus: str | None = None,
    experiment: str | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
) -> list[Path]:
    """Write every table and figure for the runs of one corpus and experiment under `runs_root`
    (see `cremad.runs.select_runs`) into `out`; return the paths. `clip=None` draws Fig. 2 for
    the paper's clip when the runs hold it, and skips it otherwise."""
    selected = runs.select_runs(runs_root, corpus, experiment, models, seeds)
    corpus, experiment = next(iter(selected)).corpus, next(iter(selected)).experiment
    results = load_results(selected)
    combined = combined_results(results)
    # Fig. 2's clip and audio are checked first, so a mistyped --clip fails before anything is drawn.
    chosen = choose_clip(results, runs_root, clip, corpus)
    audio_path = locate_audio(results, chosen[0], data, corpus) if chosen else None

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = write_tables({**results, **combined}, out, corpus, experiment)
    combined_predictions = [
        predictions for result in combined.values() for predictions in result.predictions.values()
    ]
    written += ensembles.write_combined(out / "combined", combined_predictions)
    with matplotlib.rc_context(STYLE):
        written += confusion_figures(results, out)
        if combined:  # one row per ensemble: the ensemble, then its fusions
            n_ensembles = sum(name.endswith(ENSEMBLE_SUFFIX) for name in combined)
            written += confusion_figures(combined, out, "fig3_confusion_combined", rows=n_ensembles)
        written += fold_accuracy_figure(results, out)
        if chosen:
            clip_id, actor = chosen
            written += save(attention_figure(results, clip_id, audio_path, actor), out, f"fig2_{clip_id}")
    log.info("%s/%s: %d files in %s", corpus, experiment, len(written), out)
    return written


def list_clips(selected: dict) -> list[str]:
    """Clip ids Fig. 2 can draw: the test clips of model 1's or model 2's finished folds."""
    results = load_results(selected)
    return sorted(
        {
            str(clip)
            for name in ATTENTION_MODELS
            if name in results
            for predictions in results[name].predictions.values()
            for clip in predictions.clip_ids
        }
    )


def add_arguments(parser) -> None:
    runs.add_selection_arguments(parser)
    parser.add_argument("--out", default="figures", help="output folder (default: figures)")
    parser.add_argument(
        "--clip", default=None, help=f"clip for Fig. 2 (default: the paper's {PAPER_CLIP}, if present)"
    )
    parser.add_argument(
        "--data", default=None, help="corpus folder for Fig. 2's audio (default: run.json's data_dir)"
    )
    parser.add_argument(
        "--list-clips", action="store_true", help="print the clip names Fig. 2 can draw, then exit"
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    selected = runs.selected_runs(args)
    if args.list_clips:
        print("\n".join(list_clips(selected)))
        return 0
    make_figures(args.runs, args.out, clip=args.clip, data=args.data, **runs.selection_of(selected))
    return 0
