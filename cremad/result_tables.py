"""The result tables of `cremad figures`: the paper's Table II, every model's numbers, and the
model-vs-model tests, each as Markdown (printed too) and CSV.

With several seeds every number is the mean over seeds with "± sd" beside it in Markdown and a
`<key>_sd` column in the CSV; with one seed the plain value. A class with no clip in the runs is
"absent" (Table II, the per-class columns), never 0 %. Seed ensembles and fusions
(`cremad.metrics.combined_results`) are rows of the full table and the tests, never of Table II.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cremad.config import EMOTION_NAMES, EMOTIONS
from cremad.ensembles import FUSION_WEIGHT
from cremad.model_names import model_label, paper_model_id
from cremad.stats import significance
from cremad.tables import markdown, write_table

# Table II as published: emotion -> ((best model, %), (worst model, %)), digits as printed.
PAPER_TABLE_II = {
    "ANG": ((2, "75.6"), (1, "63.25")),
    "DIS": ((2, "48.46"), (3, "36.18")),
    "FEA": ((2, "48.62"), (3, "6.89")),
    "HAP": ((1, "62.7"), (3, "43.71")),
    "NEU": ((1, "63.10"), (3, "52.48")),
    "SAD": ((2, "70.57"), (4, "63.25")),
}
ABSENT = "absent"


def with_sd(value: float | None, sd: float | None) -> str:
    """ "45.20 ± 1.30" over several seeds, "45.20" for one, "n/a" without a value."""
    if value is None:
        return "n/a"
    return f"{value:.2f}" if sd is None else f"{value:.2f} ± {sd:.2f}"


def table_ii(summaries: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Table II: per emotion, the best and worst paper model by true-positive % (mean over seeds)
    among the models given, beside the paper's values; differences are ours minus the paper's,
    in points. Ties go to the lower model number. Models other than the paper's are left out; an
    emotion no model has a clip of is marked absent."""
    paper = {
        paper_model_id(name): summary
        for name, summary in summaries.items()
        if paper_model_id(name) is not None
    }
    rows = []
    for emotion in EMOTIONS:
        (paper_best_model, paper_best), (paper_worst_model, paper_worst) = PAPER_TABLE_II[emotion]
        row = {
            "emotion": EMOTION_NAMES[emotion],
            "paper_best_model": paper_best_model,
            "paper_best_percent": paper_best,
            "paper_worst_model": paper_worst_model,
            "paper_worst_percent": paper_worst,
        }
        scores = [
            (model_id, summary["recall"][emotion], summary.get("recall_sd", {}).get(emotion))
            for model_id, summary in sorted(paper.items())
            if summary["recall"][emotion] is not None
        ]
        if not scores:
            rows.append(
                {
                    **row,
                    "best_model": None,
                    "best_percent": None,
                    "best_sd": None,
                    "worst_model": None,
                    "worst_percent": None,
                    "worst_sd": None,
                    "best_difference": None,
                    "worst_difference": None,
                }
            )
            continue
        best = max(scores, key=lambda item: (item[1], -item[0]))
        worst = min(scores, key=lambda item: (item[1], item[0]))
        rows.append(
            {
                **row,
                "best_model": best[0],
                "best_percent": round(best[1], 2),
                "best_sd": best[2],
                "worst_model": worst[0],
                "worst_percent": round(worst[1], 2),
                "worst_sd": worst[2],
                "best_difference": round(best[1] - float(paper_best), 2),
                "worst_difference": round(worst[1] - float(paper_worst), 2),
            }
        )
    return rows


def table_ii_markdown(rows: list[dict[str, Any]]) -> str:
    """Table II in the paper's layout ("Model 2 – 75.6"), the paper's columns beside ours."""
    header = [
        "Emotion",
        "Best classified (%)",
        "Worst classified (%)",
        "Paper best (%)",
        "Paper worst (%)",
        "Δ best",
        "Δ worst",
    ]
    lines = []
    for row in rows:
        absent = row["best_model"] is None
        lines.append(
            [
                row["emotion"],
                ABSENT
                if absent
                else f"Model {row['best_model']} – {with_sd(row['best_percent'], row['best_sd'])}",
                ABSENT
                if absent
                else f"Model {row['worst_model']} – {with_sd(row['worst_percent'], row['worst_sd'])}",
                f"Model {row['paper_best_model']} – {row['paper_best_percent']}",
                f"Model {row['paper_worst_model']} – {row['paper_worst_percent']}",
                "" if absent else f"{row['best_difference']:+.2f}",
                "" if absent else f"{row['worst_difference']:+.2f}",
            ]
        )
    return markdown(header, lines)


FULL_COLUMNS = {
    "wa": "WA",
    "ua": "UA",
    "macro_f1": "Macro-F1",
    "fold_accuracy_mean": "Fold acc. mean",
    "fold_accuracy_std": "Fold acc. std",
}


def full_table(summaries: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[Any]], str]:
    """Every model's per-class recall, WA, UA (with chance, 1 / classes present), macro-F1 and
    per-fold accuracy (all %). Returns the CSV header, the CSV rows and the Markdown table."""
    header = ["model", "seeds", "folds"]
    header += [key for emotion in EMOTIONS for key in (emotion, f"{emotion}_sd")]
    header += [key for column in FULL_COLUMNS for key in (column, f"{column}_sd")] + ["chance_ua"]
    csv_rows, markdown_rows = [], []
    for name, summary in summaries.items():
        expected = summary["n_expected_folds"]
        folds = f"{summary['n_folds']}/{expected}" if expected else str(summary["n_folds"])
        seeds = ",".join(map(str, summary["seeds"]))
        recall_sd = summary.get("recall_sd", {})
        row = [name, seeds, folds]
        row += [
            value for emotion in EMOTIONS for value in (summary["recall"][emotion], recall_sd.get(emotion))
        ]
        row += [value for column in FULL_COLUMNS for value in (summary[column], summary.get(f"{column}_sd"))]
        csv_rows.append(row + [summary["chance_ua"]])
        cells = [model_label(name), seeds, folds]
        cells += [
            ABSENT
            if emotion in summary["absent_classes"]
            else with_sd(summary["recall"][emotion], recall_sd.get(emotion))
            for emotion in EMOTIONS
        ]
        cells += [with_sd(summary[column], summary.get(f"{column}_sd")) for column in FULL_COLUMNS]
        markdown_rows.append(cells + [with_sd(summary["chance_ua"], None)])
    markdown_header = [
        "Model",
        "Seeds",
        "Folds",
        *(EMOTION_NAMES[emotion] for emotion in EMOTIONS),
        *FULL_COLUMNS.values(),
        "UA chance",
    ]
    return header, csv_rows, markdown(markdown_header, markdown_rows)


SIGNIFICANCE_HEADERS = {
    "model_a": "A",
    "model_b": "B",
    "paired_folds": "Folds",
    "ua_difference": "UA A−B (mean)",
    "wilcoxon_p": "Wilcoxon p",
    "paired_clips": "Clips",
    "only_a_correct": "Only A right",
    "only_b_correct": "Only B right",
    "mcnemar_p": "McNemar p",
}


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if key.endswith("_p"):
        if value < 1e-4:
            return "<1e-4"  # the exact value is in the CSV
        return f"{value:.3g}"  # p-values: significant digits, not two decimals that round to 0.00
    if key in ("model_a", "model_b"):
        return model_label(value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def write_tables(results: dict, out: Path, corpus: str, experiment: str) -> list[Path]:
    """table2.md/.csv (printed too), table_full.md/.csv and significance.md/.csv under `out`
    for `results` (name -> `cremad.metrics.ModelResults`)."""
    summaries = {name: result.summary for name, result in results.items()}
    seeds = sorted({seed for summary in summaries.values() for seed in summary["seeds"]})
    where = f"{corpus}, {experiment}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    rows, tests = table_ii(summaries), significance(results)
    full_header, full_rows, full_markdown = full_table(summaries)
    models = ", ".join(model_label(name) for name in summaries if paper_model_id(name) is not None)
    spread = "; mean ± sd over seeds" if len(seeds) > 1 else ""
    combined = (
        '; "seeds averaged": one prediction per clip, the argmax of the class probabilities averaged '
        f'over the seeds (no sd); "+": that average and the SVM\'s, weighted {FUSION_WEIGHT:g} : '
        f"{1 - FUSION_WEIGHT:g}; over the clips every input holds"
        if any(result.tested_against for result in results.values())
        else ""
    )
    tables = {
        "table2": (
            f"Table II: true-positive % per emotion, best and worst of {models} ({where}){spread}; "
            f"Δ = ours minus the paper's, in points",
            table_ii_markdown(rows),
            list(rows[0]),
            [list(row.values()) for row in rows],
        ),
        "table_full": (
            f"Per-class recall, WA, UA (chance = 1 / classes present), macro-F1 and per-fold accuracy "
            f"(mean, sample std), % ({where}){spread}{combined}",
            full_markdown,
            full_header,
            full_rows,
        ),
        "significance": (
            f"Model-vs-model tests ({where}): Wilcoxon signed-rank on per-fold UA, exact McNemar on "
            f"pooled predictions; two-sided, unadjusted p-values"
            + (
                f" (Bonferroni threshold for {len(tests)} pairs: 0.05/{len(tests)})"
                if tests
                else "; one model only, nothing to compare"
            )
            + (
                "; several seeds: per-fold UA averaged, clip predictions voted over seeds"
                if len(seeds) > 1
                else ""
            )
            + (
                f"; each ensemble against every run, each fusion against its two inputs{combined}"
                if combined
                else ""
            ),
            markdown(
                list(SIGNIFICANCE_HEADERS.values()),
                [[_cell(key, row[key]) for key in SIGNIFICANCE_HEADERS] for row in tests],
            ),
            list(SIGNIFICANCE_HEADERS),
            [[row[key] for key in SIGNIFICANCE_HEADERS] for row in tests],
        ),
    }
    written = []
    for stem, (title, markdown_table, csv_header, csv_rows) in tables.items():
        written += write_table(out, stem, title, markdown_table, csv_header, csv_rows)
        print(f"{title}\n\n{markdown_table}\n")
    return written
