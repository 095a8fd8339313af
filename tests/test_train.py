"""`cremad train`: every actor trains (a few for early stopping), no placeholder test actor, and
the sidecar states the standardization the final model was trained with."""

import json

import numpy as np
import pytest
from test_loso import ACTORS, TINY, tiny_features

from cremad import CremadError
from cremad.config import replace
from cremad.predict import load_trained_model
from cremad.scaling import fit_scaler
from cremad.train import train_on_all_actors


@pytest.mark.slow
@pytest.mark.parametrize("refit", [False, True])
def test_sidecar_states_what_the_final_model_was_trained_with(tmp_path, refit):
    features = tiny_features()
    config = replace(TINY, {"train": {"max_epochs": 1, "refit": refit}})
    sidecar = train_on_all_actors(config, features, 3, tmp_path / "model3.keras")
    assert sidecar["n_clips"] == len(features.clips) and sidecar["actors"] == list(
        ACTORS
    )  # every clip, nothing else
    assert len(sidecar["validation_actors"]) == 1  # 25 % of 5 actors
    scaler = sidecar["scaler"]
    if refit:  # retrained on every actor: the statistics of them all
        assert scaler["refit"] and scaler["actors"] == list(ACTORS)
        assert (tmp_path / "model3.history-refit.csv").is_file()
    else:  # the early-stopped model: the statistics of the actors it fitted
        assert not scaler["refit"]
        assert scaler["actors"] == sorted(set(ACTORS) - set(sidecar["validation_actors"]))
    mean, std = fit_scaler(features.features[np.isin(features.actors, scaler["actors"])])
    np.testing.assert_allclose(scaler["mean"], mean, rtol=1e-6)
    np.testing.assert_allclose(scaler["std"], std, rtol=1e-6)
    loaded = load_trained_model(tmp_path / "model3.keras")  # what `cremad predict` will apply
    np.testing.assert_allclose(loaded.mean, mean, rtol=1e-6)
    assert json.loads((tmp_path / "model3.json").read_text()) == sidecar
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers


def test_speaker_normalization_cannot_be_deployed_and_is_refused(tmp_path):
    config = replace(TINY, {"train": {"speaker_normalization": True}})
    with pytest.raises(CremadError, match="speaker_normalization"):
        train_on_all_actors(config, tiny_features(), 3, tmp_path / "model3.keras")
    assert not list(tmp_path.iterdir())


def test_one_actor_trains_without_early_stopping_and_is_refused_with_it(tmp_path):
    features = tiny_features(actors=("1001",))
    with pytest.raises(CremadError, match="early_stopping.*at least 2 actors.*has 1"):
        train_on_all_actors(TINY, features, 3, tmp_path / "stopped.keras")
    assert not list(tmp_path.iterdir())
    config = replace(TINY, {"train": {"max_epochs": 1, "early_stopping": False}})
    sidecar = train_on_all_actors(config, features, 3, tmp_path / "model3.keras")
    assert sidecar["actors"] == ["1001"] and sidecar["validation_actors"] == []
    assert (tmp_path / "model3.keras").is_file()
