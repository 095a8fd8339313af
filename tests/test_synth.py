import hashlib

import numpy as np
import soundfile

from cremad.config import EMOTIONS
from cremad.corpus import scan
from cremad.synth import clip_names, synthesize_clip, write_corpus


def digest(folder):
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.glob("*.wav"))}


def test_same_seed_gives_byte_identical_files(tmp_path):
    first = write_corpus(tmp_path / "a", actors=1, seed=3)
    second = write_corpus(tmp_path / "b", actors=1, seed=3)
    assert digest(first) == digest(second)
    other = write_corpus(tmp_path / "c", actors=1, seed=4)
    assert digest(other) != digest(first)


def test_rewriting_with_another_seed_replaces_files(tmp_path):
    folder = write_corpus(tmp_path, actors=1, seed=1)
    before = digest(folder)
    write_corpus(tmp_path, actors=1, seed=2)
    assert digest(folder) != before
    assert not list(folder.glob(".*"))


def test_corpus_has_cremads_design(tiny_corpus):
    clips, rejected = scan(tiny_corpus)
    assert not rejected
    assert len(clips) == 3 * 82
    assert {clip.sentence for clip in clips} == {name[1] for name in clip_names(["1001"])}
    assert len({clip.sentence for clip in clips}) == 12
    assert {clip.emotion for clip in clips} == set(EMOTIONS)
    assert {clip.level for clip in clips} == {"LO", "MD", "HI", "XX"}


def test_clips_vary_in_length_and_have_silent_edges(tiny_corpus):
    lengths = []
    for path in sorted((tiny_corpus / "AudioWAV").glob("1001_*.wav"))[:20]:
        signal, rate = soundfile.read(path)
        assert rate == 16_000
        lengths.append(len(signal))
        edge = int(0.05 * rate)
        assert np.abs(signal[:edge]).max() < 0.01 and np.abs(signal[-edge:]).max() < 0.01
        assert np.abs(signal).max() > 0.05
    assert max(lengths) > 1.3 * min(lengths)


def test_emotions_differ_in_prosody():
    angry = synthesize_clip(0, "1001", "DFA", "ANG", "HI")
    sad = synthesize_clip(0, "1001", "DFA", "SAD", "HI")
    rms = lambda signal: np.sqrt(np.mean(signal[np.abs(signal) > 0.01] ** 2))  # noqa: E731
    assert rms(angry) > rms(sad)
    assert len(sad) > len(angry)  # sad speech is slower


def test_other_sample_rate(tmp_path):
    folder = write_corpus(tmp_path, actors=1, seed=0, sample_rate=22_050)
    assert soundfile.info(next(folder.glob("*.wav"))).samplerate == 22_050
