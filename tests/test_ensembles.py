"""Seed ensembles and fusions with the SVM: averaged class probabilities from fabricated runs."""

import csv

import numpy as np
import pytest
from results_fixtures import ACTORS, write_model, write_probabilities

from cremad import CremadError, cli, runs
from cremad.config import EMOTIONS
from cremad.ensembles import FUSION_WEIGHT
from cremad.figures import make_figures
from cremad.metrics import combined_results, load_results
from cremad.model_names import model_label
from cremad.runs import select_runs

N_CLIPS = 24  # results_fixtures: 2 actors x 2 sentences x 6 emotions
TRUE = np.repeat(np.arange(len(EMOTIONS)), 2)  # each actor's 12 clips: 2 per emotion, in order
TRUE = np.concatenate([TRUE, TRUE])  # (24,) EMOTIONS indices, actor 1001 then 1002


def fabricated(seed: int) -> np.ndarray:
    """(24, 6) random class probabilities, rounded as predictions.csv stores them."""
    probabilities = np.random.default_rng(seed).dirichlet(np.ones(len(EMOTIONS)), N_CLIPS)
    return np.round(probabilities, 6)


def hand_ua(probabilities: np.ndarray) -> float:
    """UA in %: the mean over emotions of the share of its clips whose argmax is right."""
    predicted = probabilities.argmax(axis=1)
    return 100.0 * np.mean([np.mean(predicted[TRUE == k] == k) for k in range(len(EMOTIONS))])


@pytest.fixture
def two_seeds_and_svm(tmp_path):
    """Model 2 over seeds 0 and 1 and an svm-rich run, each with its own probabilities."""
    probabilities = {"seed0": fabricated(0), "seed1": fabricated(1), "svm-rich": fabricated(2)}
    write_probabilities(tmp_path, "model2", probabilities["seed0"], seed=0)
    write_probabilities(tmp_path, "model2", probabilities["seed1"], seed=1)
    write_probabilities(tmp_path, "svm-rich", probabilities["svm-rich"])
    return tmp_path, probabilities


def test_ensemble_of_two_seeds_is_their_averaged_probabilities(two_seeds_and_svm):
    root, probabilities = two_seeds_and_svm
    averaged = (probabilities["seed0"] + probabilities["seed1"]) / 2  # (24, 6)
    ensemble = combined_results(load_results(select_runs(root)))["model2-ensemble"]
    (predictions,) = ensemble.predictions.values()
    assert predictions.probabilities == pytest.approx(averaged, abs=1e-9)
    assert list(predictions.predicted) == [EMOTIONS[k] for k in averaged.argmax(axis=1)]
    assert ensemble.summary["ua"] == pytest.approx(hand_ua(averaged), abs=1e-3)
    assert ensemble.summary["seeds"] == [0, 1] and ensemble.summary["ua_sd"] is None


def test_fusion_is_the_weighted_average_with_the_svm(two_seeds_and_svm):
    root, probabilities = two_seeds_and_svm
    averaged = (probabilities["seed0"] + probabilities["seed1"]) / 2
    fused = FUSION_WEIGHT * averaged + (1 - FUSION_WEIGHT) * probabilities["svm-rich"]  # (24, 6)
    assert FUSION_WEIGHT == 0.5
    combined = combined_results(load_results(select_runs(root)))
    assert list(combined) == ["model2-ensemble", "model2-ensemble+svm-rich"]
    fusion = combined["model2-ensemble+svm-rich"]
    (predictions,) = fusion.predictions.values()
    assert predictions.probabilities == pytest.approx(fused, abs=1e-9)
    assert fusion.summary["ua"] == pytest.approx(hand_ua(fused), abs=1e-3)
    assert fusion.tested_against == ("model2-ensemble", "svm-rich")
    assert predictions.run["weights"] == {"model2-ensemble": 0.5, "svm-rich": 0.5}


def test_single_seed_models_get_no_ensemble(tmp_path):
    write_model(tmp_path, 1)
    write_model(tmp_path, 2)
    assert combined_results(load_results(select_runs(tmp_path))) == {}


def test_ensembles_are_in_the_full_table_and_the_tests_but_not_table_ii(two_seeds_and_svm):
    root, probabilities = two_seeds_and_svm
    out = root / "figures"
    written = {path.name for path in make_figures(root, out)}
    with open(out / "table_full.csv") as handle:
        full = {row["model"]: row for row in csv.DictReader(handle)}
    assert list(full) == ["model2", "svm-rich", "model2-ensemble", "model2-ensemble+svm-rich"]
    assert full["model2-ensemble"]["seeds"] == "0,1"
    assert float(full["model2-ensemble+svm-rich"]["ua"]) == pytest.approx(
        hand_ua(0.25 * (probabilities["seed0"] + probabilities["seed1"]) + 0.5 * probabilities["svm-rich"]),
        abs=1e-3,
    )
    assert "| Model 2, seeds averaged + svm-rich | 0,1 | 2/2 |" in (out / "table_full.md").read_text()

    with open(out / "significance.csv") as handle:
        pairs = [(row["model_a"], row["model_b"]) for row in csv.DictReader(handle)]
    assert pairs == [
        ("model2", "svm-rich"),
        ("model2-ensemble", "model2"),
        ("model2-ensemble", "svm-rich"),
        ("model2-ensemble+svm-rich", "model2-ensemble"),
        ("model2-ensemble+svm-rich", "svm-rich"),
    ]

    table2 = (out / "table2.md").read_text()
    assert "ensemble" not in table2 and "averaged" not in table2
    with open(out / "table2.csv") as handle:
        assert {row["best_model"] for row in csv.DictReader(handle)} <= {"2"}

    # Fig. 3 holds them, and their predictions are written out to be checked by hand.
    assert {"fig3_confusion_model2-ensemble.png", "fig3_confusion_combined.png"} <= written
    rows = runs.read_fold_predictions(out / "combined" / "model2-ensemble" / runs.PREDICTIONS)
    averaged = (probabilities["seed0"] + probabilities["seed1"]) / 2
    assert [float(row["p_ANG"]) for row in rows] == pytest.approx(averaged[:, 0], abs=1e-6)
    assert (out / "combined" / "model2-ensemble+svm-rich" / "sources.json").is_file()


def test_seeds_with_different_clips_combine_the_clips_they_share(tmp_path, caplog):
    write_probabilities(tmp_path, "model2", fabricated(0), seed=0)
    partial = write_probabilities(tmp_path, "model2", fabricated(1), seed=1)
    (runs.fold_dir(partial, ACTORS[1]) / runs.DONE).unlink()  # seed 1 has not finished fold 1002
    ensemble = combined_results(load_results(select_runs(tmp_path)))["model2-ensemble"]
    assert ensemble.summary["n_clips"] == N_CLIPS // 2 and ensemble.summary["n_folds"] == 1
    assert ensemble.summary["n_expected_folds"] == 2  # shown as a partial run
    assert "12 clip(s) of seed 0" in caplog.text and "missing from another input" in caplog.text


def test_seeds_that_disagree_on_a_clips_emotion_are_an_error(tmp_path):
    write_probabilities(tmp_path, "model2", fabricated(0), seed=0)
    other = write_probabilities(tmp_path, "model2", fabricated(1), seed=1)
    path = runs.fold_dir(other, ACTORS[0]) / runs.PREDICTIONS
    path.write_text(path.read_text().replace("1001_DFA_ANG_XX,1001,ANG,", "1001_DFA_ANG_XX,1001,SAD,"))
    with pytest.raises(CremadError, match=r"model2-ensemble: clip 1001_DFA_ANG_XX has true SAD in seed 1"):
        combined_results(load_results(select_runs(tmp_path)))


def test_labels_name_the_ensemble_and_the_fusion():
    assert model_label("model2-ensemble") == "Model 2, seeds averaged"
    assert model_label("model2-ensemble+svm-rich") == "Model 2, seeds averaged + svm-rich"


def test_summarize_prints_the_ensemble_after_the_seeds(two_seeds_and_svm, capsys):
    root, probabilities = two_seeds_and_svm
    assert cli.main(["summarize", "--runs", str(root)]) == 0
    printed = capsys.readouterr().out
    averaged = (probabilities["seed0"] + probabilities["seed1"]) / 2
    assert "Model 2 over 2 seeds (0, 1)" in printed
    assert "Model 2, seeds averaged (seeds 0, 1): WA" in printed
    assert f"UA {hand_ua(averaged):.2f}" in printed
    assert "Model 2, seeds averaged + svm-rich (seeds 0, 1)" in printed
