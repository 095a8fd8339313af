"""`cremad download` against a fake GitHub (tree API, raw pointers, LFS media) and a fake mirror,
both served from 127.0.0.1 by a thread in the test: synthetic WAVs (and the 30 real clips of
../shared/cremad-samples where present), never the internet."""

from __future__ import annotations

import collections
import functools
import hashlib
import http.server
import io
import json
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from cremad import CremadError, cli, duplicates, lfs
from cremad import download as dl
from cremad.corpus import parse_cremad_name
from cremad.fetching import Retry

FIXTURES = Path(__file__).parent / "fixtures" / "cremad-meta"
REAL_POINTERS = Path(__file__).resolve().parents[2] / "shared" / "cremad-meta" / "AudioWAV-lfs-pointers.csv"
REAL_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "cremad-samples" / "AudioWAV"
# What GitHub answers for CREMA-D's LFS objects since March 2025 (the corpus's issue #15).
BUDGET_TEXT = (
    "This repository exceeded its LFS budget. The account responsible for the budget should "
    "increase it to restore access."
)
CLIPS = [
    "1001_DFA_ANG_XX.wav",
    "1001_IEO_HAP_LO.wav",
    "1002_TIE_NEU_XX.wav",
    "1040_ITH_SAD_XX.wav",
    "1076_MTI_SAD_XX.wav",
]
NO_WAIT = Retry(attempts=3, first_delay=0.0, sleep=lambda seconds: None)
REPO = dl.GITHUB_REPO


def synthetic_wav(name: str) -> bytes:
    """0.2 s of a tone at 16 kHz; 1076_MTI_SAD_XX, like the real one, holds no sound."""
    seed = int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)
    signal = 0.3 * np.sin(np.arange(3200) * (0.02 + seed % 100 / 1000))
    if name.startswith("1076_MTI_SAD"):
        signal = np.zeros(3200)
    buffer = io.BytesIO()
    soundfile.write(buffer, signal, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def pointer(data: bytes) -> bytes:
    return lfs.format_pointer(hashlib.sha256(data).hexdigest(), len(data)).encode()


class FakeServer:
    """GitHub's three hosts under /api, /raw, /media and a mirror under /mirror. `faults[path]` is
    a list of actions used up one per request ("drop", "corrupt", "500"); `requests` counts."""

    def __init__(self):
        self.files = {f"AudioWAV/{name}": synthetic_wav(name) for name in CLIPS}
        self.files.update({path: (FIXTURES / Path(path).name).read_bytes() for path in dl.METADATA_FILES})
        self.lfs = {path for path in self.files if path.endswith(".wav")} | {
            "processedResults/tabulatedVotes.csv"
        }
        self.routes: dict[str, bytes] = {}
        self.faults: dict[str, list[str]] = collections.defaultdict(list)
        self.media_answer: tuple[int, str] | None = None  # (status, body) for every /media/ request
        self.requests = collections.Counter()
        self.publish()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def publish(self) -> None:
        """Routes for the repository as it stands in self.files (git blobs: pointers for LFS)."""
        blobs = {path: pointer(data) if path in self.lfs else data for path, data in self.files.items()}
        trees = collections.defaultdict(list)
        for path, blob in blobs.items():
            folder, _, name = path.rpartition("/")
            trees[folder].append(
                {"path": name, "type": "blob", "sha": lfs.git_blob_sha1(blob), "size": len(blob)}
            )
        trees[""] += [{"path": folder, "type": "tree", "sha": f"tree-{folder}"} for folder in trees if folder]
        api = f"/api/repos/{REPO}/git/trees"
        self.routes = {
            f"{api}/{'master' if not folder else 'tree-' + folder}": json.dumps({"tree": tree}).encode()
            for folder, tree in trees.items()
        }
        for path, data in self.files.items():
            self.routes[f"/raw/{REPO}/master/{path}"] = blobs[path]
            self.routes[f"/media/{REPO}/master/{path}"] = data
            self.routes[f"/mirror/{path}"] = data

    def handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests[self.path] += 1
                if self.path.startswith("/media/") and server.media_answer:
                    status, text = server.media_answer
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(text.encode())))
                    self.end_headers()
                    self.wfile.write(text.encode())
                    return
                body = server.routes.get(self.path)
                action = server.faults[self.path].pop(0) if server.faults[self.path] else None
                if body is None or action == "500":
                    self.send_error(404 if body is None else 500)
                    return
                if action == "corrupt":
                    body = bytes([body[0] ^ 1]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if action == "drop" else body)
                if action == "drop":
                    self.close_connection = True

            def log_message(self, *args):
                pass

        return Handler

    def source(self, mirror: bool = False, fallback: bool = False) -> dl.Source:
        return dl.Source(
            api=f"{self.url}/api",
            raw=f"{self.url}/raw",
            media=f"{self.url}/media",
            mirror=f"{self.url}/mirror" if mirror else None,
            fallback=f"{self.url}/mirror" if fallback else None,
        )

    def count(self, prefix: str) -> int:
        return sum(count for path, count in self.requests.items() if path.startswith(prefix))


LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Every test here talks to the local server only: a lookup of any other host is refused
    and, should the code swallow the refusal, reported when the test ends."""
    tried = []
    lookup = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in LOCAL_HOSTS:
            tried.append(host)
            raise OSError(f"the tests do not reach the network ({host})")
        return lookup(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    yield
    assert tried == [], f"tried to reach {tried}"


def local_github(monkeypatch, server) -> None:
    """Point GitHub's three hosts and the GitLab fall-back, as the command builds them, at the
    local server (the fall-back under /gitlab/, which serves nothing)."""
    monkeypatch.setattr(
        dl,
        "Source",
        functools.partial(
            dl.Source, api=f"{server.url}/api", raw=f"{server.url}/raw", media=f"{server.url}/media"
        ),
    )
    monkeypatch.setattr(dl, "GITLAB_MIRROR", f"{server.url}/gitlab")


@pytest.fixture
def server():
    fake = FakeServer()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def media(path: str) -> str:
    return f"/media/{REPO}/master/{path}"


# ---- pointers and tables: known inputs, known outputs ------------------------------------------


def test_git_blob_ids_and_lfs_pointers():
    assert lfs.git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git hash-object /dev/null
    assert lfs.git_blob_sha1(b"hello world\n") == "3b18e512dba79e4c8300dd08aeb37f8e728b8dad"
    # The pointer of AudioWAV/1064_WSI_SAD_XX.wav as the CREMA-D repository stores it.
    text = (
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:726fd59c4d63a2eef755d0b05dd83bc2d9ef7fd2be6c89e3b39146b432f7605c\nsize 71582\n"
    )
    assert lfs.parse_pointer(text) == (
        "726fd59c4d63a2eef755d0b05dd83bc2d9ef7fd2be6c89e3b39146b432f7605c",
        71582,
    )
    assert lfs.format_pointer(*lfs.parse_pointer(text)) == text
    for not_a_pointer in (
        b"RIFF....WAVEfmt ",
        text.replace("sha256:726f", "sha256:zz6f"),
        text.split("size")[0],
    ):
        with pytest.raises(ValueError):
            lfs.parse_pointer(not_a_pointer)


def test_manifest_round_trip_and_bad_rows(tmp_path):
    rows = {
        "AudioWAV/1001_DFA_ANG_XX.wav": ("a" * 64, 10),
        "processedResults/tabulatedVotes.csv": ("b" * 64, 20),
    }
    lfs.write_manifest(tmp_path / "manifest.csv", rows)
    assert lfs.read_manifest(tmp_path / "manifest.csv") == rows
    (tmp_path / "bare.csv").write_text(f"filename,sha256,size\n1001_DFA_ANG_XX.wav,{'a' * 64},10\n")
    assert lfs.read_manifest(tmp_path / "bare.csv") == {"AudioWAV/1001_DFA_ANG_XX.wav": ("a" * 64, 10)}
    (tmp_path / "bad.csv").write_text("filename,sha256,size\nx.wav,abc,10\n")
    with pytest.raises(CremadError, match="bad.csv, line 2"):
        lfs.read_manifest(tmp_path / "bad.csv")


@pytest.mark.skipif(
    not REAL_POINTERS.is_file(), reason="needs ../shared/cremad-meta/AudioWAV-lfs-pointers.csv"
)
def test_real_pointer_table():
    rows = lfs.read_manifest(REAL_POINTERS)
    assert len(rows) == 7442
    assert sum(size for _, size in rows.values()) == 605_899_936  # about 606 MB
    assert len({parse_cremad_name(path).speaker for path in rows}) == 91
    assert {"AudioWAV/1076_MTI_SAD_XX.wav", "AudioWAV/1040_ITH_SAD_XX.wav"} <= set(rows)
    for sha256, size in rows.values():
        assert lfs.parse_pointer(lfs.format_pointer(sha256, size)) == (sha256, size)


@pytest.mark.skipif(
    not REAL_POINTERS.is_file(), reason="needs ../shared/cremad-meta/AudioWAV-lfs-pointers.csv"
)
def test_real_pointer_table_has_exactly_the_three_known_identical_pairs():
    rows = lfs.read_manifest(REAL_POINTERS)
    assert len({sha256 for sha256, _ in rows.values()}) == 7439  # 7442 clips
    groups = duplicates.identical_groups({path: sha256 for path, (sha256, _) in rows.items()})
    assert [tuple(group) for group in groups] == list(dl.IDENTICAL_CLIPS)
    notes = dl.identical_clip_notes(dl.manifest_targets(rows, dl.Report()))
    assert len(notes) == 3 and all(
        "hold the same bytes under two emotions, a known" in note for note in notes
    )
    assert notes[0].startswith("AudioWAV/1006_TIE_HAP_XX.wav and AudioWAV/1006_TIE_NEU_XX.wav ")


# ---- downloads from the fake server ----------------------------------------------------------------


def test_full_download_then_a_rerun_fetches_nothing(server, tmp_path):
    report = dl.download(tmp_path, server.source(), jobs=4, retry=NO_WAIT, progress=False)
    assert report.failed == {}
    assert report.downloaded == sorted(server.files) and report.present == []
    for path, data in server.files.items():
        assert (tmp_path / path).read_bytes() == data
    assert not list(tmp_path.rglob("*.part"))
    assert server.count("/media/") == 6  # five WAVs and tabulatedVotes.csv, an LFS object here
    assert (
        server.requests[f"/raw/{REPO}/master/processedResults/summaryTable.csv"] == 1
    )  # over 1 kB: no pointer check
    manifest = lfs.read_manifest(tmp_path / "manifest.csv")
    assert manifest == {
        path: (hashlib.sha256(data).hexdigest(), len(data)) for path, data in server.files.items()
    }
    assert any("1076_MTI_SAD_XX.wav holds no sound (peak exactly zero)" in note for note in report.notes)
    assert "downloaded 9, already present 0, failed 0" in report.summary()

    before = server.requests.copy()
    again = dl.download(tmp_path, server.source(), jobs=4, retry=NO_WAIT, progress=False)
    assert again.downloaded == [] and again.present == sorted(server.files) and again.failed == {}
    new_requests = server.requests - before
    assert all(path.startswith("/api/") for path in new_requests)  # pointers come from manifest.csv


def test_identical_clips_are_named_in_the_report(server, tmp_path):
    data = synthetic_wav("1006_TIE_NEU_XX.wav")
    server.files.update({"AudioWAV/1006_TIE_HAP_XX.wav": data, "AudioWAV/1006_TIE_NEU_XX.wav": data})
    server.files["AudioWAV/1013_WSI_DIS_XX.wav"] = synthetic_wav("1013_WSI_DIS_XX.wav")  # its pair absent
    # synthetic_wav's tone repeats every 100 seeds: 1002_TIE_NEU_XX and 1040_ITH_SAD_XX are the
    # same bytes, a group no list knows.
    assert server.files["AudioWAV/1002_TIE_NEU_XX.wav"] == server.files["AudioWAV/1040_ITH_SAD_XX.wav"]
    server.lfs |= {path for path in server.files if path.endswith(".wav")}
    server.publish()
    report = dl.download(tmp_path, server.source(), jobs=4, retry=NO_WAIT, progress=False)
    assert report.failed == {}
    identical = [note for note in report.notes if "same bytes" in note]
    assert identical == [
        "AudioWAV/1006_TIE_HAP_XX.wav and AudioWAV/1006_TIE_NEU_XX.wav hold the same bytes under two "
        "emotions, a known corpus problem (one label is wrong); `cremad features` keeps both unless "
        "--drop-conflicting",
        "AudioWAV/1013_WSI_DIS_XX.wav and AudioWAV/1013_WSI_SAD_XX.wav hold the same bytes under two "
        "emotions in the published corpus, a known corpus problem (not both in this file list)",
        "AudioWAV/1002_TIE_NEU_XX.wav and AudioWAV/1040_ITH_SAD_XX.wav hold the same bytes (by their "
        "pointers); `cremad features` reports them",
    ]
    assert "note: AudioWAV/1006_TIE_HAP_XX.wav and" in report.summary()


def test_interrupted_downloads_resume(server, tmp_path):
    dropped, stale_part, finished_part, done = (f"AudioWAV/{name}" for name in CLIPS[:4])
    server.faults[media(dropped)] = ["drop"]  # the connection dies half way the first time
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / f"{stale_part}.part").write_bytes(b"half a file")
    (tmp_path / f"{finished_part}.part").write_bytes(server.files[finished_part])  # killed before the rename
    (tmp_path / done).write_bytes(server.files[done])

    report = dl.download(tmp_path, server.source(), jobs=2, retry=NO_WAIT, progress=False)
    assert report.failed == {}
    assert server.requests[media(dropped)] == 2
    assert server.requests[media(stale_part)] == 1
    assert server.requests[media(finished_part)] == 0 and server.requests[media(done)] == 0
    assert set(report.present) == {finished_part, done}
    for path, data in server.files.items():
        assert (tmp_path / path).read_bytes() == data
    assert not list(tmp_path.rglob("*.part"))


def test_corrupted_object_is_retried_then_reported(server, tmp_path):
    corrupt = "AudioWAV/1001_DFA_ANG_XX.wav"
    server.faults[media(corrupt)] = ["corrupt"] * 10
    (tmp_path / "AudioWAV").mkdir()
    (tmp_path / corrupt).write_bytes(b"not the clip")  # a stale file under the final name goes too
    report = dl.download(tmp_path, server.source(), jobs=4, retry=NO_WAIT, progress=False)
    assert server.requests[media(corrupt)] == NO_WAIT.attempts
    assert list(report.failed) == [corrupt]
    assert "sha256" in report.failed[corrupt] and media(corrupt) in report.failed[corrupt]
    assert f"FAILED {corrupt}" in report.summary()
    assert not (tmp_path / corrupt).exists() and not (tmp_path / f"{corrupt}.part").exists()
    assert len(report.downloaded) == len(server.files) - 1


def test_server_error_then_success_backs_off_exponentially(server, tmp_path):
    flaky = "AudioWAV/1002_TIE_NEU_XX.wav"
    server.faults[media(flaky)] = ["500", "500"]
    waits = []
    retry = Retry(attempts=4, first_delay=0.5, factor=2.0, sleep=waits.append)
    report = dl.download(tmp_path, server.source(), jobs=1, retry=retry, progress=False)
    assert report.failed == {} and server.requests[media(flaky)] == 3
    assert waits == [0.5, 1.0]


def test_a_pointer_that_does_not_match_the_tree_is_refused(server, tmp_path):
    path = "AudioWAV/1001_IEO_HAP_LO.wav"
    server.routes[f"/raw/{REPO}/master/{path}"] = pointer(b"some other audio")
    report = dl.download(tmp_path, server.source(), jobs=4, retry=NO_WAIT, progress=False)
    assert "does not match the repository tree" in report.failed[path]
    assert server.requests[media(path)] == 0


def test_cli_with_mirror_and_manifest_exits_1_on_a_404(server, tmp_path, capsys, monkeypatch):
    # No GitHub at all: checksums from a manifest (the AudioWAV-lfs-pointers.csv format), bytes from
    # the mirror. GitHub and the fall-back are the local server's too, so a request to them counts.
    local_github(monkeypatch, server)
    manifest = tmp_path / "pointers.csv"
    lfs.write_manifest(
        manifest, {path: (hashlib.sha256(data).hexdigest(), len(data)) for path, data in server.files.items()}
    )
    missing = "AudioWAV/1002_TIE_NEU_XX.wav"
    del server.routes[f"/mirror/{missing}"]
    dest = tmp_path / "CREMA-D"
    status = cli.main(
        [
            "download",
            "--dest",
            str(dest),
            "--jobs",
            "2",
            "--mirror",
            f"{server.url}/mirror",
            "--manifest",
            str(manifest),
        ]
    )
    out = capsys.readouterr().out
    assert status == 1
    assert f"FAILED {missing}: HTTP 404" in out and f"{server.url}/mirror/{missing}" in out
    assert server.requests[f"/mirror/{missing}"] == 1  # a 404 is not retried
    assert server.count("/mirror/") == len(server.files)  # every file asked of the mirror, once
    assert server.count("/api/") == server.count("/raw/") == server.count("/media/") == 0
    assert server.count("/gitlab/") == 0
    assert "downloaded 8, already present 0, failed 1" in out


def test_mirror_with_the_older_name_1040_ith_sad_x(server, tmp_path):
    official, older = "AudioWAV/1040_ITH_SAD_XX.wav", "AudioWAV/1040_ITH_SAD_X.wav"
    server.routes[f"/mirror/{older}"] = server.routes.pop(f"/mirror/{official}")
    report = dl.download(tmp_path, server.source(mirror=True), jobs=4, retry=NO_WAIT, progress=False)
    assert report.failed == {} and server.count("/media/") == 0  # every object came from the mirror
    assert (tmp_path / official).read_bytes() == server.files[official]
    assert any(older in note and "older name" in note for note in report.notes)


def test_without_the_api_the_cached_manifest_is_used(server, tmp_path):
    routes = dict(server.routes)
    server.routes = {path: body for path, body in routes.items() if not path.startswith("/api/")}
    with pytest.raises(CremadError, match="--manifest"):
        dl.download(tmp_path, server.source(), retry=NO_WAIT, progress=False)
    server.routes = routes
    dl.download(tmp_path, server.source(), retry=NO_WAIT, progress=False)
    server.routes = {path: body for path, body in routes.items() if not path.startswith("/api/")}
    report = dl.download(tmp_path, server.source(), retry=NO_WAIT, progress=False)
    assert report.failed == {} and report.present == sorted(server.files)


def test_a_server_sending_pointers_is_not_retried(server, tmp_path):
    # A mirror without LFS serves the pointer text in place of the audio: the same answer every time.
    path = "AudioWAV/1001_DFA_ANG_XX.wav"
    server.routes[f"/mirror/{path}"] = pointer(server.files[path])
    report = dl.download(tmp_path, server.source(mirror=True), jobs=4, retry=NO_WAIT, progress=False)
    assert "sent the Git LFS pointer, not the object" in report.failed[path]
    assert server.requests[f"/mirror/{path}"] == 1


def test_a_dead_server_is_given_up_on(server, tmp_path, monkeypatch):
    monkeypatch.setattr(dl, "GIVE_UP_AFTER", 2)
    for path in server.files:
        server.faults[media(path)] = ["500"] * 10
    report = dl.download(tmp_path, server.source(), jobs=1, retry=NO_WAIT, progress=False)
    assert report.downloaded == [] and len(report.failed) == len(server.files)
    # Two files fail; the one worker may already have started a third before the rest are left alone.
    assert server.count("/media/") <= 3 * NO_WAIT.attempts
    assert sum(reason.startswith("not tried") for reason in report.failed.values()) >= len(server.files) - 3
    # The pointers learnt are kept, so the next run goes straight to the downloads.
    assert lfs.read_manifest(tmp_path / "manifest.csv").keys() >= {f"AudioWAV/{name}" for name in CLIPS}


# ---- GitHub's LFS budget spent: the fall-back to the mirror -------------------------------------


@pytest.mark.parametrize("status, text", [(403, BUDGET_TEXT), (429, ""), (403, "")])
def test_a_refusing_media_host_sends_the_audio_to_the_fallback(server, tmp_path, status, text):
    server.media_answer = (status, text)
    lfs_paths = sorted(server.lfs)
    report = dl.download(tmp_path, server.source(fallback=True), jobs=1, retry=NO_WAIT, progress=False)
    assert report.failed == {}
    for path, data in server.files.items():
        assert (tmp_path / path).read_bytes() == data
    # One refusal (not retried) switches every LFS object to the mirror; the pointers and the
    # plain metadata still come from GitHub, where they are not LFS traffic.
    assert server.count("/media/") == 1
    assert all(server.requests[f"/mirror/{path}"] == 1 for path in lfs_paths)
    assert server.count("/mirror/") == len(lfs_paths)
    assert all(server.requests[f"/raw/{REPO}/master/{path}"] == 1 for path in lfs_paths)
    assert report.served == {
        "GitHub": len(server.files) - len(lfs_paths),
        f"{server.url}/mirror": len(lfs_paths),
    }
    source_lines = [line for line in report.summary().splitlines() if line.startswith("source:")]
    assert source_lines == [report.source_line()]
    assert f"3 files from GitHub, 6 files from {server.url}/mirror" in source_lines[0]
    assert f"HTTP {status}" in source_lines[0] and text in source_lines[0]


def test_the_fallback_is_checked_against_the_official_pointers(server, tmp_path):
    server.media_answer = (403, BUDGET_TEXT)
    tampered = "AudioWAV/1002_TIE_NEU_XX.wav"
    server.routes[f"/mirror/{tampered}"] = synthetic_wav("someone else's clip")
    report = dl.download(tmp_path, server.source(fallback=True), jobs=2, retry=NO_WAIT, progress=False)
    assert list(report.failed) == [tampered]
    assert "sha256" in report.failed[tampered] and f"/mirror/{tampered}" in report.failed[tampered]
    assert server.requests[f"/mirror/{tampered}"] == NO_WAIT.attempts
    assert not (tmp_path / tampered).exists() and not list(tmp_path.rglob("tmp*"))
    assert len(report.downloaded) == len(server.files) - 1


def test_without_a_fallback_the_refusal_is_reported_once_per_file(server, tmp_path):
    server.media_answer = (403, BUDGET_TEXT)
    report = dl.download(tmp_path, server.source(), jobs=2, retry=NO_WAIT, progress=False)
    wav = "AudioWAV/1001_DFA_ANG_XX.wav"
    assert "HTTP 403" in report.failed[wav] and "exceeded its LFS budget" in report.failed[wav]
    assert server.requests[media(wav)] == 1  # a refusal is not retried
    assert set(report.failed) == server.lfs and report.served == {"GitHub": 3}
    assert report.source_line() == "source: 3 files from GitHub"


def test_a_server_error_from_the_media_host_is_retried_not_a_refusal(server, tmp_path):
    server.media_answer = (500, "")
    report = dl.download(tmp_path, server.source(fallback=True), jobs=1, retry=NO_WAIT, progress=False)
    assert set(report.failed) == server.lfs and server.count("/mirror/") == 0
    assert server.requests[media("AudioWAV/1001_DFA_ANG_XX.wav")] == NO_WAIT.attempts


@pytest.mark.parametrize("option, value", [("--fallback", "ftp://example.org"), ("--mirror", "gitlab.com/x")])
def test_cli_refuses_a_source_that_is_not_a_url(tmp_path, capsys, option, value):
    assert cli.main(["download", "--dest", str(tmp_path), option, value]) == 2
    assert f"{option} must be an http(s) URL, 'gitlab' or 'none'" in capsys.readouterr().err


# ---- the 30 real CREMA-D clips against the official pointers -------------------------------------


@pytest.mark.skipif(
    not (REAL_POINTERS.is_file() and REAL_CLIPS.is_dir()),
    reason="needs ../shared/cremad-meta and ../shared/cremad-samples",
)
def test_real_clips_verify_against_the_official_pointers(tmp_path):
    pointers = lfs.read_manifest(REAL_POINTERS)
    clips = sorted(REAL_CLIPS.glob("*.wav"))
    assert len(clips) == 30
    targets = [
        lfs.Target(
            f"AudioWAV/{clip.name}",
            pointers[f"AudioWAV/{clip.name}"][1],
            pointers[f"AudioWAV/{clip.name}"][0],
            "sha256",
            lfs=True,
        )
        for clip in clips
    ]
    for clip, target in zip(clips, targets):
        assert lfs.verify(clip, target) is None, clip.name
    # The paper's Fig. 2 clip, its pointer as the repository stores it.
    fig2 = REAL_CLIPS / "1015_DFA_ANG_XX.wav"
    sha256, size = pointers["AudioWAV/1015_DFA_ANG_XX.wav"]
    assert lfs.parse_pointer(lfs.format_pointer(sha256, size)) == (
        hashlib.sha256(fig2.read_bytes()).hexdigest(),
        size,
    )
    flipped, short = tmp_path / "flipped.wav", tmp_path / "short.wav"
    data = fig2.read_bytes()
    flipped.write_bytes(data[:1000] + bytes([data[1000] ^ 1]) + data[1001:])
    short.write_bytes(data[:-2])
    target = targets[clips.index(fig2)]
    assert lfs.verify(flipped, target).startswith("sha256 ")
    assert lfs.verify(short, target) == f"{size - 2} bytes, expected {size}"


@pytest.mark.skipif(
    not (REAL_POINTERS.is_file() and REAL_CLIPS.is_dir()),
    reason="needs ../shared/cremad-meta and ../shared/cremad-samples",
)
def test_real_clips_downloaded_through_the_fallback(server, tmp_path):
    # The real clips behind a refusing GitHub and a mirror; the checksums: the official pointer table.
    pointers = lfs.read_manifest(REAL_POINTERS)
    server.files = {f"AudioWAV/{clip.name}": clip.read_bytes() for clip in sorted(REAL_CLIPS.glob("*.wav"))}
    server.lfs = set(server.files)
    server.publish()
    server.media_answer = (403, BUDGET_TEXT)
    manifest = tmp_path / "pointers.csv"
    lfs.write_manifest(manifest, {path: pointers[path] for path in server.files})
    report = dl.download(
        tmp_path / "CREMA-D",
        server.source(fallback=True),
        jobs=4,
        manifest=manifest,
        retry=NO_WAIT,
        progress=False,
    )
    assert report.failed == {} and len(report.downloaded) == 30
    assert report.served == {f"{server.url}/mirror": 30}
    for path, data in server.files.items():
        assert (tmp_path / "CREMA-D" / path).read_bytes() == data


def test_cli_falls_back_by_itself_and_says_so_in_one_line(server, tmp_path, capsys, monkeypatch):
    # The command as a newcomer types it; GitHub's three hosts and the GitLab mirror are local.
    local_github(monkeypatch, server)
    monkeypatch.setattr(dl, "GITLAB_MIRROR", f"{server.url}/mirror")
    server.media_answer = (403, BUDGET_TEXT)
    assert cli.main(["download", "--dest", str(tmp_path / "CREMA-D"), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert [line for line in out.splitlines() if line.startswith("source:")] == [
        f"source: 3 files from GitHub, 6 files from {server.url}/mirror (GitHub's LFS media host refused: "
        f'HTTP 403 Forbidden from {server.url}{media("AudioWAV/1001_DFA_ANG_XX.wav")}: "{BUDGET_TEXT}")'
    ]
    assert "downloaded 9, already present 0, failed 0" in out
