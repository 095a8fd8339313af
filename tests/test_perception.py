"""People versus the models: hand-made CREMA-D vote files with hand-computed answers, and the
real metadata (../shared/cremad-meta) when it is there."""

import csv
from pathlib import Path

import numpy as np
import pytest

from cremad import CremadError, cli, runs
from cremad.config import EMOTIONS
from cremad.crowd import (
    compare_model,
    js_divergence,
    plurality_credit,
    rater_accuracy,
    read_demographics,
    read_votes,
)
from cremad.perception import build_tables, load_models

# Header lines copied from CREMA-D's processedResults/tabulatedVotes.csv and VideoDemographics.csv.
VOTES_HEADER = (
    '"","A","D","F","H","N","S","fileName","numResponses","agreement","emoVote","meanEmoResp",'
    '"meanAngerResp","meanDisgustResp","meanFearResp","meanHappyResp","meanNeutralResp","meanSadResp",'
    '"medianEmoResp","meanEmoRespNorm","meanAngerRespNorm","meanDisgustRespNorm","meanFearRespNorm",'
    '"meanHappyRespNorm","meanNeutralRespNorm","meanSadRespNorm","medianEmoRespNorm"'
)
LEVELS = ",50" + ",-1" * 15  # the 16 intensity columns, not used here
# Voice (1xxxxx): four clips, four voters each.          votes for intended   raters' plurality
VOTES = [
    '"100001",3,0,0,0,1,0,"1001_DFA_ANG_XX",4,0.75,"A"',  # 3 of 4          A (right)
    '"100002",0,0,0,0,2,2,"1001_DFA_SAD_XX",4,0.5,"N:S"',  # 2 of 4         N:S tie (half right)
    '"100003",1,0,0,0,3,0,"1002_DFA_HAP_XX",4,0.75,"N"',  # 0 of 4          N (wrong)
    '"100004",0,0,0,1,2,1,"1002_DFA_NEU_XX",4,0.5,"N"',  # 2 of 4           N (right)
    '"200001",4,0,0,0,0,0,"1001_DFA_ANG_XX",4,1,"A"',  # face: 4 of 4
    '"200002",0,0,0,3,0,1,"1001_DFA_SAD_XX",4,0.75,"H"',  # face: 1 of 4
    '"300001",2,0,0,0,2,0,"1001_DFA_ANG_XX",4,0.5,"A:N"',  # audio-visual: 2 of 4
]
DEMOGRAPHICS = """"ActorID","Age","Sex","Race","Ethnicity"
1001,51,"Male","Caucasian","Not Hispanic"
1002,21,"Female","African American","Hispanic"
"""
# clip: (true, predicted, probabilities ANG..SAD); the JS divergence from the vote shares is in the comment.
PREDICTIONS = {
    "1001": {
        "1001_DFA_ANG_XX": ("ANG", "ANG", (0.75, 0, 0, 0, 0.25, 0)),  # equal to the votes: 0
        "1001_DFA_SAD_XX": ("SAD", "NEU", (0, 0, 0, 0, 0.5, 0.5)),  # equal to the votes: 0
    },
    "1002": {
        "1002_DFA_HAP_XX": ("HAP", "HAP", (0, 0, 0, 1, 0, 0)),  # disjoint from the votes: 1
        # p = (N .5, S .5), q = (H .25, N .5, S .25), m = (H .125, N .5, S .375):
        # KL(p||m) = .5 log2(.5/.375) = .2075187, KL(q||m) = .25 + .25 log2(.25/.375) = .1037594
        "1002_DFA_NEU_XX": ("NEU", "NEU", (0, 0, 0, 0, 0.5, 0.5)),  # (.2075187 + .1037594) / 2 = .1556391
    },
}


def write_meta(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = [VOTES_HEADER] + [row + LEVELS for row in VOTES]
    (folder / "tabulatedVotes.csv").write_text("\n".join(rows) + "\n")
    (folder / "VideoDemographics.csv").write_text(DEMOGRAPHICS)
    return folder


def write_fold(run_dir: Path, actor: str, rows: dict, done: bool = True) -> None:
    """A fold of hand-made predictions (the predicted emotion is the most probable one)."""
    folder = runs.start_fold(runs.fold_dir(run_dir, actor))
    clips = list(rows)
    labels = [EMOTIONS.index(true) for true, _, _ in rows.values()]
    probabilities = np.array([probabilities for _, _, probabilities in rows.values()], dtype=float)
    assert [EMOTIONS[int(p.argmax())] for p in probabilities] == [
        predicted for _, predicted, _ in rows.values()
    ]
    if done:
        runs.finish_fold(folder, clips, [actor] * len(clips), labels, probabilities, {"test_actor": actor})
    else:
        runs.write_predictions(folder, clips, [actor] * len(clips), labels, probabilities)


@pytest.fixture
def runs_root(tmp_path) -> Path:
    model_dir = runs.run_dir(tmp_path / "runs", "cremad", "paper", "model2", 0)
    for actor, rows in PREDICTIONS.items():
        write_fold(model_dir, actor, rows)
    # An unfinished fold (no done.json) must not be read: its clip has no votes and would show.
    write_fold(model_dir, "1003", {"1003_DFA_ANG_XX": ("ANG", "ANG", (1, 0, 0, 0, 0, 0))}, done=False)
    emodb = runs.run_dir(tmp_path / "runs", "emodb", "paper", "model2", 0)
    write_fold(emodb, "03", {"03a01Wa": ("ANG", "ANG", (1, 0, 0, 0, 0, 0))})
    runs.prepare_run(emodb, {"corpus": "emodb", "model_id": 2}, force=False)
    return tmp_path / "runs"


def entropy_bits(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def test_read_votes_splits_modalities_in_emotion_order(tmp_path):
    votes = read_votes(write_meta(tmp_path) / "tabulatedVotes.csv")
    assert {modality: len(clips) for modality, clips in votes.items()} == {
        "voice": 4,
        "face": 2,
        "audiovisual": 1,
    }
    assert votes["voice"]["1002_DFA_NEU_XX"].tolist() == [0, 0, 0, 1, 2, 1]  # A D F H N S = EMOTIONS order


def test_read_votes_names_the_bad_line(tmp_path):
    meta = write_meta(tmp_path)
    path = meta / "tabulatedVotes.csv"
    path.write_text(path.read_text().replace('"100003",1,0', '"100003",2,0'))  # 5 votes, numResponses 4
    with pytest.raises(CremadError, match=r"tabulatedVotes.csv:4: votes sum to 5, numResponses is 4"):
        read_votes(path)


def test_demographics_age_bands(tmp_path):
    actors = read_demographics(write_meta(tmp_path) / "VideoDemographics.csv")
    assert actors["1001"] == {
        "sex": "Male",
        "age_band": "50-59",
        "race": "Caucasian",
        "ethnicity": "Not Hispanic",
    }
    assert actors["1002"]["age_band"] == "20-29"


def test_raters_accuracy_by_hand(tmp_path):
    voice = read_votes(write_meta(tmp_path) / "tabulatedVotes.csv")["voice"]
    clip_ids = sorted(voice)
    labels = np.array([EMOTIONS.index(clip_id.split("_")[2]) for clip_id in clip_ids])
    accuracy = rater_accuracy(np.stack([voice[c] for c in clip_ids]), labels)
    assert accuracy["per_response"] == pytest.approx(100 * 7 / 16)  # (3 + 2 + 0 + 2) / 16 votes
    assert accuracy["majority_strict"] == pytest.approx(50.0)  # ANG and NEU clips
    assert accuracy["majority_ties_split"] == pytest.approx(62.5)  # (1 + 1/2 + 0 + 1) / 4
    assert accuracy["tied_clips"] == 1
    assert accuracy["per_response_ANG"] == pytest.approx(75.0)
    assert np.isnan(accuracy["per_response_DIS"])  # no disgust clip
    assert accuracy["per_emotion_mean"] == pytest.approx((75 + 0 + 50 + 50) / 4)


def test_plurality_credit_splits_ties():
    counts = np.array([[2, 0, 0, 0, 2, 2], [0, 0, 0, 0, 4, 0]])
    assert plurality_credit(counts, np.array([0, 0])).tolist() == pytest.approx([1 / 3, 0])
    assert plurality_credit(counts, np.array([1, 4])).tolist() == pytest.approx([0, 1])


def test_js_divergence_is_the_square_of_scipys_distance():
    point, half = np.array([[1.0, 0, 0, 0, 0, 0]]), np.array([[0.5, 0.5, 0, 0, 0, 0]])
    # m = (.75, .25): KL(point||m) = log2(4/3), KL(half||m) = .5 log2(2/3) + .5; JSD = half their sum.
    expected = 0.5 * (np.log2(4 / 3) + 0.5 * np.log2(2 / 3) + 0.5)
    assert js_divergence(point, half)[0] == pytest.approx(expected)
    assert js_divergence(point, point)[0] == pytest.approx(0, abs=1e-12)
    assert js_divergence(point, np.roll(point, 1, axis=1))[0] == pytest.approx(1.0)  # disjoint: 1 bit


def test_model_against_votes_by_hand(tmp_path, runs_root):
    voice = read_votes(write_meta(tmp_path / "meta") / "tabulatedVotes.csv")["voice"]
    models = load_models(runs_root)
    assert list(models) == ["cremad/model2"]  # emodb skipped, unfinished fold 1003 not read
    result = compare_model(models["cremad/model2"], voice)
    assert result["n_clips"] == 4 and result["n_without_votes"] == 0
    assert result["accuracy_intended"] == pytest.approx(75.0)  # SAD clip predicted NEU
    assert result["agreement_majority"] == pytest.approx(62.5)  # 1 + 1/2 (N:S tie) + 0 + 1
    assert result["raters_majority_intended"] == pytest.approx(62.5)
    assert result["jsd_model"] == pytest.approx((0 + 0 + 1 + 0.1556391) / 4, abs=1e-6)
    # One-hot intended vs votes: ANG (1,0) vs (.75,.25) -> .1379254; SAD or NEU vs a 50/50 or
    # 25/50/25 split -> .3112781 each; HAP vs votes without HAP -> 1.
    assert result["jsd_onehot"] == pytest.approx((0.1379254 + 0.3112781 + 1 + 0.3112781) / 4, abs=1e-6)
    shares = np.stack([voice[c] / 4 for c in sorted(voice)])
    uniform = np.full(6, 1 / 6)
    expected_uniform = np.mean(
        [entropy_bits((uniform + q) / 2) - (entropy_bits(uniform) + entropy_bits(q)) / 2 for q in shares]
    )
    assert result["jsd_uniform"] == pytest.approx(expected_uniform)
    assert result["jsd_label_prior"] == pytest.approx(0, abs=1e-12)  # one clip per emotion: its own votes
    assert result["closer_than_onehot"] == pytest.approx(75.0)  # all but the HAP clip (1 = 1)
    p_anger, share_anger = [0.75, 0, 0, 0], [0.75, 0, 0.25, 0]  # clips in file order
    assert result["correlations"]["ANG"][0] == pytest.approx(np.corrcoef(p_anger, share_anger)[0, 1])


def test_groups_by_hand(tmp_path, runs_root):
    meta = write_meta(tmp_path / "meta")
    votes, demographics = (
        read_votes(meta / "tabulatedVotes.csv"),
        read_demographics(meta / "VideoDemographics.csv"),
    )
    models = {label: compare_model(p, votes["voice"]) for label, p in load_models(runs_root).items()}
    header, rows = build_tables(votes, demographics, models)["groups"]
    table = {(row[0], row[1]): dict(zip(header, row)) for row in rows}
    assert table["sex", "Male"]["raters_per_response"] == pytest.approx(100 * 5 / 8)  # actor 1001
    assert table["sex", "Female"]["raters_per_response"] == pytest.approx(100 * 2 / 8)
    assert table["sex", "Male"]["cremad/model2:accuracy"] == pytest.approx(50.0)
    assert table["race", "African American"]["cremad/model2:accuracy"] == pytest.approx(100.0)
    assert table["age_band", "50-59"]["n_actors"] == 1 and table["age_band", "50-59"]["n_clips"] == 2


def test_command_writes_tables_and_figure(tmp_path, runs_root, capsys):
    meta, out = write_meta(tmp_path / "meta"), tmp_path / "out"
    assert cli.main(["perception", "--runs", str(runs_root), "--meta", str(meta), "--out", str(out)]) == 0
    names = {
        "raters.csv",
        "models.csv",
        "correlations.csv",
        "groups.csv",
        "perception.md",
        "perception.png",
        "perception.pdf",
    }
    assert names <= {path.name for path in out.iterdir()}
    with open(out / "raters.csv") as handle:
        raters = {row["modality"]: row for row in csv.DictReader(handle)}
    assert float(raters["voice"]["per_response"]) == pytest.approx(43.75)
    assert float(raters["face"]["per_response"]) == pytest.approx(62.5)  # (4 + 1) / 8
    with open(out / "models.csv") as handle:
        (model,) = list(csv.DictReader(handle))
    assert model["model"] == "cremad/model2" and float(model["accuracy_intended"]) == pytest.approx(75.0)
    assert "| cremad/model2 | 4 |" in capsys.readouterr().out


def test_command_without_runs_reports_the_raters(tmp_path):
    meta, empty = write_meta(tmp_path / "meta"), tmp_path / "runs"
    empty.mkdir()
    assert (
        cli.main(["perception", "--runs", str(empty), "--meta", str(meta), "--out", str(tmp_path / "out")])
        == 0
    )
    assert (tmp_path / "out" / "perception.png").is_file()


def test_real_crema_d_metadata(cremad_meta):
    """The real CSVs (../shared/cremad-meta, skipped when absent): 7442 clips in three modalities."""
    votes = read_votes(cremad_meta / "tabulatedVotes.csv")
    with open(cremad_meta / "SentenceFilenames.csv") as handle:
        published = {row["Filename"] for row in csv.DictReader(handle)}
    assert len(published) == 7442
    for modality in ("voice", "face", "audiovisual"):
        assert set(votes[modality]) == published, modality
    # The plurality we compute from the counts is CREMA-D's own summaryTable VoiceVote (ties "N:S").
    with open(cremad_meta / "summaryTable.csv") as handle:
        voice_vote = {row["FileName"]: row["VoiceVote"] for row in csv.DictReader(handle)}
    for clip_id, counts in votes["voice"].items():
        top = ":".join(letter for letter, n in zip("ADFHNS", counts) if n == counts.max())
        assert top == voice_vote[clip_id], clip_id
    demographics = read_demographics(cremad_meta / "VideoDemographics.csv")
    assert len(demographics) == 91
    assert sum(actor["sex"] == "Male" for actor in demographics.values()) == 48
    clip_ids = sorted(votes["voice"])
    labels = np.array([EMOTIONS.index(clip_id.split("_")[2]) for clip_id in clip_ids])
    accuracy = rater_accuracy(np.stack([votes["voice"][c] for c in clip_ids]), labels)
    assert accuracy["n_responses"] == 68568
    assert accuracy["per_response"] == pytest.approx(40.00, abs=0.01)  # the CREMA-D paper says 40.9


def test_command_with_no_runs_at_all_prints_the_raters(tmp_path, capsys):
    """No model trained yet: `--runs` left out, the raters' figures alone."""
    meta, out = write_meta(tmp_path / "meta"), tmp_path / "out"
    assert cli.main(["perception", "--meta", str(meta), "--out", str(out)]) == 0
    with open(out / "raters.csv") as handle:
        raters = {row["modality"]: row for row in csv.DictReader(handle)}
    assert float(raters["voice"]["per_response"]) == pytest.approx(43.75)
    with open(out / "models.csv") as handle:
        assert list(csv.DictReader(handle)) == []
    assert "| voice | 40.90 | 4 |" in capsys.readouterr().out


def test_command_with_no_runs_on_the_real_metadata(cremad_meta, tmp_path, capsys):
    assert cli.main(["perception", "--meta", str(cremad_meta), "--out", str(tmp_path)]) == 0
    assert "| voice | 40.90 | 7442 | 68568 | 40.00 |" in capsys.readouterr().out  # published 40.9, votes 40.0


def test_a_model_without_voted_clips_is_named_in_the_error():
    predictions = runs.Predictions(
        Path("runs/emodb/paper/model2/seed0"),
        {},
        np.array(["03a01Wa"]),
        np.array(["03"]),
        np.array(["ANG"]),
        np.array(["ANG"]),
        np.full((1, 6), 1 / 6),
        ["03"],
        [],
        [],
        {},
    )
    with pytest.raises(CremadError, match="model2/seed0: none of the predicted clips has voice votes"):
        compare_model(predictions, {"1001_DFA_ANG_XX": np.ones(6)})
