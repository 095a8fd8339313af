"""Where runs live: the folder layout, finding and selecting run folders, and run.json.

See `cremad.runs` for the layout; this module names every file in it."""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cremad import CremadError
from cremad.arguments import comma_list, nonnegative_int
from cremad.atomic import write_json
from cremad.config import EMOTIONS, from_dict
from cremad.corpus import CORPORA
from cremad.model_names import model_name
from cremad.splits import loso_actors

log = logging.getLogger(__name__)

RUN_JSON = "run.json"
SUMMARY_JSON = "summary.json"
FOLD_PREFIX = "fold-"
SEED_PREFIX = "seed"
PREDICTIONS = "predictions.csv"
CONFUSION = "confusion.csv"
FOLD_CONFIG = "config.json"
DONE = "done.json"
HISTORY = "history.csv"
HISTORY_REFIT = "history-refit.csv"
SCALER = "scaler.npz"
ATTENTION = "attention.npz"
MODEL_FILE = "model.keras"
PREDICTION_COLUMNS = ("clip", "actor", "true", "predicted", *(f"p_{emotion}" for emotion in EMOTIONS))
# run.json fields that must match for new folds to join an existing run folder.
RUN_IDENTITY = ("experiment", "model_id", "corpus", "config", "n_frames", "n_clips", "actors")
# run.json keys that may list the folds a run was asked for (the first one present wins).
EXPECTED_FOLD_KEYS = ("folds", "test_actors", "actors")
_SEED_DIR = re.compile(rf"^{SEED_PREFIX}(?P<seed>\d+)$")


# --- layout -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, order=True)
class RunKey:
    """Which run a folder holds: corpus, experiment, model name and seed."""

    corpus: str
    experiment: str
    model: str
    seed: int

    def path(self, root: str | Path) -> Path:
        return Path(root) / self.corpus / self.experiment / self.model / f"{SEED_PREFIX}{self.seed}"

    @classmethod
    def of(cls, run_dir: str | Path) -> RunKey:
        """The key a run folder's place in the layout spells."""
        parts = Path(run_dir).resolve().parts
        match = _SEED_DIR.match(parts[-1])
        if not match or len(parts) < 5:
            raise CremadError(f"{run_dir}: not a run folder <corpus>/<experiment>/<model>/seed<s>")
        return cls(parts[-4], parts[-3], parts[-2], int(match["seed"]))

    def __str__(self) -> str:
        return f"{self.corpus}/{self.experiment}/{self.model}/{SEED_PREFIX}{self.seed}"


def run_dir(root: str | Path, corpus: str, experiment: str, model: str, seed: int) -> Path:
    """The folder of one run: <root>/<corpus>/<experiment>/<model>/seed<seed>."""
    return RunKey(corpus, experiment, model, seed).path(root)


def fold_dir(run_dir: str | Path, actor: str) -> Path:
    return Path(run_dir) / f"{FOLD_PREFIX}{actor}"


def fold_dirs(run_dir: str | Path) -> dict[str, Path]:
    """actor -> fold folder, for every fold-<actor> folder of a run (finished or not)."""
    return {
        path.name[len(FOLD_PREFIX) :]: path
        for path in sorted(Path(run_dir).glob(f"{FOLD_PREFIX}*"))
        if path.is_dir()
    }


def is_run_dir(path: Path) -> bool:
    """A run folder holds run.json or fold-<actor> folders."""
    return path.is_dir() and ((path / RUN_JSON).is_file() or bool(fold_dirs(path)))


def old_layout_move(folder: Path) -> str:
    """One line: a folder in the layout before seeds, and the shell command that moves it."""
    run = read_run(folder)
    seed = run.get("config", {}).get("train", {}).get("seed", 0)
    experiment = run.get("experiment") or ("paper" if folder.parent.name in CORPORA else folder.parent.name)
    seed_dir = f"{SEED_PREFIX}{seed}"
    if folder.parent.name == experiment:  # <corpus>/<experiment>/model<k>: the seed level goes inside
        parked = folder.with_name(f"{folder.name}.{seed_dir}")
        command = (
            f"mv {shlex.quote(str(folder))} {shlex.quote(str(parked))} && mkdir {shlex.quote(str(folder))} "
            f"&& mv {shlex.quote(str(parked))} {shlex.quote(str(folder / seed_dir))}"
        )
    else:  # <corpus>/model<k>, the paper's old place
        target = folder.parent / experiment / folder.name
        move = f"mv {shlex.quote(str(folder))} {shlex.quote(str(target / seed_dir))}"
        command = f"mkdir -p {shlex.quote(str(target))} && {move}"
    return f"{folder} is in the old run-folder layout (no seed level); move it: {command}"


def refuse_old_layout(root: str | Path, corpus: str, experiment: str, model: str) -> None:
    """Raise, with the command that moves it, when this run's old-layout folder exists (a new
    run beside it would start from scratch instead of resuming it)."""
    places = [Path(root) / corpus / experiment / model]
    if experiment == "paper":
        places.append(Path(root) / corpus / model)
    for folder in places:
        if is_run_dir(folder):
            raise CremadError(old_layout_move(folder))


def find_runs(root: str | Path, max_depth: int = 6) -> dict[RunKey, Path]:
    """Every run folder at or below `root` (which may be any level of the layout), by key.
    A folder in the old layout is an error whose message says how to move it."""
    root = Path(root)
    if not root.is_dir():
        raise CremadError(f"--runs {root}: no such folder")
    found, old, frontier = {}, [], [root]
    for _ in range(max_depth):
        below = []
        for folder in frontier:
            if is_run_dir(folder):
                if _SEED_DIR.match(folder.resolve().name):
                    found[RunKey.of(folder)] = folder
                else:
                    old.append(folder)
                continue
            below += [
                child
                for child in sorted(folder.iterdir())
                if child.is_dir() and not child.name.startswith((".", FOLD_PREFIX))
            ]
        frontier = below
    if old:
        raise CremadError("\n".join(old_layout_move(folder) for folder in old))
    return dict(sorted(found.items()))


def _choose(kind: str, wanted: str | None, present: set[str], default: str | None, root: Path) -> str:
    if wanted is not None:
        if wanted not in present:
            raise CremadError(
                f"--{kind} {wanted}: no runs of it under {root} (there are: {', '.join(sorted(present))})"
            )
        return wanted
    if len(present) == 1:
        return next(iter(present))
    if default in present:
        log.info(
            "%s: using %s %s; also there: %s (pick with --%s)",
            root,
            kind,
            default,
            ", ".join(sorted(present - {default})),
            kind,
        )
        return default
    plural = "corpora" if kind == "corpus" else f"{kind}s"
    raise CremadError(
        f"--runs {root} holds several {plural} ({', '.join(sorted(present))}); pick one with --{kind}"
    )


def select_runs(
    root: str | Path,
    corpus: str | None = None,
    experiment: str | None = None,
    models: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict[RunKey, Path]:
    """The run folders under `root` of one corpus and one experiment, for `models` and `seeds`
    (default: all present). Without `corpus` / `experiment`: the only one present, else the
    experiment "paper"; several corpora need --corpus."""
    root = Path(root)
    runs = find_runs(root)
    if not runs:
        raise CremadError(
            f"--runs {root}: no run folders in it "
            "(expected <corpus>/<experiment>/<model>/seed<s>/ folders written by `cremad loso`)"
        )
    corpus = _choose("corpus", corpus, {key.corpus for key in runs}, None, root)
    runs = {key: path for key, path in runs.items() if key.corpus == corpus}
    experiment = _choose("experiment", experiment, {key.experiment for key in runs}, "paper", root)
    runs = {key: path for key, path in runs.items() if key.experiment == experiment}
    for kind, wanted in (("model", models), ("seed", seeds)):
        if wanted:
            present = {getattr(key, kind) for key in runs}
            absent = [str(value) for value in wanted if value not in present]
            if absent:
                raise CremadError(
                    f"--{kind}s: no {corpus}/{experiment} runs of {', '.join(absent)} under {root} "
                    f"(there are: {', '.join(map(str, sorted(present)))})"
                )
            runs = {key: path for key, path in runs.items() if getattr(key, kind) in wanted}
    return runs


def add_selection_arguments(
    parser, runs_help: str = "runs root or any folder below it (default: runs)"
) -> None:
    """--runs, --corpus, --experiment, --models and --seeds, for commands that read runs."""
    parser.add_argument("--runs", default="runs", help=runs_help)
    parser.add_argument(
        "--corpus", choices=CORPORA, default=None, help="corpus (default: the only one there)"
    )
    parser.add_argument(
        "--experiment", default=None, help="experiment (default: the only one there, else paper)"
    )
    parser.add_argument(
        "--models", help="comma-separated models, e.g. 1,2 or model2,svm (default: all there)"
    )
    parser.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1 (default: all there)")


def parse_selection(models: str | None, seeds: str | None) -> tuple[list[str] | None, list[int] | None]:
    """--models "1,svm" -> ["model1", "svm"] and --seeds "0,2" -> [0, 2]; None when not given."""

    def as_name(item: str) -> str:  # "2" -> "model2"; "svm" stays
        return model_name(int(item)) if item.isdigit() else item

    model_names = comma_list(models, "--models", as_name)
    seed_list = comma_list(seeds, "--seeds", nonnegative_int, example="0,1,2")
    return model_names or None, seed_list or None


def selected_runs(args) -> dict[RunKey, Path]:
    """`select_runs` for the arguments `add_selection_arguments` added."""
    return select_runs(args.runs, args.corpus, args.experiment, *parse_selection(args.models, args.seeds))


def selection_of(selected: dict[RunKey, Path]) -> dict[str, Any]:
    """The corpus, experiment, models and seeds of selected runs, as the readers of a selection
    (`cremad figures`, `cremad report`) take them."""
    key = next(iter(selected))
    return {
        "corpus": key.corpus,
        "experiment": key.experiment,
        "models": sorted({key.model for key in selected}),
        "seeds": sorted({key.seed for key in selected}),
    }


# --- run.json ---------------------------------------------------------------------------------


def read_json(path: str | Path) -> dict[str, Any]:
    try:
        with open(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise CremadError(f"{path}: not valid JSON ({error})") from error


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """A run folder's run.json, {} when it has none."""
    path = Path(run_dir) / RUN_JSON
    return read_json(path) if path.is_file() else {}


def library_versions() -> dict[str, str]:
    """Versions of Python, NumPy, scikit-learn, cremad and, when imported, Keras, its backend and
    which kernel runs the LSTMs (`cremad.lstm.kernel_in_use`)."""
    import sklearn

    import cremad

    versions = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scikit-learn": sklearn.__version__,
        "cremad": cremad.__version__,
    }
    keras = sys.modules.get("keras")
    if keras is not None:
        backend = keras.config.backend()
        versions.update({"keras": keras.__version__, "keras_backend": backend})
        if backend in sys.modules:
            versions[backend] = getattr(sys.modules[backend], "__version__", "?")
        from cremad.lstm import kernel_in_use

        versions["lstm_kernel"] = kernel_in_use()
    return versions


def run_record(config, model: str, corpus: str, data_dir: str | Path, features, **extra) -> dict[str, Any]:
    """run.json for a run of `model` on `features` (a FeatureSet) with `config`; `extra` adds
    fields (e.g. the paper model's id, the Keras backend)."""
    return {
        "experiment": config.name,
        "model": model,
        "corpus": corpus,
        "seed": config.train.seed,
        "data_dir": str(Path(data_dir).resolve()),
        "config": config.to_dict(),
        "feature_cache_key": getattr(features, "cache_key", None),
        "n_frames": int(features.features.shape[1]),
        "n_clips": int(features.features.shape[0]),
        "pad_to": getattr(features, "pad_to", None),
        "drop_conflicting": getattr(features, "drop_conflicting", False),
        "actors": loso_actors(features.actors),
        **extra,
        "versions": library_versions(),
        "command": shlex.join(
            ["cremad" if sys.argv[0].endswith("__main__.py") else Path(sys.argv[0]).name, *sys.argv[1:]]
        ),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        flat.update(
            _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
        )
    return flat


def config_changes(old: dict | None, new: dict | None) -> list[str]:
    """'key old -> new' for every setting that differs. Both sides are completed with today's
    defaults first, so a field added to the config later does not orphan older run folders."""
    if old == new:
        return []
    try:
        old, new = from_dict(old or {}).to_dict(), from_dict(new or {}).to_dict()
    except ValueError as error:  # a setting this version no longer knows
        return [f"config ({error})"]
    old, new = _flatten(old), _flatten(new)
    return [
        f"{key} {old.get(key)!r} -> {new.get(key)!r}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def prepare_run(run_dir: str | Path, record: dict[str, Any], force: bool) -> None:
    """Write run.json, or check that the existing one describes the same run. A different one
    is refused unless `force`, which replaces it and unmarks the old run's finished folds."""
    run_dir = Path(run_dir)
    path = run_dir / RUN_JSON
    if path.is_file():
        old = read_json(path)
        changed = [
            f"{key} {old.get(key)!r} -> {record.get(key)!r}"
            for key in RUN_IDENTITY
            if key != "config" and old.get(key) != record.get(key)
        ]
        changed += config_changes(old.get("config"), record.get("config"))
        if not changed:
            return
        if not force:
            raise CremadError(
                f"{path} was made by a different run ({'; '.join(changed)}); its folds would mix with "
                f"this one. Use --force to retrain from scratch there, or another --runs"
            )
        stale = [folder / DONE for folder in fold_dirs(run_dir).values() if (folder / DONE).is_file()]
        for done in stale:
            done.unlink()
        log.warning(
            "%s: configuration changed (%s); %d finished fold(s) of the old run unmarked",
            run_dir,
            "; ".join(changed),
            len(stale),
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
