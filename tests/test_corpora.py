"""Other corpora: CSV manifests, CASIA's folder layout, labels with no CREMA-D class, and
classes a corpus lacks."""

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cremad.cli import COMMANDS, build_parser, main
from cremad.config import EMOTIONS, FeatureConfig
from cremad.corpus import CORPORA, PRESETS, CorpusError, emotion_code, scan
from cremad.features import cache_key, load_features
from cremad.scaling import class_weights


def write_wav(path, seconds=0.3, frequency=220.0, rate=16_000):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(
        path, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), rate, subtype="PCM_16"
    )


def write_manifest(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def casia_tree(tmp_path):
    """2 speakers x (angry, sad, surprise) x ids 201, 202: the same file names in every folder."""
    root = tmp_path / "casia"
    for speaker_index, speaker in enumerate(("liuchanhg", "wangzhe")):
        for emotion_index, emotion in enumerate(("angry", "sad", "surprise")):
            for sentence in (201, 202):
                frequency = 150 + 40 * speaker_index + 20 * emotion_index + sentence - 200
                write_wav(root / speaker / emotion / f"{sentence}.wav", 0.2 + 0.05 * emotion_index, frequency)
    (root / "README.md").write_text("not a clip")
    write_wav(root / "wangzhe" / "stray.wav")  # not <speaker>/<emotion>/<id>.wav
    return root


def test_emotion_labels_match_case_insensitively():
    labels = ("Anger", "ANGRY", " happy ", "Joy", "fearful", "Sadness", "neutral", "disgust")
    assert [emotion_code(label) for label in labels] == [
        "ANG",
        "ANG",
        "HAP",
        "HAP",
        "FEA",
        "SAD",
        "NEU",
        "DIS",
    ]
    assert all(emotion_code(code) == code for code in EMOTIONS)
    assert [emotion_code(label) for label in ("surprise", "boredom", "calm", "")] == [None] * 4


def test_casia_layout_gives_unique_ids_and_drops_surprise(casia_tree, caplog):
    with caplog.at_level(logging.INFO):
        clips, rejected = scan(casia_tree, "casia")
    assert [clip.clip_id for clip in clips] == [
        "liuchanhg_angry_201",
        "liuchanhg_angry_202",
        "liuchanhg_sad_201",
        "liuchanhg_sad_202",
        "wangzhe_angry_201",
        "wangzhe_angry_202",
        "wangzhe_sad_201",
        "wangzhe_sad_202",
    ]
    assert {clip.speaker for clip in clips} == {"liuchanhg", "wangzhe"}
    assert [clip.emotion for clip in clips[:4]] == ["ANG", "ANG", "SAD", "SAD"]
    assert clips[0].sentence == "201" and clips[0].path == str(casia_tree / "liuchanhg" / "angry" / "201.wav")
    assert [os.path.basename(item.path) for item in rejected] == ["stray.wav"]
    assert "dropped 4 clips whose emotion has no CREMA-D class (surprise 4)" in caplog.text
    with pytest.raises(CorpusError, match="stray.wav"):
        scan(casia_tree, "casia", strict=True)


def test_casia_cache_key_follows_clip_ids_not_file_names(casia_tree, tmp_path):
    clips, _ = scan(casia_tree, "casia")
    key = cache_key(clips, FeatureConfig(), "casia", False, False)
    # The same file under another emotion folder is another clip; 201.wav alone cannot say so.
    os.rename(casia_tree / "wangzhe" / "sad" / "201.wav", casia_tree / "wangzhe" / "angry" / "203.wav")
    os.rename(casia_tree / "wangzhe" / "angry" / "201.wav", casia_tree / "wangzhe" / "sad" / "201.wav")
    os.rename(casia_tree / "wangzhe" / "angry" / "203.wav", casia_tree / "wangzhe" / "angry" / "201.wav")
    swapped, _ = scan(casia_tree, "casia")
    assert cache_key(swapped, FeatureConfig(), "casia", False, False) != key


def test_moved_corpus_reuses_its_cache(casia_tree, tmp_path):
    cache = tmp_path / "cache"
    first = load_features(casia_tree, "casia", cache_dir=cache, jobs=1, progress=False)
    assert first.features.shape[0] == 8 and len(set(first.actors)) == 2
    moved = shutil.copytree(casia_tree, tmp_path / "moved", copy_function=shutil.copy2)
    again = load_features(moved, "casia", cache_dir=cache, jobs=1, progress=False)
    assert again.cache_key == first.cache_key and len(list(cache.glob("*.npz"))) == 1
    assert list(again.clip_ids) == list(first.clip_ids)
    assert all(clip.path.startswith(str(moved)) for clip in again.clips)
    np.testing.assert_array_equal(again.features, first.features)


def test_manifest_paths_are_relative_to_it_and_extras_kept(tmp_path):
    write_wav(tmp_path / "data" / "audio" / "s1" / "a.wav")
    write_wav(tmp_path / "data" / "audio" / "s2" / "b.wav")
    manifest = write_manifest(
        tmp_path / "data" / "corpus.csv",
        ["path,speaker,emotion,gender", "audio/s1/a.wav,s1,Angry,f", "audio/s2/b.wav, s2 ,HAPPINESS,m"],
    )
    clips, rejected = scan(manifest, "manifest")
    assert rejected == []
    assert [(clip.clip_id, clip.speaker, clip.emotion, clip.extra) for clip in clips] == [
        ("audio_s1_a", "s1", "ANG", {"gender": "f"}),
        ("audio_s2_b", "s2", "HAP", {"gender": "m"}),
    ]
    assert clips[0].path == str(tmp_path / "data" / "audio" / "s1" / "a.wav")


def test_manifest_unknown_label_dropped_and_missing_files_listed(tmp_path, caplog):
    for name in ("a", "b", "c", "d"):
        write_wav(tmp_path / f"{name}.wav")
    manifest = write_manifest(
        tmp_path / "corpus.csv",
        [
            "path,speaker,emotion,clip",
            "a.wav,1,sad,a",
            "b.wav,1,surprise,b",
            "c.wav,2,calm,c",
            "d.wav,2,neutral,d",
            "gone1.wav,2,fear,g1",
            "gone2.wav,1,fear,g2",
            "gone3.wav,1,Surprise,g3",
        ],
    )
    with pytest.raises(CorpusError, match="2 problem") as error:
        scan(manifest, "manifest")
    assert (
        "gone1.wav" in str(error.value)
        and "gone2.wav" in str(error.value)
        and "--skip-bad" in str(error.value)
    )
    assert "gone3.wav" not in str(error.value)  # dropped for its label before its file is looked for
    with caplog.at_level(logging.INFO):
        clips, _ = scan(manifest, "manifest", skip_bad=True)
    assert [(clip.clip_id, clip.emotion) for clip in clips] == [("a", "SAD"), ("d", "NEU")]
    assert "dropped 3 clips whose emotion has no CREMA-D class (calm 1, surprise 2)" in caplog.text
    assert "skipped 2 missing file(s)" in caplog.text and "gone2.wav" in caplog.text


def test_manifest_duplicates_are_an_error(tmp_path):
    write_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav")
    manifest = write_manifest(
        tmp_path / "dup.csv", ["path,speaker,emotion", "a.wav,1,sad", "./a.wav,2,sad", "b.wav,2,sad"]
    )
    with pytest.raises(CorpusError, match=r"path .*a\.wav is listed more than once"):
        scan(manifest, "manifest")
    same_id = write_manifest(
        tmp_path / "ids.csv", ["path,speaker,emotion,clip", "a.wav,1,sad,x", "b.wav,2,sad,x"]
    )
    with pytest.raises(CorpusError, match="clip x is listed more than once"):
        scan(same_id, "manifest")


def test_manifest_missing_columns_and_empty_cells(tmp_path):
    write_wav(tmp_path / "a.wav")
    manifest = write_manifest(tmp_path / "m.csv", ["file,speaker,label", "a.wav,1,sad"])
    with pytest.raises(CorpusError, match=r"m\.csv: missing column\(s\) path, emotion"):
        scan(manifest, "manifest")
    with pytest.raises(CorpusError, match="no such manifest"):
        scan(tmp_path / "none.csv", "manifest")
    manifest = write_manifest(
        tmp_path / "e.csv", ["path,speaker,emotion", "a.wav,1,sad", "a.wav,,sad", "a.wav,1,sad,x"]
    )
    with pytest.raises(CorpusError, match="2 bad row") as error:
        scan(manifest, "manifest")
    assert "line 3: empty speaker" in str(error.value) and "line 4: more fields" in str(error.value)


def test_speaker_with_no_clips_is_an_error(tmp_path):
    write_wav(tmp_path / "a.wav")
    write_wav(tmp_path / "b.wav")
    manifest = write_manifest(tmp_path / "m.csv", ["path,speaker,emotion", "a.wav,1,sad", "b.wav,2,surprise"])
    with pytest.raises(CorpusError, match="speaker 2 has no clips"):
        scan(manifest, "manifest")


@pytest.mark.parametrize("corpus", ["casia", "emodb", "cremad"])
def test_manifest_of_a_preset_reads_back_the_same_clips(corpus, casia_tree, tmp_path, monkeypatch, capsys):
    if corpus == "casia":
        data = casia_tree
    else:
        data = tmp_path / corpus
        names = (
            ["03a01Wa.wav", "03a01La.wav", "10b02Fb.wav"]
            if corpus == "emodb"
            else ["1001_DFA_ANG_XX.wav", "1002_IEO_HAP_HI.wav"]
        )
        for name in names:
            write_wav(data / ("wav" if corpus == "emodb" else "AudioWAV") / name)
    out = tmp_path / "lists" / "corpus.csv"
    out.parent.mkdir()
    assert main(["manifest", "--corpus", corpus, "--data", str(data), "--out", str(out)]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["manifest", "--corpus", corpus, "--data", str(data)]) == 0
    (tmp_path / "stdout.csv").write_text(capsys.readouterr().out)
    expected = [
        (clip.clip_id, clip.speaker, clip.emotion, clip.sentence, clip.level, os.path.realpath(clip.path))
        for clip in scan(data, corpus)[0]
    ]
    for manifest in (out, tmp_path / "stdout.csv"):
        assert not os.path.isabs(manifest.read_text().splitlines()[1].split(",")[0])
        clips, _ = scan(manifest, "manifest")
        assert [
            (clip.clip_id, clip.speaker, clip.emotion, clip.sentence, clip.level, os.path.realpath(clip.path))
            for clip in clips
        ] == expected
    if corpus == "emodb":
        assert (
            "../emodb/wav/03a01La.wav,03,boredom,03a01La,a01,a\n" in out.read_text()
        )  # dropped on reading only


def test_every_corpus_option_takes_its_choices_from_corpus_corpora():
    seen = 0
    for command in COMMANDS:
        parser = build_parser(command)
        sub = parser._subparsers._group_actions[0].choices[command]
        for action in sub._actions:
            if "--corpus" in action.option_strings:
                assert tuple(action.choices) == CORPORA, command
                seen += 1
    assert seen >= 5  # features, loso, figures, train, manifest
    assert {"cremad", "emodb", "casia", "manifest"} <= set(CORPORA)


def test_bad_manifest_is_a_one_line_cli_error(tmp_path, capsys):
    manifest = write_manifest(tmp_path / "m.csv", ["file,speaker,emotion", "a.wav,1,sad"])
    assert (
        main(
            ["features", "--corpus", "manifest", "--data", str(manifest), "--cache-dir", str(tmp_path / "c")]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert "m.csv: missing column(s) path" in error and "Traceback" not in error
    assert not (tmp_path / "c").exists()


def test_class_weights_ignore_a_class_the_corpus_lacks():
    labels = np.repeat([0, 2, 3, 4, 5], [10, 20, 10, 10, 10])  # no DIS, as on CASIA
    weights = class_weights(labels, "balanced")
    assert weights[0] == pytest.approx(60 / (5 * 10)) and weights[2] == pytest.approx(60 / (5 * 20))
    # Balanced: every present class carries the same total weight, and the samples' weights average 1.
    totals = [weights[label] * np.sum(labels == label) for label in (0, 2, 3, 4, 5)]
    assert totals == pytest.approx([12.0] * 5)
    assert sum(totals) == pytest.approx(len(labels))


def test_real_casia(casia_dir, caplog):
    with caplog.at_level(logging.INFO):
        clips, rejected = scan(casia_dir, "casia")
    assert len(clips) == 1000 and rejected == []
    assert sorted({clip.speaker for clip in clips}) == ["ZhaoZuoxiang", "liuchanhg", "wangzhe", "zhaoquanyin"]
    assert "dropped 200 clips whose emotion has no CREMA-D class (surprise 200)" in caplog.text
    counts = np.bincount([clip.label for clip in clips], minlength=len(EMOTIONS))
    assert dict(zip(EMOTIONS, counts.tolist())) == {
        "ANG": 200,
        "DIS": 0,
        "FEA": 200,
        "HAP": 200,
        "NEU": 200,
        "SAD": 200,
    }
    assert len({clip.clip_id for clip in clips}) == 1000


def test_a_real_corpus_is_skipped_only_when_its_folder_is_absent(tmp_path):
    """conftest's real-corpus fixtures: no folder, a skip; a folder in another layout, a failure."""
    from conftest import real_corpus

    def outcome(folder):  # a skip must not pass for a failure, so neither is left to pytest
        try:
            real_corpus(folder, "emodb")
        except pytest.skip.Exception as skip:
            return "skip", str(skip)
        except pytest.fail.Exception as failure:
            return "fail", str(failure)
        return "ok", ""

    folder = tmp_path / "emodb"
    assert outcome(folder) == ("skip", f"{folder} is not present")
    (folder / "audio").mkdir(parents=True)  # Emo-DB's wav/ renamed: no clip where the reader looks
    soundfile.write(folder / "audio" / "03a01Fa.wav", np.zeros(1600, np.float32), 16_000)
    result, message = outcome(folder)
    assert result == "fail" and f"{folder} is there but cannot be read as emodb" in message
    (folder / "audio").rename(folder / "wav")
    assert outcome(folder) == ("ok", "")
    (folder / "wav" / "03a01Fa.wav").write_bytes(b"RIFF")  # a clip whose header does not parse
    result, message = outcome(folder)
    assert result == "fail" and "03a01Fa.wav" in message


@pytest.mark.parametrize("name", CORPORA)
def test_readme_corpus_table_has_each_preset_row(name):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert PRESETS[name].readme_row() in readme.splitlines()


def test_ravdess_speech_set_reads_with_the_preset(tmp_path, caplog):
    """Two actors' tones in RAVDESS's layout: calm and surprised dropped and counted, the song set
    and a video file refused by name, the speaker the name's last field."""
    root = tmp_path / "ravdess"
    for actor in ("01", "02"):
        for index, emotion in enumerate(("01", "02", "03", "04", "05", "06", "07", "08")):
            write_wav(
                root / f"Actor_{actor}" / f"03-01-{emotion}-01-01-01-{actor}.wav", frequency=200 + 20 * index
            )
    write_wav(root / "Actor_01" / "03-02-05-01-01-01-01.wav")  # song
    write_wav(root / "Actor_02" / "01-01-05-01-01-01-02.wav")  # audio-video
    with caplog.at_level(logging.INFO, logger="cremad.corpus"):
        clips, rejected = scan(root, "ravdess")
    assert len(clips) == 12 and {clip.speaker for clip in clips} == {"01", "02"}
    assert {clip.emotion for clip in clips} == set(EMOTIONS)
    assert [(clip.sentence, clip.level) for clip in clips[:1]] == [("01", "01")]
    assert "dropped 4 clips" in caplog.text and "calm 2" in caplog.text and "surprised 2" in caplog.text
    reasons = {Path(item.path).name: item.reason for item in rejected}
    assert "song set" in reasons["03-02-05-01-01-01-01.wav"]
    assert "audio-video" in reasons["01-01-05-01-01-01-02.wav"]
    with pytest.raises(CorpusError, match="2 file name"):
        scan(root, "ravdess", strict=True)
