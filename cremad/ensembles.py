"""Beyond the paper: results made by averaging the class probabilities of saved predictions.

- A *seed ensemble* ("model2-ensemble") averages a model's runs over its seeds, clip by clip.
- A *fusion* ("model2-ensemble+svm-rich") averages a seed ensemble with an SVM baseline run of
  the same folds, at the fixed weight `FUSION_WEIGHT`.

The prediction is the argmax of the averaged probabilities. Only clips present in every input
are combined; a clip left out is logged with the run that lacks it, and a clip whose true emotion
or held-out actor differs between inputs is an error (they were not the same folds). Nothing is
retrained: everything comes from the inputs' predictions.csv, and `write_combined` writes each
combination's own predictions.csv beside the figures so it can be checked by hand.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from cremad import CremadError, runs
from cremad.atomic import write_json
from cremad.config import EMOTIONS
from cremad.runs import Predictions
from cremad.runs.layout import EXPECTED_FOLD_KEYS

log = logging.getLogger(__name__)

# Equal weight: fixed before any test fold was read, as there is no held-out data left to tune it on.
FUSION_WEIGHT = 0.5  # the recurrent ensemble's share; the SVM gets 1 - FUSION_WEIGHT
SOURCES_JSON = "sources.json"


def _index(name: str, label: str, predictions: Predictions) -> dict[str, int]:
    """clip id -> row of `predictions`; a clip twice in one run is an error."""
    index = {str(clip): row for row, clip in enumerate(predictions.clip_ids)}
    if len(index) != len(predictions.clip_ids):
        raise CremadError(f"{name}: {label} ({predictions.run_dir}) holds a clip more than once")
    return index


def combine(name: str, inputs: dict[str, Predictions], weights: dict[str, float]) -> Predictions:
    """The weighted average of `inputs`' class probabilities (label -> predictions, label ->
    weight, weights summing to 1) over the clips every input holds, as the predictions of a
    result called `name`."""
    if not inputs or set(weights) != set(inputs) or not np.isclose(sum(weights.values()), 1.0):
        raise ValueError(f"{name}: weights {weights} must name each input once and sum to 1")
    indices = {label: _index(name, label, predictions) for label, predictions in inputs.items()}
    first = next(iter(inputs.values()))
    clips = [str(clip) for clip in first.clip_ids if all(str(clip) in index for index in indices.values())]
    for label, predictions in inputs.items():
        left_out = len(predictions.clip_ids) - len(clips)
        if left_out:
            log.warning(
                "%s: %d clip(s) of %s (%s) are missing from another input, left out; %d combined",
                name,
                left_out,
                label,
                predictions.run_dir,
                len(clips),
            )
    rows = {label: [indices[label][clip] for clip in clips] for label in inputs}  # label -> (n,)
    reference = next(iter(inputs))
    for label, predictions in inputs.items():
        for field in ("actors", "true"):
            values = getattr(predictions, field)[rows[label]]
            expected = getattr(first, field)[rows[reference]]
            differs = np.flatnonzero(values != expected)
            if differs.size:
                row = differs[0]
                raise CremadError(
                    f"{name}: clip {clips[row]} has {field} {values[row]} in {label} ({predictions.run_dir}) "
                    f"but {expected[row]} in {reference}; only runs of the same clips and folds combine"
                )
    actors, true = first.actors[rows[reference]], first.true[rows[reference]]
    probabilities = np.zeros((len(clips), len(EMOTIONS)))
    for label, predictions in inputs.items():
        probabilities += weights[label] * predictions.probabilities[rows[label]]  # (n, 6)
    folds = sorted(set(actors.tolist()))
    known = {actor for p in inputs.values() for actor in (*p.folds, *p.missing, *p.unfinished)}
    # The folds the inputs were asked for, so a fold missing from one input shows as a partial run.
    listed = next(
        (
            p.run[key]
            for p in inputs.values()
            for key in EXPECTED_FOLD_KEYS
            if isinstance(p.run.get(key), list)
        ),
        None,
    )
    run = {
        "model": name,
        "experiment": first.run.get("experiment"),
        "corpus": first.run.get("corpus"),
        "inputs": {label: str(predictions.run_dir) for label, predictions in inputs.items()},
        "weights": weights,
        **({"folds": listed} if listed else {}),
    }
    return Predictions(
        run_dir=Path(os.path.commonpath([str(p.run_dir) for p in inputs.values()])),  # their common folder
        run=run,
        clip_ids=np.array(clips, dtype=str),
        actors=actors,
        true=true,
        predicted=np.array([EMOTIONS[int(k)] for k in probabilities.argmax(axis=1)], dtype=str),
        probabilities=probabilities,
        folds=folds,
        missing=sorted(known - set(folds)),
        unfinished=[],
        done={actor: {"actor": actor} for actor in folds},
    )


def seed_ensemble(name: str, by_seed: dict[int, Predictions]) -> Predictions:
    """A model's runs (seed -> predictions) as one result: probabilities averaged, equal weights."""
    inputs = {f"seed {seed}": predictions for seed, predictions in sorted(by_seed.items())}
    return combine(name, inputs, {label: 1.0 / len(inputs) for label in inputs})


def fuse(
    name: str, ensemble: Predictions, baseline: Predictions, weight: float = FUSION_WEIGHT
) -> Predictions:
    """`weight` x the ensemble's probabilities + (1 - `weight`) x the baseline's, clip by clip."""
    first, second = ensemble.model, baseline.model
    return combine(name, {first: ensemble, second: baseline}, {first: weight, second: 1.0 - weight})


def write_combined(out: str | Path, combined: list[Predictions]) -> list[Path]:
    """<out>/<name>/predictions.csv (the run folders' format) and sources.json (the input run
    folders and their weights) for each combined result; returns the paths."""
    written = []
    for predictions in combined:
        folder = Path(out) / predictions.model
        folder.mkdir(parents=True, exist_ok=True)
        labels = [EMOTIONS.index(emotion) for emotion in predictions.true]
        runs.write_predictions(
            folder, predictions.clip_ids, predictions.actors, labels, predictions.probabilities
        )
        write_json(folder / SOURCES_JSON, predictions.run)
        written += [folder / runs.PREDICTIONS, folder / SOURCES_JSON]
    return written
