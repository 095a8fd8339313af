"""Download CREMA-D from its GitHub repository (or a mirror), checked byte for byte.

The repository CheyneyComputerScience/CREMA-D keeps `AudioWAV/*.wav` as Git LFS objects: git
holds a small pointer text (`oid sha256:<hex>`, `size <n>`) and the audio itself is served by
media.githubusercontent.com. No git or git-lfs binary is needed:

1. The file list comes from the repository at run time (GitHub tree API: the root tree, then
   `AudioWAV/` and `processedResults/`); each entry carries its git blob sha1 and size.
2. Each WAV's pointer is read from raw.githubusercontent.com and checked against its blob sha1,
   so the tree vouches for the pointer and the pointer vouches for the audio (size + sha256).
   Pointers are cached in `<dest>/manifest.csv`; a rerun reads only the tree.
3. Objects come from media.githubusercontent.com, or from `--mirror BASE` (plain files under
   the same relative paths) when GitHub's LFS bandwidth has run out. Pointers are not LFS
   traffic, so they still come from GitHub.

Fallback: if the GitHub API cannot be reached (or its limit of 60 unauthenticated requests an
hour is spent), the previous run's `<dest>/manifest.csv` is used, or `--manifest FILE`
(columns filename,sha256,size; a bare `<name>.wav` means `AudioWAV/<name>.wav`).

A download lives under `<name>.part` until its size and sha256 check out, then is renamed, so
an interrupted run resumes where it stopped and a verified file is never fetched twice.
"""

from __future__ import annotations

import concurrent.futures
import csv
import dataclasses
import hashlib
import http.client
import json
import logging
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable

from cremad import CremadError, __version__
from cremad.config import FeatureConfig
from cremad.corpus import CREMAD_CLIPS

log = logging.getLogger(__name__)

GITHUB_REPO = "CheyneyComputerScience/CREMA-D"
GITHUB_REF = "master"
# The mirror the CREMA-D maintainers opened when GitHub's LFS budget ran out (issue #15, 2025).
GITLAB_MIRROR = "https://gitlab.com/cs-cooper-lab/crema-d-mirror/-/raw/main"
AUDIO_DIR = "AudioWAV"
METADATA_FILES = (
    "VideoDemographics.csv",
    "SentenceFilenames.csv",
    "processedResults/summaryTable.csv",
    "processedResults/tabulatedVotes.csv",
)
MANIFEST_NAME = "manifest.csv"
POINTER_VERSION = "version https://git-lfs.github.com/spec/v1"
POINTER_MAX_SIZE = 1024  # git-lfs's own rule: a blob this large or larger is never a pointer
CHUNK_SIZE = 1 << 16
GIVE_UP_AFTER = 32  # downloads failed in a row before the rest are not even tried
# Known corpus problems, reported after every run rather than hidden.
SILENT_CLIPS = ("AudioWAV/1076_MTI_SAD_XX.wav",)  # the corpus README: "no audio, very short"
LEGACY_NAMES = {"AudioWAV/1040_ITH_SAD_XX.wav": "AudioWAV/1040_ITH_SAD_X.wav"}  # older mirrors


@dataclasses.dataclass(frozen=True)
class Source:
    """Where every URL comes from: GitHub's API, raw and LFS media hosts, or a mirror base."""

    api: str = "https://api.github.com"
    raw: str = "https://raw.githubusercontent.com"
    media: str = "https://media.githubusercontent.com/media"
    repo: str = GITHUB_REPO
    ref: str = GITHUB_REF
    mirror: str | None = None  # serves every file, LFS or not, as plain bytes under its path

    def tree_url(self, tree: str) -> str:
        return f"{self.api}/repos/{self.repo}/git/trees/{urllib.parse.quote(tree)}"

    def raw_url(self, path: str) -> str:
        return f"{self.raw}/{self.repo}/{self.ref}/{urllib.parse.quote(path)}"

    def content_url(self, path: str, lfs: bool) -> str:
        if self.mirror:
            return f"{self.mirror.rstrip('/')}/{urllib.parse.quote(path)}"
        host = self.media if lfs else self.raw
        return f"{host}/{self.repo}/{self.ref}/{urllib.parse.quote(path)}"


@dataclasses.dataclass(frozen=True)
class Retry:
    """A failed request is tried `attempts` times in all, waiting first_delay, first_delay *
    factor, ... in between. `sleep` is injectable so tests never wait."""

    attempts: int = 5
    first_delay: float = 1.0
    factor: float = 2.0
    sleep: Callable[[float], None] = time.sleep


@dataclasses.dataclass(frozen=True)
class Target:
    """One file to have under dest: its relative path and what its bytes must hash to."""

    path: str  # relative, with forward slashes: "AudioWAV/1001_DFA_ANG_XX.wav"
    size: int
    digest: str
    algorithm: str  # "sha256" (an LFS object or a manifest row) or "git-sha1" (a plain git blob)
    lfs: bool


@dataclasses.dataclass
class Report:
    downloaded: list[str] = dataclasses.field(default_factory=list)
    present: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> reason
    notes: list[str] = dataclasses.field(default_factory=list)  # corpus problems, substitutions

    def summary(self) -> str:
        lines = [f"downloaded {len(self.downloaded)}, already present {len(self.present)}, failed {len(self.failed)}"]
        not_tried = sorted(path for path, reason in self.failed.items() if reason.startswith("not tried"))
        lines += [f"  FAILED {path}: {reason}" for path, reason in sorted(self.failed.items()) if path not in not_tried]
        if not_tried:
            lines.append(f"  FAILED {len(not_tried)} more, {self.failed[not_tried[0]]} ({not_tried[0]}, ...)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


class FetchError(Exception):
    """A request or a download that failed; the message names the URL. Permanent ones (404,
    403, a bad pointer) are not retried."""

    def __init__(self, message: str, permanent: bool = False, status: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status = status  # the HTTP status, if the server answered


# ---- LFS pointers and manifests -------------------------------------------------------------


def parse_pointer(text: bytes | str) -> tuple[str, int]:
    """(sha256 hex, size) from a Git LFS pointer; ValueError if `text` is not one."""
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    lines = text.splitlines()
    if not lines or lines[0] != POINTER_VERSION:
        raise ValueError("not a Git LFS pointer (no version line)")
    fields = dict(line.split(" ", 1) for line in lines[1:] if " " in line)
    oid = re.fullmatch(r"sha256:([0-9a-f]{64})", fields.get("oid", ""))
    if not oid or not fields.get("size", "").isdigit():
        raise ValueError("Git LFS pointer without a sha256 oid and a size")
    return oid[1], int(fields["size"])


def format_pointer(sha256: str, size: int) -> str:
    """The pointer text git-lfs writes for an object (the inverse of parse_pointer)."""
    return f"{POINTER_VERSION}\noid sha256:{sha256}\nsize {size}\n"


def git_blob_sha1(data: bytes) -> str:
    """The id git gives a file's content, as listed by the tree API."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.sha256() if algorithm == "sha256" else hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: str | Path) -> dict[str, tuple[str, int]]:
    """{relative path: (sha256, size)} from a filename,sha256,size table (the format of
    AudioWAV-lfs-pointers.csv); a bare *.wav name is taken to live in AudioWAV/."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"manifest {path} does not exist")
    rows = {}
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        if not {"filename", "sha256", "size"} <= set(reader.fieldnames or ()):
            raise CremadError(f"manifest {path}: header must name filename,sha256,size, not {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            if not re.fullmatch(r"[0-9a-f]{64}", row["sha256"] or "") or not (row["size"] or "").isdigit():
                raise CremadError(f"manifest {path}, line {line}: bad sha256 or size in {row}")
            name = row["filename"]
            bare_wav = "/" not in name and name.lower().endswith(".wav")
            rows[f"{AUDIO_DIR}/{name}" if bare_wav else name] = (row["sha256"], int(row["size"]))
    return rows


def write_manifest(path: Path, rows: dict[str, tuple[str, int]]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["filename", "sha256", "size"])
        writer.writerows([name, sha256, size] for name, (sha256, size) in sorted(rows.items()))
    os.replace(temporary, path)


# ---- HTTP with retries ----------------------------------------------------------------------


def _open(url: str, timeout: float = 60.0):
    request = urllib.request.Request(url, headers={"User-Agent": f"cremad/{__version__}"})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        # 408 and 429 ask us to come back later; any other 4xx will not change on a retry.
        permanent = 400 <= error.code < 500 and error.code not in (408, 429)
        raise FetchError(f"HTTP {error.code} {error.reason} from {url}", permanent, error.code) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        raise FetchError(f"{url}: {getattr(error, 'reason', error)}") from None


def with_retries(action: Callable[[], object], retry: Retry):
    """Run `action` until it succeeds, retrying FetchErrors that are not permanent."""
    for attempt in range(retry.attempts):
        try:
            return action()
        except FetchError as error:
            if error.permanent or attempt == retry.attempts - 1:
                raise
            delay = retry.first_delay * retry.factor**attempt
            log.debug("%s; retrying in %.1f s", error, delay)
            retry.sleep(delay)


def get_bytes(url: str, retry: Retry) -> bytes:
    def attempt() -> bytes:
        with _open(url) as response:
            try:
                return response.read()
            except (OSError, http.client.HTTPException) as error:
                raise FetchError(f"{url}: {error}") from None

    return with_retries(attempt, retry)


# ---- What to download -----------------------------------------------------------------------


def list_repository(source: Source, retry: Retry) -> dict[str, tuple[str, int]]:
    """{path: (git blob sha1, size)} for the top-level files, AudioWAV/ and processedResults/."""
    def tree(sha: str) -> list[dict]:
        url = source.tree_url(sha)
        listing = json.loads(get_bytes(url, retry))
        if listing.get("truncated"):
            raise FetchError(f"{url}: the listing is truncated")
        return listing["tree"]

    entries = {}
    for item in tree(source.ref):
        if item["type"] == "blob":
            entries[item["path"]] = (item["sha"], item["size"])
        elif item["path"] in (AUDIO_DIR, "processedResults"):
            entries.update({f"{item['path']}/{sub['path']}": (sub["sha"], sub["size"])
                            for sub in tree(item["sha"]) if sub["type"] == "blob"})
    return entries


def resolve(path: str, blob_sha: str, blob_size: int, cached: dict, dest: Path, source: Source,
            retry: Retry) -> Target:
    """The Target for one repository file: an LFS object if its blob is a pointer, else the blob.
    Only small blobs not yet vouched for (by manifest.csv or the file in dest) are fetched."""
    plain = Target(path, blob_size, blob_sha, "git-sha1", lfs=False)
    if blob_size >= POINTER_MAX_SIZE or verify(dest / path, plain) is None:
        return plain
    if path in cached and git_blob_sha1(format_pointer(*cached[path]).encode()) == blob_sha:
        return Target(path, cached[path][1], cached[path][0], "sha256", lfs=True)
    url = source.raw_url(path)
    text = get_bytes(url, retry)
    if git_blob_sha1(text) != blob_sha:
        raise FetchError(f"{url}: content does not match the repository tree (blob {blob_sha[:12]})")
    try:
        sha256, size = parse_pointer(text)
    except ValueError:
        return plain  # a small file that is not a pointer
    return Target(path, size, sha256, "sha256", lfs=True)


def repository_targets(dest: Path, source: Source, retry: Retry, jobs: int, report: Report,
                       progress: bool = True) -> list[Target]:
    """Targets for the metadata and every AudioWAV/*.wav the repository lists now."""
    cached = read_manifest(dest / MANIFEST_NAME) if (dest / MANIFEST_NAME).is_file() else {}
    try:
        entries = list_repository(source, retry)
    except (FetchError, KeyError, ValueError) as error:
        if not cached:
            raise CremadError(f"cannot list the repository ({error}); pass --manifest FILE "
                              "(filename,sha256,size) to download without the GitHub API") from None
        log.warning("cannot list the repository (%s); using %s", error, dest / MANIFEST_NAME)
        return manifest_targets(cached, report)
    wanted = [path for path in entries if path in METADATA_FILES
              or (path.startswith(AUDIO_DIR + "/") and path.lower().endswith(".wav"))]
    report.failed.update({path: "not in the repository" for path in METADATA_FILES if path not in entries})
    targets, stop = [], threading.Event()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool, _bar(len(wanted), "pointers", "file", progress) as bar:
        futures = {pool.submit(_stoppable(stop, resolve), path, *entries[path], cached, dest, source, retry): path
                   for path in wanted}
        for future in _completed(futures, stop):
            bar.update(1)
            try:
                targets.append(future.result())
            except FetchError as error:
                report.failed[futures[future]] = f"pointer: {error}"
    return sorted(targets, key=lambda target: target.path)


def manifest_targets(rows: dict[str, tuple[str, int]], report: Report) -> list[Target]:
    """Targets from a manifest. Like the repository's .gitattributes, WAVs are taken to be LFS."""
    missing = [path for path in METADATA_FILES if path not in rows]
    if missing:
        report.notes.append(f"the manifest has no checksum for {', '.join(missing)}; not downloaded")
    return [Target(path, size, sha256, "sha256", lfs=path.lower().endswith(".wav"))
            for path, (sha256, size) in sorted(rows.items())]


# ---- Verified download ----------------------------------------------------------------------


def verify(path: Path, target: Target) -> str | None:
    """None if the file at `path` holds exactly the target's bytes, else what is wrong."""
    if not path.is_file():
        return "missing"
    size = path.stat().st_size
    if size != target.size:
        return f"{size} bytes, expected {target.size}"
    digest = file_digest(path, target.algorithm)
    if digest != target.digest:
        return f"{target.algorithm} {digest[:16]}..., expected {target.digest[:16]}..."
    return None


def fetch(target: Target, dest: Path, source: Source, retry: Retry, on_bytes: Callable[[int], None]) -> str:
    """Download one target via `<name>.part`, verify it, rename it into place; returns the
    path the server had it under (an older mirror's name if the official one is not found)."""
    final = dest / target.path
    part = final.with_name(final.name + ".part")
    final.parent.mkdir(parents=True, exist_ok=True)

    def attempt(url: str) -> None:
        received = 0
        try:
            with _open(url) as response, open(part, "wb") as out:
                while chunk := response.read(CHUNK_SIZE):
                    out.write(chunk)
                    received += len(chunk)
                    on_bytes(len(chunk))
            problem = verify(part, target)
        except (OSError, http.client.HTTPException) as error:
            problem = f"interrupted after {received} bytes ({error})"
        if problem:
            on_bytes(-received)
            if received < POINTER_MAX_SIZE and _is_pointer(part):  # the same answer every time
                raise FetchError(f"{url}: sent the Git LFS pointer, not the object", permanent=True)
            raise FetchError(f"{url}: {problem}")
        os.replace(part, final)

    served_as = [target.path] + ([LEGACY_NAMES[target.path]] if target.path in LEGACY_NAMES else [])
    errors = []
    for path in served_as:
        url = source.content_url(path, target.lfs)
        try:
            with_retries(lambda: attempt(url), retry)
            return path
        except FetchError as error:
            errors.append(error)
            if error.status != 404:
                break
    # Every file under its final name has been verified: a stale one that failed goes too.
    part.unlink(missing_ok=True)
    final.unlink(missing_ok=True)
    raise errors[0]


def _is_pointer(path: Path) -> bool:
    try:
        parse_pointer(path.read_bytes())
        return True
    except (OSError, ValueError):
        return False


def local_copy(target: Target, dest: Path) -> tuple[Path | None, str | None]:
    """(verified file, note): the file itself, an older mirror's name for it, or a finished
    `.part` left by an interrupted run (renamed into place); (None, None) if none verifies."""
    final = dest / target.path
    if verify(final, target) is None:
        return final, None
    legacy = LEGACY_NAMES.get(target.path)
    if legacy and verify(dest / legacy, target) is None:
        return dest / legacy, f"{legacy} is the older mirrors' name for {target.path}; accepted as is"
    part = final.with_name(final.name + ".part")
    if verify(part, target) is None:
        os.replace(part, final)
        return final, None
    return None, None


def check_silent_clips(dest: Path, report: Report) -> None:
    import numpy as np
    import soundfile

    threshold = FeatureConfig().silence_peak
    for path in SILENT_CLIPS:
        if not (dest / path).is_file():
            continue
        peak = float(np.max(np.abs(soundfile.read(dest / path, dtype="float32")[0]), initial=0.0))
        level = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "exactly zero"
        if peak < threshold:
            report.notes.append(f"{path} holds no sound (peak {level}), a known corpus problem; "
                                "`cremad features` leaves it out unless --keep-silent")
        else:
            report.notes.append(f"{path} was listed as silent by the corpus README but peaks at {level}")


def download(dest: str | Path, source: Source = Source(), jobs: int = 8, manifest: str | Path | None = None,
             retry: Retry = Retry(), progress: bool = True) -> Report:
    """Make `dest` hold CREMA-D's WAVs and metadata, each verified; returns what happened.
    Without `manifest`, the file list comes from the repository and `<dest>/manifest.csv`
    records every checksum learnt (it is also the pointer cache for the next run)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    report = Report()
    if manifest is not None:
        targets = manifest_targets(read_manifest(manifest), report)
    else:
        targets = repository_targets(dest, source, retry, jobs, report, progress)
    clips = sum(target.path.startswith(AUDIO_DIR + "/") for target in targets)
    if clips != CREMAD_CLIPS:
        report.notes.append(f"the file list has {clips} WAV files; the published corpus has {CREMAD_CLIPS}")
    if any(target.path in LEGACY_NAMES.values() for target in targets):
        report.notes.append(f"the file list uses older names: {', '.join(sorted(LEGACY_NAMES.values()))}")

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        copies = dict(zip(targets, pool.map(lambda target: local_copy(target, dest), targets)))
    verified = {target.path: path for target, (path, _) in copies.items() if path is not None}
    report.present = sorted(verified)
    report.notes += [note for _, note in copies.values() if note]
    missing = [target for target in targets if target.path not in verified]
    if manifest is None:
        save_manifest(dest, targets, verified)  # the pointers outlive an interrupted download
    log.info("%d files listed, %d already here, %d to download (%.0f MB)", len(targets), len(verified),
             len(missing), sum(target.size for target in missing) / 1e6)

    fetch_all(missing, dest, source, retry, jobs, progress, report, verified)
    if manifest is None:
        save_manifest(dest, targets, verified)
    if report.failed and not source.mirror and any(target.lfs for target in targets):
        report.notes.append("if GitHub's LFS bandwidth is spent (HTTP 403 or 429 from media.githubusercontent.com), "
                            f"rerun with --mirror gitlab ({GITLAB_MIRROR}); verified files are kept")
    check_silent_clips(dest, report)
    report.downloaded.sort()
    return report


def fetch_all(missing: list[Target], dest: Path, source: Source, retry: Retry, jobs: int, progress: bool,
              report: Report, verified: dict[str, Path]) -> None:
    """Download `missing` in parallel behind one progress bar, recording each outcome."""
    lock, stop = threading.Lock(), threading.Event()
    with _bar(sum(target.size for target in missing), "download", "B", progress) as bar, \
            concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        def on_bytes(count: int) -> None:
            with lock:
                bar.update(count)

        futures = {pool.submit(_stoppable(stop, fetch), target, dest, source, retry, on_bytes): target
                   for target in missing}
        failures_in_a_row = 0
        for future in _completed(futures, stop):
            target = futures[future]
            try:
                served_as = future.result()
            except concurrent.futures.CancelledError:
                report.failed[target.path] = f"not tried: the {GIVE_UP_AFTER} downloads before it all failed"
                continue
            except FetchError as error:
                report.failed[target.path] = str(error)
                failures_in_a_row += 1
                if failures_in_a_row == GIVE_UP_AFTER:  # a dead server should not cost every file's retries
                    stop.set()
                continue
            failures_in_a_row = 0
            verified[target.path] = dest / target.path
            report.downloaded.append(target.path)
            if served_as != target.path:
                report.notes.append(f"the server had {target.path} under its older name "
                                    f"{served_as}; saved as {target.path}")


def save_manifest(dest: Path, targets: list[Target], verified: dict[str, Path]) -> None:
    """LFS checksums are known from the pointers; a plain file's sha256 once it is verified."""
    write_manifest(dest / MANIFEST_NAME, {
        target.path: (target.digest if target.algorithm == "sha256"
                      else file_digest(verified[target.path], "sha256"), target.size)
        for target in targets if target.algorithm == "sha256" or target.path in verified})


def _stoppable(stop: threading.Event, function: Callable) -> Callable:
    """`function`, except that once `stop` is set, calls not yet started raise CancelledError.
    (Executor.shutdown(cancel_futures=True) would leave as_completed waiting forever.)"""
    def call(*args):
        if stop.is_set():
            raise concurrent.futures.CancelledError
        return function(*args)

    return call


def _completed(futures, stop: threading.Event):
    """as_completed, except that an interrupt (Ctrl-C) stops the tasks not yet started."""
    try:
        yield from concurrent.futures.as_completed(futures)
    except BaseException:
        stop.set()
        raise


def _bar(total: int, description: str, unit: str, progress: bool):
    from tqdm import tqdm

    # unit="B" with unit_scale shows MB/s and the ETA; no bar when stderr is not a terminal.
    return tqdm(total=total, desc=description, unit=unit, unit_scale=unit == "B", unit_divisor=1024,
                disable=None if progress else True, leave=False)


# ---- Command line ---------------------------------------------------------------------------


def add_arguments(parser) -> None:
    parser.add_argument("--dest", default="data/CREMA-D", help="folder to fill (default: data/CREMA-D)")
    parser.add_argument("--jobs", type=int, default=8, help="parallel downloads (default: 8)")
    parser.add_argument("--mirror", metavar="URL", help=f"base URL serving the same paths as plain files, "
                        f"e.g. the maintainers' GitLab mirror ('gitlab' = {GITLAB_MIRROR})")
    parser.add_argument("--manifest", metavar="FILE", help="take the file list and checksums from a "
                        "filename,sha256,size table instead of the GitHub API")
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    mirror = GITLAB_MIRROR if args.mirror == "gitlab" else args.mirror
    if mirror and not mirror.startswith(("http://", "https://")):
        raise ValueError(f"--mirror must be an http(s) URL or 'gitlab', not {args.mirror!r}")
    started = time.perf_counter()
    report = download(args.dest, Source(mirror=mirror), args.jobs, args.manifest)
    print(report.summary())
    print(f"{args.dest}: {len(report.downloaded) + len(report.present)} files verified "
          f"in {time.perf_counter() - started:.0f} s")
    return 1 if report.failed else 0
