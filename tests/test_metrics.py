"""`cremad summarize`: the paper's numbers from saved fold predictions, on hand-made run folders."""

import csv
import json

import numpy as np
import pytest
from results_fixtures import ACTORS, HAND_CORRECT, write_fold, write_model, write_runs

from cremad import CremadError, cli, runs
from cremad.config import EMOTIONS
from cremad.metrics import format_summary, summarize
from cremad.runs import load_predictions


def recompute_from_csv(model_dir):
    """WA, UA, per-class recall and per-fold accuracy counted by hand from predictions.csv."""
    hits, totals, fold_accuracy = {e: 0 for e in EMOTIONS}, {e: 0 for e in EMOTIONS}, []
    for folder in runs.fold_dirs(model_dir).values():
        path = folder / runs.PREDICTIONS
        if not (folder / runs.DONE).exists():
            continue
        with open(path) as handle:
            rows = list(csv.DictReader(handle))
        for row in rows:
            totals[row["true"]] += 1
            hits[row["true"]] += row["true"] == row["predicted"]
        fold_accuracy.append(100 * sum(row["true"] == row["predicted"] for row in rows) / len(rows))
    recall = {e: 100 * hits[e] / totals[e] for e in EMOTIONS}
    wa = 100 * sum(hits.values()) / sum(totals.values())
    return recall, wa, float(np.mean(list(recall.values()))), fold_accuracy


def test_summary_matches_numbers_recomputed_from_predictions_csv(tmp_path):
    model_dir = write_model(tmp_path, 1)
    summary = summarize(model_dir)
    recall, wa, ua, fold_accuracy = recompute_from_csv(model_dir)

    written = json.loads((model_dir / runs.SUMMARY_JSON).read_text())
    assert written == summary
    assert summary["n_folds"] == 2 and summary["n_clips"] == 24
    assert summary["recall"] == pytest.approx(recall)
    assert summary["recall"] == {e: 25.0 * k for e, k in zip(EMOTIONS, HAND_CORRECT[1])}
    assert summary["wa"] == pytest.approx(wa) == pytest.approx(100 * 17 / 24, abs=1e-3)
    assert summary["ua"] == pytest.approx(ua)
    assert summary["fold_accuracy_mean"] == pytest.approx(np.mean(fold_accuracy), abs=1e-3)
    assert summary["fold_accuracy_std"] == pytest.approx(np.std(fold_accuracy, ddof=1), abs=1e-3)
    # Fold 1001 holds the first two clips of each emotion: 11 of 12 right; fold 1002: 6 of 12.
    assert summary["folds"]["1001"]["accuracy"] == pytest.approx(100 * 11 / 12, abs=1e-3)
    assert summary["folds"]["1002"]["accuracy"] == pytest.approx(50.0)


def test_confusion_is_the_sum_of_fold_matrices_with_rows_normalized(tmp_path):
    summary = summarize(write_model(tmp_path, 3))
    counts = np.array(summary["confusion_counts"])
    assert counts.sum() == 24 and (counts.sum(axis=1) == 4).all()
    # Model 3 gets 1 of 4 Disgust clips; the other 3 go to the next emotion, Fear.
    assert counts[1].tolist() == [0, 1, 3, 0, 0, 0]
    assert np.array(summary["confusion_percent"]).sum(axis=1) == pytest.approx(np.full(6, 100.0))
    assert np.diag(summary["confusion_percent"]) == pytest.approx([summary["recall"][e] for e in EMOTIONS])


def test_macro_f1_is_sklearns(tmp_path):
    from sklearn.metrics import f1_score

    predictions = load_predictions(write_model(tmp_path, 2))
    summary = summarize(predictions.run_dir)
    expected = 100 * f1_score(predictions.true, predictions.predicted, labels=list(EMOTIONS), average="macro")
    assert summary["macro_f1"] == pytest.approx(expected, abs=1e-3)


def test_missing_and_unfinished_folds_are_reported_and_not_counted(tmp_path):
    model_dir = write_model(tmp_path, 2, actors=ACTORS, listed=ACTORS + ("1003", "1004"))
    write_fold(
        model_dir, "1003", [("1003_DFA_ANG_XX", "ANG", "SAD")], model_id=2, done=False
    )  # killed mid-fold

    predictions = load_predictions(model_dir)
    assert predictions.folds == ["1001", "1002"]
    assert predictions.unfinished == ["1003"] and predictions.missing == ["1004"]
    assert "1003_DFA_ANG_XX" not in predictions.clip_ids

    summary = summarize(model_dir)
    assert summary["n_folds"] == 2 and summary["n_expected_folds"] == 4
    text = format_summary(summary)
    assert "2/4 folds, 2 missing (partial run)" in text
    assert "not started: 1004" in text and "unfinished:  1003" in text


def test_without_run_json_only_unfinished_folders_are_reported(tmp_path):
    model_dir = write_model(tmp_path, 4, run_json=False)
    write_fold(model_dir, "1003", [("1003_DFA_ANG_XX", "ANG", "SAD")], model_id=4, done=False)
    summary = summarize(model_dir)
    assert summary["model_id"] == 4  # from the folder name
    assert summary["model"] == "model4"
    assert summary["missing_folds"] == [] and summary["unfinished_folds"] == ["1003"]
    assert "1 unfinished (partial run)" in format_summary(summary)


def test_no_finished_fold_is_an_error(tmp_path):
    model_dir = runs.run_dir(tmp_path, "cremad", "paper", "model1", 0)
    write_fold(model_dir, "1001", [("1001_DFA_ANG_XX", "ANG", "ANG")], model_id=1, done=False)
    with pytest.raises(CremadError, match="no finished folds"):
        summarize(model_dir)


def test_cli_summarizes_every_model_under_a_parent(tmp_path, capsys):
    write_runs(tmp_path, models=(1, 2))
    assert cli.main(["summarize", "--runs", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Model 1" in printed and "Model 2" in printed and "confusion" in printed
    for model in ("model1", "model2"):
        assert (runs.run_dir(tmp_path, "cremad", "paper", model, 0) / runs.SUMMARY_JSON).is_file()
    assert cli.main(["summarize", "--runs", str(tmp_path / "nowhere")]) == 2


def test_a_class_without_clips_is_absent_and_ua_averages_the_classes_present(tmp_path):
    from results_fixtures import clip_rows

    model_dir = write_model(tmp_path, 1, actors=(), listed=ACTORS)
    for actor, rows in clip_rows(1).items():  # no disgust clip at all, as on CASIA
        write_fold(model_dir, actor, [row for row in rows if row[1] != "DIS"], model_id=1)
    summary = summarize(model_dir)
    assert summary["absent_classes"] == ["DIS"]
    assert summary["recall"]["DIS"] is None and summary["confusion_percent"][1] is None  # absent, not 0 %
    # Recall 50, 25, 100, 100, 75 on the five classes present: UA 70, chance 1/5; WA 14 of 20.
    assert summary["ua"] == pytest.approx(70.0) and summary["chance_ua"] == pytest.approx(20.0)
    assert summary["wa"] == pytest.approx(70.0)
    text = format_summary(summary)
    assert "Disgust absent" in text and "UA 70.00 (chance 20.00)" in text


def test_cli_gives_mean_and_sd_over_seeds(tmp_path, capsys):
    write_model(tmp_path, 1, seed=0)  # WA 17 of 24
    write_model(tmp_path, 1, seed=1, correct=(4, 3, 1, 4, 4, 3))  # WA 19 of 24
    assert cli.main(["summarize", "--runs", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "Model 1, seed 0" in printed and "Model 1, seed 1" in printed
    assert "Model 1 over 2 seeds (0, 1): WA 75.00 ± 5.89" in printed
    assert cli.main(["summarize", "--runs", str(tmp_path), "--seeds", "1"]) == 0
    assert "over 2 seeds" not in capsys.readouterr().out
