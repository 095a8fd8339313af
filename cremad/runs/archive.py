"""`cremad archive`: copy the small, text part of finished runs into another runs root.

Tables and confusion matrices need only each fold's predictions; the models, scalers and
attention weights are most of a run folder's bytes. An archive keeps, in the same layout:

    run.json  summary.json
    fold-<actor>/  predictions.csv  confusion.csv  config.json  history.csv  history-refit.csv  done.json

so `cremad summarize` and `cremad figures` (all but Fig. 2, which needs the attention weights)
read it like the runs it came from. Folds without done.json are left out, and said so. Every
file is written atomically and done.json last, so a fold cut short is read as unfinished, and
running the command again completes it.

    cremad archive --runs /scratch/runs --corpus emodb --out results
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from cremad import CremadError
from cremad.atomic import atomic_path
from cremad.runs.layout import (
    CONFUSION,
    DONE,
    FOLD_CONFIG,
    HISTORY,
    HISTORY_REFIT,
    PREDICTIONS,
    RUN_JSON,
    SUMMARY_JSON,
    add_selection_arguments,
    fold_dirs,
    selected_runs,
)

log = logging.getLogger(__name__)

RUN_FILES = (RUN_JSON, SUMMARY_JSON)
FOLD_FILES = (PREDICTIONS, CONFUSION, FOLD_CONFIG, HISTORY, HISTORY_REFIT)  # done.json goes last


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)


def archive_run(run_dir: str | Path, target: str | Path) -> tuple[int, list[str]]:
    """Copy one run folder's text files to `target`; returns (folds copied, folds left out)."""
    run_dir, target = Path(run_dir), Path(target)
    if target.resolve() == run_dir.resolve():
        raise CremadError(f"--out: {target} is the run folder itself; give another runs root")
    target.mkdir(parents=True, exist_ok=True)
    copied, unfinished = 0, []
    for actor, folder in fold_dirs(run_dir).items():
        if not (folder / DONE).is_file():
            unfinished.append(actor)
            continue
        if not (folder / PREDICTIONS).is_file():
            raise CremadError(f"{folder / PREDICTIONS}: missing, although done.json marks the fold finished")
        out = target / folder.name
        out.mkdir(exist_ok=True)
        for name in FOLD_FILES:
            if (folder / name).is_file():
                _copy(folder / name, out / name)
        _copy(folder / DONE, out / DONE)
        copied += 1
    for name in RUN_FILES:  # after the folds: a summary never stands beside folds it lacks
        if (run_dir / name).is_file():
            _copy(run_dir / name, target / name)
    return copied, unfinished


def add_arguments(parser) -> None:
    add_selection_arguments(
        parser, runs_help="runs root to copy from, or any folder below it (default: runs)"
    )
    parser.add_argument("--out", required=True, help="runs root to copy into (same layout)")


def run(args) -> int:
    runs = selected_runs(args)
    for key, run_dir in runs.items():
        target = key.path(args.out)
        copied, unfinished = archive_run(run_dir, target)
        note = (
            f"; left out {len(unfinished)} unfinished fold(s): {', '.join(unfinished)}" if unfinished else ""
        )
        log.info("%s -> %s: %d fold(s)%s", run_dir, target, copied, note)
    return 0
