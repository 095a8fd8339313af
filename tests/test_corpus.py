import logging

import pytest

from cremad.corpus import (
    CorpusError,
    audio_dir,
    check_against_published,
    parse_cremad_name,
    parse_emodb_name,
    scan,
)


def test_parse_cremad_name():
    clip = parse_cremad_name("/data/AudioWAV/1015_DFA_ANG_XX.wav")
    assert (clip.clip_id, clip.speaker, clip.sentence, clip.emotion, clip.level) == (
        "1015_DFA_ANG_XX",
        "1015",
        "DFA",
        "ANG",
        "XX",
    )
    assert clip.label == 0


def test_parse_cremad_legacy_one_letter_level():
    clip = parse_cremad_name("1040_ITH_SAD_X.wav")
    assert (clip.emotion, clip.level, clip.clip_id) == ("SAD", "XX", "1040_ITH_SAD_X")


@pytest.mark.parametrize(
    "name, reason",
    [
        ("1001_DFA_BOR_XX.wav", "emotion 'BOR'"),
        ("1001_DFA_ANG_QQ.wav", "level 'QQ'"),
        ("101_DFA_ANG_XX.wav", "name is not"),
        ("1001_DFA_ANG_XX.mp3", "not a .wav"),
    ],
)
def test_parse_cremad_bad_names(name, reason):
    with pytest.raises(ValueError, match=reason):
        parse_cremad_name(name)


def test_parse_emodb_names():
    clip = parse_emodb_name("03a01Wa.wav")
    assert (clip.speaker, clip.sentence, clip.emotion, clip.level) == ("03", "a01", "ANG", "a")
    assert parse_emodb_name("03a01La.wav") is None  # boredom has no CREMA-D class
    with pytest.raises(ValueError):
        parse_emodb_name("1001_DFA_ANG_XX.wav")


def test_scan_lists_bad_names_and_strict_fails(tmp_path, caplog):
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    for name in ["1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav", "notes.wav", "1003_DFA_XXX_XX.wav"]:
        (folder / name).write_bytes(b"")
    with caplog.at_level(logging.WARNING):
        clips, rejected = scan(tmp_path)
    assert [clip.clip_id for clip in clips] == ["1001_DFA_ANG_XX", "1002_IEO_HAP_HI"]
    assert sorted(item.path.split("/")[-1] for item in rejected) == ["1003_DFA_XXX_XX.wav", "notes.wav"]
    assert "notes.wav" in caplog.text and "subset of CREMA-D" in caplog.text
    with pytest.raises(CorpusError, match="2 file name"):
        scan(tmp_path, strict=True)


def test_audio_dir_accepts_root_or_audio_folder(tmp_path):
    folder = tmp_path / "AudioWAV"
    folder.mkdir()
    (folder / "1001_DFA_ANG_XX.wav").write_bytes(b"")
    assert audio_dir(tmp_path) == folder
    assert audio_dir(folder) == folder


def test_audio_dir_errors_name_the_path(tmp_path):
    with pytest.raises(CorpusError, match="no such folder"):
        audio_dir(tmp_path / "missing")
    with pytest.raises(CorpusError, match="no .wav files"):
        audio_dir(tmp_path)


def test_published_corpus_check_against_real_file_list(cremad_meta):
    import csv

    with open(cremad_meta / "AudioWAV-lfs-pointers.csv") as handle:
        names = [row["filename"] for row in csv.DictReader(handle)]
    clips = [parse_cremad_name(name) for name in names]
    assert len(clips) == 7442
    assert len({clip.speaker for clip in clips}) == 91
    assert check_against_published(clips) == []
    per_actor = {}
    for clip in clips:
        per_actor[clip.speaker] = per_actor.get(clip.speaker, 0) + 1
    assert round(sum(per_actor.values()) / len(per_actor)) == 82  # the paper: "an average of 82"
