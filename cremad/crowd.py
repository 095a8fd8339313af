"""CREMA-D's crowd ratings: reading them, and the measures that put people beside the models.

The paper claims that "an utterance can be expressed as a mixture of possible emotions". CREMA-D
(Cao et al. 2014) lets us put that to people: every clip was rated by 4-12 listeners who heard
the voice only (rows 1xxxxx of `tabulatedVotes.csv`; 2xxxxx are face only, 3xxxxx audio-visual).

Definitions (n_i votes for clip i, v_i[e] of them for emotion e, y_i the intended emotion):

- raters' per-response accuracy = sum_i v_i[y_i] / sum_i n_i, every response counted once. Of the
  measures here it is the one that matches the CREMA-D paper's rates (40.9 % voice, 58.2 % face,
  63.6 % audio-visual) in all three modalities: the published votes give 40.0, 57.4 and 63.1 %,
  while the majority rates give 41.6, 66.3 and 72.2 %;
- raters' majority accuracy: the raters' majority is the plurality of the votes. "strict" counts a
  clip right only when the intended emotion is the single plurality; "ties split" gives 1/k to a
  clip whose intended emotion is one of k tied pluralities (a tie broken by a fair coin);
- a model agrees with the raters' majority by the same tie rule: 1/k when its top emotion is one
  of the k tied plurality emotions, 0 otherwise;
- Jensen-Shannon divergence (bits, 0..1) between a probability vector and the vote shares
  v_i / n_i, averaged over clips. `scipy.spatial.distance.jensenshannon` returns the JS
  *distance*, the square root of the divergence; we square it. Baselines: the uniform vector, the
  one-hot intended label, and the label prior: the mean vote shares of all voice clips with the
  same intended emotion (people's typical confusion for that emotion; a model beating it says
  something about this clip's own mixture, not just its label);
- Pearson and Spearman correlation, per emotion, between p_<EMO> and the vote share for it.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.stats import pearsonr, spearmanr

from cremad import CremadError
from cremad.config import EMOTIONS
from cremad.runs import Predictions

VOTE_LETTERS = {"A": "ANG", "D": "DIS", "F": "FEA", "H": "HAP", "N": "NEU", "S": "SAD"}
VOTE_COLUMNS = tuple({emotion: letter for letter, emotion in VOTE_LETTERS.items()}[e] for e in EMOTIONS)
MODALITIES = {"1": "voice", "2": "face", "3": "audiovisual"}  # first digit of the row id
PUBLISHED_RATER_ACCURACY = {"voice": 40.9, "face": 58.2, "audiovisual": 63.6}  # Cao et al. 2014
AGE_BANDS = ((20, "20-29"), (30, "30-39"), (40, "40-49"), (50, "50-59"), (60, "60+"))  # actors are 20-74
GROUP_ATTRIBUTES = ("sex", "age_band", "race", "ethnicity")


# ---------------------------------------------------------------------------- reading the metadata
def _read_csv(path: Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected CREMA-D's {path.name})")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in required if column not in (reader.fieldnames or [])]
        if missing:
            raise CremadError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}")
        return list(reader)


def read_votes(path: str | Path) -> dict[str, dict[str, np.ndarray]]:
    """Read `tabulatedVotes.csv`: {modality: {clip id: vote counts (6,) in EMOTIONS order}}."""
    path = Path(path)
    votes: dict[str, dict[str, np.ndarray]] = {name: {} for name in MODALITIES.values()}
    for line, row in enumerate(_read_csv(path, ("", *VOTE_COLUMNS, "fileName", "numResponses")), start=2):
        modality = MODALITIES.get(row[""][:1])
        if modality is None or len(row[""]) != 6:
            raise CremadError(f"{path}:{line}: row id {row['']!r} is not 1xxxxx/2xxxxx/3xxxxx")
        try:
            counts = np.array([int(row[letter]) for letter in VOTE_COLUMNS])
            total = int(row["numResponses"])
        except ValueError as error:
            raise CremadError(f"{path}:{line}: {error}") from error
        if counts.sum() != total or total <= 0:
            raise CremadError(f"{path}:{line}: votes sum to {counts.sum()}, numResponses is {total}")
        if row["fileName"] in votes[modality]:
            raise CremadError(f"{path}:{line}: {row['fileName']} listed twice for {modality}")
        votes[modality][row["fileName"]] = counts
    return votes


def age_band(age: int) -> str:
    """The AGE_BANDS label of an age ("50-59"); ages below the first band get "<20"."""
    label = f"<{AGE_BANDS[0][0]}"
    for lower, band in AGE_BANDS:
        if age >= lower:
            label = band
    return label


def read_demographics(path: str | Path) -> dict[str, dict[str, str]]:
    """Read `VideoDemographics.csv`: {actor id: {sex, age_band, race, ethnicity}}."""
    path = Path(path)
    actors = {}
    for line, row in enumerate(_read_csv(path, ("ActorID", "Age", "Sex", "Race", "Ethnicity")), start=2):
        try:
            age = int(row["Age"])
        except ValueError as error:
            raise CremadError(f"{path}:{line}: age {row['Age']!r} is not a number") from error
        actors[row["ActorID"]] = {
            "sex": row["Sex"],
            "age_band": age_band(age),
            "race": row["Race"],
            "ethnicity": row["Ethnicity"],
        }
    return actors


def intended_labels(clip_ids) -> np.ndarray:
    """EMOTIONS index of the intended emotion, from the name (1001_DFA_ANG_XX)."""
    return np.array([EMOTIONS.index(clip_id.split("_")[2]) for clip_id in clip_ids])


# ---------------------------------------------------------------------------- measures
def plurality_credit(counts: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """1/k where `labels` is one of the k tied most-voted emotions, else 0. counts (n, 6)."""
    top = counts == counts.max(axis=1, keepdims=True)  # (n, 6)
    return top[np.arange(len(labels)), labels] / top.sum(axis=1)


def js_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in bits, row by row (the square of scipy's JS distance)."""
    return jensenshannon(p, q, base=2, axis=1) ** 2


def rater_accuracy(counts: np.ndarray, labels: np.ndarray) -> dict:
    """The raters' accuracy against the intended emotion, four ways (see the module docstring)."""
    hits = counts[np.arange(len(labels)), labels]
    credit = plurality_credit(counts, labels)
    per_emotion = {
        emotion: 100 * hits[labels == k].sum() / counts[labels == k].sum()
        if (labels == k).any()
        else float("nan")
        for k, emotion in enumerate(EMOTIONS)
    }
    top = counts == counts.max(axis=1, keepdims=True)
    return {
        "n_clips": len(labels),
        "n_responses": int(counts.sum()),
        "per_response": 100 * hits.sum() / counts.sum(),
        "per_emotion_mean": float(np.nanmean(list(per_emotion.values()))),
        "majority_strict": 100 * float(np.mean(credit == 1)),
        "majority_ties_split": 100 * float(credit.mean()),
        "tied_clips": int((top.sum(axis=1) > 1).sum()),
        **{f"per_response_{emotion}": value for emotion, value in per_emotion.items()},
    }


def emotion_mean_shares(votes: dict[str, np.ndarray]) -> np.ndarray:
    """(6, 6): row e is the mean vote shares of the clips whose intended emotion is e."""
    clip_ids = sorted(votes)
    counts = np.stack([votes[c] for c in clip_ids])
    shares, labels = counts / counts.sum(axis=1, keepdims=True), intended_labels(clip_ids)
    return np.stack(
        [
            shares[labels == k].mean(axis=0) if (labels == k).any() else np.full(6, 1 / 6)
            for k in range(len(EMOTIONS))
        ]
    )


def compare_model(predictions: Predictions, voice_votes: dict[str, np.ndarray]) -> dict:
    """Accuracy, agreement with the raters' majority, JS divergence and correlations of one
    model's pooled LOSO predictions on the clips that have voice votes."""
    keep = np.array([clip_id in voice_votes for clip_id in predictions.clip_ids], dtype=bool)
    if not keep.any():
        raise CremadError(
            f"{predictions.run_dir}: none of the predicted clips has voice votes (not CREMA-D names?)"
        )
    clip_ids = predictions.clip_ids[keep]
    counts = np.stack([voice_votes[clip_id] for clip_id in clip_ids])  # (n, 6)
    shares = counts / counts.sum(axis=1, keepdims=True)
    probabilities = predictions.probabilities[keep]  # (n, 6)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)  # undo the 6-decimal rounding
    true = np.array([EMOTIONS.index(code) for code in predictions.true[keep]])
    predicted = np.array([EMOTIONS.index(code) for code in predictions.predicted[keep]])
    uniform = np.full_like(shares, 1 / len(EMOTIONS))
    label_prior = emotion_mean_shares(voice_votes)[true]  # (n, 6)
    jsd_model = js_divergence(probabilities, shares)
    jsd_onehot = js_divergence(np.eye(len(EMOTIONS))[true], shares)
    correlations = {}
    with warnings.catch_warnings():  # a constant column (a class never predicted) gives nan
        warnings.simplefilter("ignore")
        for k, emotion in enumerate(EMOTIONS):
            correlations[emotion] = (
                float(pearsonr(probabilities[:, k], shares[:, k])[0]),
                float(spearmanr(probabilities[:, k], shares[:, k])[0]),
            )
    return {
        "n_clips": int(keep.sum()),
        "n_without_votes": int((~keep).sum()),
        "accuracy_intended": 100 * float(np.mean(predicted == true)),
        "agreement_majority": 100 * float(plurality_credit(counts, predicted).mean()),
        "raters_majority_intended": 100 * float(plurality_credit(counts, true).mean()),
        "jsd_model": float(jsd_model.mean()),
        "jsd_uniform": float(js_divergence(uniform, shares).mean()),
        "jsd_onehot": float(jsd_onehot.mean()),
        "jsd_label_prior": float(js_divergence(label_prior, shares).mean()),
        "closer_than_onehot": 100 * float(np.mean(jsd_model < jsd_onehot)),
        "correlations": correlations,
        "clip": clip_ids,
        "correct": predicted == true,
        "jsd_per_clip": jsd_model,
    }


def group_accuracy(
    clip_ids, hits: np.ndarray, totals: np.ndarray, demographics: dict, attribute: str
) -> dict:
    """{group: (n_actors, n_clips, accuracy %)} split by an actor attribute; accuracy is
    sum(hits) / sum(totals) (a model: correct / 1 per clip; the raters: votes for the intended
    emotion / responses)."""
    actors = np.array([clip_id.split("_")[0] for clip_id in clip_ids])
    groups = np.array([demographics.get(actor, {}).get(attribute, "unknown actor") for actor in actors])
    result = {}
    for group in sorted(set(groups)):
        members = groups == group
        accuracy = 100 * float(hits[members].sum() / totals[members].sum())
        result[group] = (len(set(actors[members])), int(members.sum()), accuracy)
    return result


def find_meta_file(meta: Path, name: str) -> Path:
    """`name` in the metadata folder itself or, as `cremad download` lays out the CREMA-D
    checkout, in its processedResults/ subfolder."""
    for candidate in (meta / name, meta / "processedResults" / name):
        if candidate.is_file():
            return candidate
    raise CremadError(f"{meta}: no {name} (looked in the folder and its processedResults/)")
