"""Numbers over several runs: mean and sd over seeds, and paired tests between models.

Seeds: every number of a model's summary becomes the mean over its seeds, with the sample
standard deviation (ddof=1) beside it as `<key>_sd` (null with one seed). The confusion matrix is
the sum of the seeds' matrices, row-normalized; a fold's accuracy and UA are the mean over the
seeds that finished that fold.

Tests (beyond the paper, which calls model 2 "significantly better" without one), for each pair
of models, two-sided and unadjusted for the several pairs:

- Wilcoxon signed-rank on per-fold UA, over the folds both models finished. With several seeds
  a fold's UA is first averaged over the model's seeds, so each held-out actor is one paired
  observation whatever the number of seeds (seeds are repeated measurements of a fold, not new
  speakers).
- Exact McNemar (binomial test on the discordant clips) on pooled predictions matched by clip
  id. With several seeds a clip's prediction is the model's vote over its seeds (the label most
  seeds predicted; a tie goes to the tied label with the highest mean probability), so each clip
  still counts once. With one seed it is that seed's prediction.

A combined result (a seed ensemble or a fusion, `cremad.metrics.combined_results`) has one
prediction per clip, and is tested only against the results it names in `tested_against`.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import numpy as np
from scipy.stats import binomtest, wilcoxon

from cremad.config import EMOTIONS
from cremad.runs import Predictions

AGGREGATED = ("wa", "ua", "macro_f1", "fold_accuracy_mean", "fold_accuracy_std")


def row_percent(counts: np.ndarray) -> list[list[float] | None]:
    """Rows of a confusion matrix (rows = true) as % of the row; None for an absent class."""
    return [
        [round(100.0 * float(value) / row.sum(), 4) for value in row] if row.sum() else None for row in counts
    ]


def mean_sd(values) -> tuple[float | None, float | None]:
    """(mean, sample sd) of the values that are not None; sd is None below two values."""
    values = [float(value) for value in values if value is not None]
    if not values:
        return None, None
    return round(float(np.mean(values)), 4), round(float(np.std(values, ddof=1)), 4) if len(
        values
    ) > 1 else None


def aggregate_seeds(summaries: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """One model's summary over its seeds (seed -> `cremad.metrics.compute_summary`)."""
    seeds = sorted(summaries)
    items = [summaries[seed] for seed in seeds]
    first = items[0]
    counts = np.sum([item["confusion_counts"] for item in items], axis=0)  # (6, 6)
    absent = [emotion for emotion, total in zip(EMOTIONS, counts.sum(axis=1)) if total == 0]
    aggregated = {key: first[key] for key in ("model", "model_id", "experiment", "corpus", "emotions")}
    aggregated.update(
        {
            "seeds": seeds,
            "n_seeds": len(seeds),
            "absent_classes": absent,
            "n_folds": min(item["n_folds"] for item in items),
            "n_expected_folds": max((item["n_expected_folds"] or 0 for item in items), default=0) or None,
            "n_clips": int(counts.sum()),
            "confusion_counts": counts.tolist(),
            "confusion_percent": row_percent(counts),
            "chance_ua": round(100.0 / (len(EMOTIONS) - len(absent)), 4),
        }
    )
    recall = {emotion: mean_sd(item["recall"][emotion] for item in items) for emotion in EMOTIONS}
    aggregated["recall"] = {emotion: recall[emotion][0] for emotion in EMOTIONS}
    aggregated["recall_sd"] = {emotion: recall[emotion][1] for emotion in EMOTIONS}
    for key in AGGREGATED:
        aggregated[key], aggregated[f"{key}_sd"] = mean_sd(item[key] for item in items)
    folds = {}
    for actor in sorted({actor for item in items for actor in item["folds"]}):
        runs_of_fold = [item["folds"][actor] for item in items if actor in item["folds"]]
        folds[actor] = {
            "n_seeds": len(runs_of_fold),
            "accuracy": mean_sd(fold["accuracy"] for fold in runs_of_fold)[0],
            "ua": mean_sd(fold["ua"] for fold in runs_of_fold)[0],
        }
    aggregated["folds"] = folds
    return aggregated


def seed_vote(predictions: dict[int, Predictions]) -> dict[str, tuple[str, str]]:
    """clip id -> (true, predicted) with the prediction voted over seeds (see the module doc)."""
    votes: dict[str, Counter] = {}
    probability_sums: dict[str, np.ndarray] = {}
    true: dict[str, str] = {}
    for run in predictions.values():
        for clip, label, predicted, row in zip(run.clip_ids, run.true, run.predicted, run.probabilities):
            votes.setdefault(clip, Counter())[predicted] += 1
            probability_sums[clip] = probability_sums.get(clip, 0) + row
            true[clip] = label
    voted = {}
    for clip, counter in votes.items():
        top = max(counter.values())
        tied = [label for label, count in counter.items() if count == top]
        best = max(tied, key=lambda label: probability_sums[clip][EMOTIONS.index(label)])
        voted[clip] = (true[clip], best)
    return voted


def comparisons(results: dict) -> list[tuple[str, str]]:
    """The pairs to test: every pair of runs, then each combined result against those it names."""
    plain = [name for name, result in results.items() if not result.tested_against]
    pairs = list(itertools.combinations(plain, 2))
    for name, result in results.items():
        pairs += [(name, other) for other in result.tested_against if other in results]
    return pairs


def significance(results: dict) -> list[dict[str, Any]]:
    """Paired tests for the `comparisons` of `results` (name -> `cremad.metrics.ModelResults`):
    Wilcoxon on per-fold UA (seed-averaged), exact McNemar on (seed-voted) clip predictions."""
    rows = []
    for a, b in comparisons(results):
        folds_a, folds_b = results[a].summary["folds"], results[b].summary["folds"]
        actors = [
            actor
            for actor in folds_a
            if folds_a[actor]["ua"] is not None and folds_b.get(actor, {}).get("ua") is not None
        ]
        difference = np.array(
            [folds_a[actor]["ua"] - folds_b[actor]["ua"] for actor in actors]
        )  # (n_paired,)
        if not actors:
            wilcoxon_p = None
        elif np.allclose(difference, 0.0):
            wilcoxon_p = 1.0  # identical per-fold UA: no evidence of a difference
        else:
            wilcoxon_p = float(wilcoxon(difference).pvalue)

        voted_a, voted_b = seed_vote(results[a].predictions), seed_vote(results[b].predictions)
        clips = [clip for clip in voted_a if clip in voted_b]
        right_a = np.array([voted_a[clip][0] == voted_a[clip][1] for clip in clips], dtype=bool)
        right_b = np.array([voted_b[clip][0] == voted_b[clip][1] for clip in clips], dtype=bool)
        only_a, only_b = int(np.sum(right_a & ~right_b)), int(np.sum(~right_a & right_b))
        mcnemar_p = float(binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
        rows.append(
            {
                "model_a": a,
                "model_b": b,
                "paired_folds": len(actors),
                "ua_difference": round(float(difference.mean()), 2) if actors else None,
                "wilcoxon_p": wilcoxon_p,  # unrounded: 3e-12 must not become 0; tables format it
                "paired_clips": len(clips),
                "only_a_correct": only_a,
                "only_b_correct": only_b,
                "mcnemar_p": mcnemar_p,
            }
        )
    return rows
