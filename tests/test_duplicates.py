"""Clips with identical bytes: reported one group per line with every clip's label, kept by
default as the paper kept them, left out with --drop-conflicting when the labels disagree."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from test_features import write_corpus

from cremad import duplicates, runs
from cremad.features import cache_key, file_list, load_features

REAL_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "cremad-samples" / "AudioWAV"


def identical_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if "identical audio" in record.getMessage()]


@pytest.fixture
def corpus(tmp_path) -> Path:
    """Four clips, then one copied under another emotion and one under the same emotion."""
    folder = tmp_path / "CREMA-D" / "AudioWAV"
    write_corpus(
        folder, ["1001_DFA_ANG_XX.wav", "1001_DFA_SAD_XX.wav", "1002_IEO_HAP_HI.wav", "1002_DFA_NEU_XX.wav"]
    )
    shutil.copy(folder / "1001_DFA_ANG_XX.wav", folder / "1001_DFA_FEA_XX.wav")
    shutil.copy(folder / "1002_IEO_HAP_HI.wav", folder / "1002_IEO_HAP_LO.wav")
    return folder.parent


def test_groups_of_equal_digests():
    digests = {"b": "1", "a": "1", "c": "2", "e": "3", "d": "3", "f": "3", "g": "4"}
    assert duplicates.identical_groups(digests) == [["a", "b"], ["d", "e", "f"]]
    assert duplicates.identical_groups({"a": "1", "b": "2"}) == []


def test_identical_clips_are_reported_and_kept_by_default(corpus, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        features = load_features(corpus, cache_dir=tmp_path / "cache", jobs=1, progress=False)
    assert identical_lines(caplog) == [
        f"{corpus}: identical audio under 2 labels: 1001_DFA_ANG_XX (ANG) = 1001_DFA_FEA_XX (FEA); "
        "all kept (--drop-conflicting leaves them out)",
        f"{corpus}: identical audio under one label: 1002_IEO_HAP_HI (HAP) = 1002_IEO_HAP_LO (HAP); all kept",
    ]
    assert len(features.clips) == 6 and features.excluded == [] and not features.drop_conflicting


def test_a_file_copied_twice_into_a_manifest_is_reported(tmp_path, caplog):
    write_corpus(tmp_path / "wav", ["a.wav", "b.wav"])
    shutil.copy(tmp_path / "wav" / "a.wav", tmp_path / "wav" / "a-copy.wav")
    manifest = tmp_path / "clips.csv"
    rows = ["wav/a.wav,s1,angry", "wav/a-copy.wav,s1,anger", "wav/b.wav,s2,sad"]
    manifest.write_text("path,speaker,emotion\n" + "\n".join(rows) + "\n")
    with caplog.at_level(logging.WARNING):
        features = load_features(
            manifest, "manifest", cache_dir=tmp_path / "cache", jobs=1, progress=False, drop_conflicting=True
        )
    assert identical_lines(caplog) == [
        f"{manifest}: identical audio under one label: wav_a (ANG) = wav_a-copy (ANG); all kept"
    ]
    assert sorted(features.clip_ids) == ["wav_a", "wav_a-copy", "wav_b"]


def test_drop_conflicting_leaves_out_both_clips_and_changes_the_cache_key(corpus, tmp_path, caplog):
    cache = tmp_path / "cache"
    kept = load_features(corpus, cache_dir=cache, jobs=1, progress=False)
    dropped = load_features(corpus, cache_dir=cache, jobs=1, progress=False, drop_conflicting=True)
    assert sorted(set(kept.clip_ids) - set(dropped.clip_ids)) == ["1001_DFA_ANG_XX", "1001_DFA_FEA_XX"]
    assert {"1002_IEO_HAP_HI", "1002_IEO_HAP_LO"} <= set(dropped.clip_ids)  # one label: kept
    assert dropped.drop_conflicting and dropped.cache_key != kept.cache_key
    assert [Path(path).name for path, _ in dropped.excluded] == ["1001_DFA_ANG_XX.wav", "1001_DFA_FEA_XX.wav"]
    assert "same audio as 1001_DFA_FEA_XX (FEA)" in dropped.excluded[0][1]
    assert len(list(cache.glob("*.npz"))) == 2 and len(list(cache.glob("*-sha256-*.json"))) == 1
    # A rerun reads the hashes and the features from the cache, and reports the groups again.
    caplog.clear()
    with caplog.at_level(logging.INFO):
        again = load_features(corpus, cache_dir=cache, jobs=1, progress=False, drop_conflicting=True)
    assert again.cache_key == dropped.cache_key and list(again.clip_ids) == list(dropped.clip_ids)
    assert again.drop_conflicting and again.excluded == dropped.excluded
    assert "cache hit" in caplog.text and "sha256 of" not in caplog.text
    assert "all left out (--drop-conflicting)" in identical_lines(caplog)[0]


def test_the_default_cache_key_is_the_one_before_the_option(corpus):
    from cremad.config import FeatureConfig
    from cremad.corpus import scan

    clips, _ = scan(corpus)
    default = cache_key(clips, FeatureConfig(), "cremad", False, False)
    assert cache_key(clips, FeatureConfig(), "cremad", False, False, files=file_list(clips)) == default
    assert cache_key(clips, FeatureConfig(), "cremad", False, False, drop_conflicting=True) != default


def test_a_changed_file_is_hashed_again(corpus, tmp_path, caplog):
    cache = tmp_path / "cache"
    load_features(corpus, cache_dir=cache, jobs=1, progress=False)
    copy = corpus / "AudioWAV" / "1001_DFA_FEA_XX.wav"
    write_corpus(copy.parent, ["1001_DFA_FEA_XX.wav"], seconds=0.9)  # now its own recording
    caplog.clear()
    with caplog.at_level(logging.INFO):
        load_features(corpus, cache_dir=cache, jobs=1, progress=False)
    assert "sha256 of 6 clips" in caplog.text
    assert len(identical_lines(caplog)) == 1 and "1002_IEO_HAP_HI (HAP)" in identical_lines(caplog)[0]


def test_run_json_records_the_choice(corpus, tmp_path):
    from cremad.config import ExperimentConfig

    for drop in (False, True):
        features = load_features(
            corpus, cache_dir=tmp_path / "cache", jobs=1, progress=False, drop_conflicting=drop
        )
        record = runs.run_record(ExperimentConfig(), "model1", "cremad", corpus, features)
        assert record["drop_conflicting"] is drop and record["feature_cache_key"] == features.cache_key


@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="needs ../shared/cremad-samples")
def test_real_clips_copied_under_a_second_label(tmp_path, caplog):
    folder = tmp_path / "CREMA-D" / "AudioWAV"
    folder.mkdir(parents=True)
    for clip in sorted(REAL_CLIPS.glob("*.wav")):
        shutil.copy(clip, folder / clip.name)
    shutil.copy(REAL_CLIPS / "1015_DFA_ANG_XX.wav", folder / "1015_DFA_SAD_XX.wav")  # Fig. 2's clip
    cache = tmp_path / "cache"
    with caplog.at_level(logging.WARNING):
        kept = load_features(folder.parent, cache_dir=cache, jobs=1, progress=False)
    assert identical_lines(caplog) == [
        f"{folder.parent}: identical audio under 2 labels: 1015_DFA_ANG_XX (ANG) = 1015_DFA_SAD_XX (SAD); "
        "all kept (--drop-conflicting leaves them out)"
    ]  # the 30 real clips are 30 different recordings
    dropped = load_features(folder.parent, cache_dir=cache, jobs=1, progress=False, drop_conflicting=True)
    assert len(kept.clips) == 31 and len(dropped.clips) == 29
    assert not {"1015_DFA_ANG_XX", "1015_DFA_SAD_XX"} & set(dropped.clip_ids)
    assert dropped.cache_key != kept.cache_key
    digests = json.loads(next(cache.glob("*-sha256-*.json")).read_text())
    assert digests["1015_DFA_ANG_XX"] == digests["1015_DFA_SAD_XX"] and len(set(digests.values())) == 30


@pytest.mark.slow
def test_cremad_loso_with_drop_conflicting_trains_and_tests_without_the_pair(tmp_path):
    from cremad.cli import main
    from cremad.synth import write_corpus as write_demo

    folder = write_demo(tmp_path / "demo", actors=3, seed=0)
    shutil.copy(folder / "1001_DFA_ANG_XX.wav", folder / "1001_DFA_FEA_XX.wav")  # CREMA-D's kind of pair
    argv = ["loso", "--model", "1", "--data", str(tmp_path / "demo"), "--runs", str(tmp_path / "runs")]
    argv += ["--cache-dir", str(tmp_path / "cache"), "--epochs", "1", "--folds", "1001", "--no-save-models"]
    assert main([*argv, "--drop-conflicting"]) == 0
    run_dir = runs.run_dir(tmp_path / "runs", "cremad", "paper", "model1", 0)
    record = json.loads((run_dir / runs.RUN_JSON).read_text())
    assert record["drop_conflicting"] is True and record["n_clips"] == 3 * 82 - 2
    predictions = (runs.fold_dir(run_dir, "1001") / runs.PREDICTIONS).read_text()
    assert "1001_DFA_SAD_XX" in predictions
    assert "1001_DFA_ANG_XX" not in predictions and "1001_DFA_FEA_XX" not in predictions
    assert len(predictions.strip().splitlines()) == 1 + 82 - 2  # the header and the test actor's clips
