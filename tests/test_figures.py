"""`cremad figures`: Table II, Fig. 2, Fig. 3 and the model tests from hand-made run folders."""

import csv
import json

import numpy as np
import pytest
import soundfile
from matplotlib.image import imread
from results_fixtures import CLIP_SECONDS, HAND_TABLE_II, write_corpus, write_runs
from scipy.stats import binomtest

from cremad import CremadError, cli
from cremad.figures import find_clip, make_figures
from cremad.metrics import load_results
from cremad.model_names import PAPER_MODEL_IDS
from cremad.plots import attention_figure
from cremad.result_tables import table_ii
from cremad.runs import select_runs, write_attention
from cremad.stats import significance

CLIP = "1001_DFA_ANG_XX"


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    """Every figure for four hand-made models with a corpus holding the Fig. 2 clip."""
    root = tmp_path_factory.mktemp("results")
    corpus = write_corpus(root / "CREMA-D")
    runs = write_runs(root / "runs", data_dir=corpus)
    written = make_figures(root / "runs", root / "figures", clip=CLIP)
    return root, runs, written


def test_table_ii_equals_the_hand_computed_table(tmp_path):
    results = load_results(select_runs(write_runs(tmp_path)))
    rows = table_ii({name: result.summary for name, result in results.items()})
    got = {
        row["emotion"]: ((row["best_model"], row["best_percent"]), (row["worst_model"], row["worst_percent"]))
        for row in rows
    }
    assert got == HAND_TABLE_II
    anger = rows[0]
    assert (anger["paper_best_model"], anger["paper_best_percent"]) == (2, "75.6")
    assert anger["best_difference"] == pytest.approx(100.0 - 75.6)
    assert anger["worst_difference"] == pytest.approx(50.0 - 63.25)


def test_table_ii_files_in_the_papers_layout(drawn):
    root, _, _ = drawn
    markdown = (root / "figures" / "table2.md").read_text()
    assert (
        "| Anger | Model 2 – 100.00 | Model 1 – 50.00 | Model 2 – 75.6 | Model 1 – 63.25 | +24.40 | -13.25 |"
        in markdown
    )
    with open(root / "figures" / "table2.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["emotion"] for row in rows] == ["Anger", "Disgust", "Fear", "Happy", "Neutral", "Sad"]
    assert rows[5]["worst_model"] == "4" and float(rows[5]["worst_percent"]) == 25.0
    full = (root / "figures" / "table_full.md").read_text()
    assert full.count("\n| ") == 5  # header + 4 models


def test_every_figure_exists_and_is_not_blank(drawn):
    root, _, written = drawn
    names = {path.name for path in written}
    expected = {"fig2_1001_DFA_ANG_XX", "fig3_confusion_all", "fold_accuracy"} | {
        f"fig3_confusion_model{k}" for k in PAPER_MODEL_IDS
    }
    for stem in expected:
        assert f"{stem}.png" in names and f"{stem}.pdf" in names
        image = imread(root / "figures" / f"{stem}.png")
        assert image.std() > 0.05, stem
        assert (root / "figures" / f"{stem}.pdf").stat().st_size > 1000
    assert {"table2.md", "table2.csv", "table_full.csv", "significance.md", "significance.csv"} <= names


def test_fig2_panels_share_the_clips_duration(drawn):
    root, runs, _ = drawn
    results = load_results(select_runs(runs))
    actor = find_clip(results, CLIP)
    assert actor == "1001"  # the fold that never saw actor 1001
    figure = attention_figure(results, CLIP, root / "CREMA-D" / "AudioWAV" / f"{CLIP}.wav", actor)
    axes = [ax for ax in figure.axes if ax.get_label() != "<colorbar>" and ax.get_subplotspec() is not None]
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_xlim() == pytest.approx((0.0, CLIP_SECONDS))
    titles = [ax.get_title() for ax in axes]
    assert "predicted Anger (correct)" in titles[2]  # model 1 gets 1001's DFA anger clip right
    assert "Model 2" in titles[3]
    # The attention curve, stretched to samples, peaks where frame 20 is centred: 20 * 10 ms.
    line = axes[2].get_lines()[0]
    assert line.get_xdata()[np.argmax(line.get_ydata())] == pytest.approx(0.2, abs=0.006)


def test_fig2_draws_the_clip_as_trimmed_runs_saw_it(tmp_path):
    # The fixture clip is 0.3 s of tone then 0.2 s of digital zeros: runs made with
    # features.trim_digital_silence read it as 0.3 s, and so does Fig. 2.
    corpus = write_corpus(tmp_path / "CREMA-D")
    runs = write_runs(tmp_path / "runs", data_dir=corpus)
    for run_json in runs.rglob("run.json"):
        run = json.loads(run_json.read_text())
        run["config"]["features"]["trim_digital_silence"] = True
        run_json.write_text(json.dumps(run))
    results = load_results(select_runs(runs))
    figure = attention_figure(results, CLIP, corpus / "AudioWAV" / f"{CLIP}.wav", "1001")
    waveform = figure.axes[0]
    assert waveform.get_xlim() == pytest.approx((0.0, 0.3), abs=0.001)


def test_mcnemar_counts_discordant_clips(tmp_path):
    results = load_results(select_runs(write_runs(tmp_path, models=(1, 2))))
    (row,) = significance(results)
    # Per emotion, model 1 / model 2 get the first 2/4, 3/4, 1/3, 4/2, 4/3, 3/4 clips right.
    assert (row["only_a_correct"], row["only_b_correct"], row["paired_clips"]) == (3, 6, 24)
    assert row["mcnemar_p"] == pytest.approx(binomtest(3, 9, 0.5).pvalue, abs=1e-6)
    assert row["paired_folds"] == 2 and 0.0 <= row["wilcoxon_p"] <= 1.0


def test_partial_results_draw_what_exists(tmp_path, caplog):
    write_runs(tmp_path / "runs", models=(2, 3))
    written = make_figures(tmp_path / "runs", tmp_path / "figures")  # default clip is absent: Fig. 2 skipped
    names = {path.name for path in written}
    assert "fig3_confusion_model2.png" in names and "fig3_confusion_model1.png" not in names
    assert not any(name.startswith("fig2_") for name in names)
    assert "model 1: no run folder" in caplog.text and "model 4: no run folder" in caplog.text
    assert "1015_DFA_ANG_XX is not in these runs" in caplog.text


def test_unknown_clip_says_how_to_list_valid_names(tmp_path, capsys):
    runs = write_runs(tmp_path / "runs", models=(1,))
    with pytest.raises(CremadError, match="--list-clips"):
        make_figures(runs, tmp_path / "figures", clip="1001_XXX_ANG_XX")
    assert cli.main(["figures", "--runs", str(runs), "--clip", "1001_XXX_ANG_XX"]) == 2
    assert "--list-clips" in capsys.readouterr().err
    assert not (tmp_path / "figures").exists()  # checked before anything is drawn
    assert cli.main(["figures", "--runs", str(runs), "--list-clips"]) == 0
    listed = capsys.readouterr().out.split()
    assert CLIP in listed and len(listed) == 24


def test_clip_missing_from_the_corpus_is_an_error(tmp_path):
    corpus = write_corpus(tmp_path / "CREMA-D", clip_ids=("1002_DFA_ANG_XX",))
    runs = write_runs(tmp_path / "runs", models=(1,), data_dir=corpus)
    with pytest.raises(CremadError, match="not in the cremad corpus"):
        make_figures(runs, tmp_path / "figures", clip=CLIP)


def test_one_run_tree_with_several_experiments_and_seeds_gives_figures_for_each(tmp_path, capsys):
    """The tree `make emodb` builds: `figures` used to refuse it ("several sets of runs")."""
    from results_fixtures import write_model

    root = tmp_path / "runs"
    for seed, anger in ((0, 2), (1, 4)):  # model 1 gets 2, then 4, of the 4 anger clips right
        write_model(root, 1, seed=seed, correct=(anger, 3, 1, 4, 4, 3))
        write_model(root, 2, seed=seed)
    write_model(root, 1, experiment="tuned", correct=(0, 0, 0, 0, 0, 4))
    write_model(root, 2, experiment="tuned")

    assert cli.main(["figures", "--runs", str(root / "cremad"), "--out", str(tmp_path / "paper")]) == 0
    assert (
        cli.main(["figures", "--runs", str(root), "--experiment", "tuned", "--out", str(tmp_path / "tuned")])
        == 0
    )
    paper = (tmp_path / "paper" / "table_full.md").read_text()
    tuned = (tmp_path / "tuned" / "table_full.md").read_text()
    assert "(cremad, paper, seeds 0, 1)" in paper and "(cremad, tuned, seed 0)" in tuned
    # Anger recall of model 1: 50 % and 100 % over the two seeds -> 75 ± 35.36 (sample sd).
    # WA: 17 and 19 of 24 clips -> 75 ± 5.89.
    model1 = next(line for line in paper.splitlines() if line.startswith("| Model 1 |"))
    assert model1.startswith("| Model 1 | 0,1 | 2/2 | 75.00 ± 35.36 | 75.00 ± 0.00 |")
    assert "| 75.00 ± 5.89 |" in model1
    assert next(line for line in tuned.splitlines() if line.startswith("| Model 1 |")).startswith(
        "| Model 1 | 0 | 2/2 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 100.00 |"
    )
    table2 = (tmp_path / "paper" / "table2.md").read_text()
    assert "| Anger | Model 2 – 100.00 ± 0.00 | Model 1 – 75.00 ± 35.36 |" in table2
    with open(tmp_path / "paper" / "table_full.csv") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert float(rows["model1"]["ANG"]) == 75.0 and float(rows["model1"]["ANG_sd"]) == pytest.approx(
        35.3553, abs=1e-4
    )
    for out in ("paper", "tuned"):
        assert (tmp_path / out / "fig3_confusion_all.png").is_file()


def test_seed_vote_counts_each_clip_once():
    from cremad.runs import Predictions
    from cremad.stats import seed_vote

    def run(predicted, probabilities):
        return Predictions(
            run_dir=None,
            run={},
            clip_ids=np.array(["c"]),
            actors=np.array(["1001"]),
            true=np.array(["ANG"]),
            predicted=np.array([predicted]),
            probabilities=np.array([probabilities]),
            folds=["1001"],
            missing=[],
            unfinished=[],
            done={},
        )

    anger, disgust = (0.6, 0.4, 0, 0, 0, 0), (0.1, 0.9, 0, 0, 0, 0)
    assert seed_vote({0: run("ANG", anger), 1: run("DIS", disgust), 2: run("ANG", anger)}) == {
        "c": ("ANG", "ANG")
    }
    # One vote each: the higher mean probability wins (DIS (0.4 + 0.9) / 2 over ANG (0.6 + 0.1) / 2).
    assert seed_vote({0: run("ANG", anger), 1: run("DIS", disgust)}) == {"c": ("ANG", "DIS")}


def test_an_absent_class_is_shown_as_absent_not_zero(tmp_path):
    """A corpus without disgust (CASIA): Table II, the full table and Fig. 3 say "absent"."""
    from results_fixtures import ACTORS, clip_rows, write_fold, write_model

    from cremad.plots import plot_confusion

    for model_id in (1, 2):
        run_dir = write_model(tmp_path, model_id, actors=(), listed=ACTORS)
        for actor, rows in clip_rows(model_id).items():
            write_fold(run_dir, actor, [row for row in rows if row[1] != "DIS"], model_id)
    results = load_results(select_runs(tmp_path))
    rows = table_ii({name: result.summary for name, result in results.items()})
    disgust = next(row for row in rows if row["emotion"] == "Disgust")
    assert disgust["best_model"] is None and disgust["best_percent"] is None
    make_figures(tmp_path, tmp_path / "figures")
    assert (
        "| Disgust | absent | absent | Model 2 – 48.46 |" in (tmp_path / "figures" / "table2.md").read_text()
    )
    full = (tmp_path / "figures" / "table_full.md").read_text()
    model1 = next(line for line in full.splitlines() if line.startswith("| Model 1 |"))
    # Model 1 without disgust: recall 50, 25, 100, 100, 75 -> UA 70, chance 1/5.
    assert model1.startswith("| Model 1 | 0 | 2/2 | 50.00 | absent | 25.00 | 100.00 | 100.00 | 75.00 |")
    assert model1.endswith("| 20.00 |")

    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    plot_confusion(ax, results["model1"].summary, "Model 1")
    assert "absent (no clip)" in [text.get_text() for text in ax.texts]
    assert not any(
        text.get_visible() and text.get_text() == "0.0" for text in ax.texts if text.get_position()[1] == 1
    )


# The commands that read runs, in a fresh interpreter where keras.Model.fit and cremad's training
# entry points raise, should anything import them; at the end it prints which frameworks loaded.
READ_ONLY = r"""
import importlib.abc, importlib.machinery, json, sys


def refuse(name):
    def refused(*args, **kwargs):
        raise AssertionError(f"{name} called")

    return refused


AFTER_IMPORT = {
    "keras": lambda module: setattr(module.Model, "fit", refuse("keras.Model.fit")),
    "cremad.training": lambda module: [
        setattr(module, name, refuse(f"cremad.training.{name}")) for name in ("train_model", "fit_model")
    ],
}


class Patcher(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in AFTER_IMPORT:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            AFTER_IMPORT[name](module)

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, Patcher())
from cremad.cli import main

for argv in json.loads(sys.argv[1]):
    status = main(argv)
    if status:
        sys.exit(f"{argv[0]} exited {status}")
print("frameworks:", sorted({"keras", "tensorflow", "jax", "torch"} & set(sys.modules)))
"""


def test_figures_summarize_and_perception_never_train(tmp_path):
    """`make figures` never retrains: the commands that read runs (Fig. 2 from attention.npz
    included) finish with no training call, and without importing Keras or TensorFlow."""
    import subprocess
    import sys

    from test_perception import write_meta  # votes on four DFA clips of actors 1001 and 1002

    corpus = write_corpus(tmp_path / "CREMA-D")
    runs = write_runs(tmp_path / "runs", data_dir=corpus)
    out = tmp_path / "figures"
    commands = [
        ["figures", "--runs", str(runs), "--out", str(out), "--clip", CLIP, "--data", str(corpus)],
        ["summarize", "--runs", str(runs)],
        ["perception", "--runs", str(runs), "--meta", str(write_meta(tmp_path / "meta")), "--out", str(out)],
    ]
    result = subprocess.run(
        [sys.executable, "-c", READ_ONLY, json.dumps(commands)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    frameworks = result.stdout.splitlines()[-1]
    assert frameworks == "frameworks: []"
    assert (out / f"fig2_{CLIP}.png").is_file() and (out / "perception.png").is_file()
    assert len(list(runs.rglob("summary.json"))) == 4


def test_fig2_counts_no_padding_on_an_unpadded_clip_a_whole_number_of_hops_long(tmp_path):
    """A 0.4 s clip (40 hops) padded to nothing has 41 centred frames, all its own: uniform
    attention over them puts none of its mass on padding."""
    corpus = tmp_path / "CREMA-D"
    (corpus / "AudioWAV").mkdir(parents=True)
    time = np.arange(6400) / 16_000  # (6400,) = 40 hops of 160
    soundfile.write(corpus / "AudioWAV" / f"{CLIP}.wav", (0.5 * np.sin(2 * np.pi * 220 * time)), 16_000)
    run_root = write_runs(tmp_path / "runs", models=(1,), data_dir=corpus)
    (run_dir,) = {path.parent for path in run_root.rglob("run.json")}
    run = json.loads((run_dir / "run.json").read_text())
    run["config"]["features"]["pad_to"] = 6400
    (run_dir / "run.json").write_text(json.dumps(run))
    fold = run_dir / "fold-1001"
    with np.load(fold / "attention.npz") as archive:
        clips = archive["clips"]
    write_attention(fold, clips, np.full((len(clips), 1, 41), 1 / 41))  # (clips, 1, 41)
    figure = attention_figure(
        load_results(select_runs(run_root)), CLIP, corpus / "AudioWAV" / f"{CLIP}.wav", "1001"
    )
    assert not [text for ax in figure.axes for text in ax.texts if "on padding" in text.get_text()]
