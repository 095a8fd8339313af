"""Download CREMA-D from its GitHub repository, or from the maintainers' GitLab mirror when
GitHub's LFS budget is spent; every file checked against the official Git LFS pointers.

1. The file list comes from the GitHub tree API (the root, `AudioWAV/`, `processedResults/`),
   each entry with its git blob sha1 and size.
2. Each WAV's pointer comes from raw.githubusercontent.com and must match its blob sha1: the tree
   vouches for the pointer, the pointer for the audio (cremad.lfs). Pointers are not LFS
   traffic, so GitHub serves them even when the LFS budget is spent. `<dest>/manifest.csv`
   caches them; without the API it (or `--manifest FILE`) is the list.
3. The audio comes from media.githubusercontent.com until that host refuses (the LFS budget
   answer, or HTTP 403 or 429; since March 2025, the corpus's issue #15); from then on from the
   fallback mirror. `--mirror BASE` takes every file from BASE from the start.

Each transfer, checked by pooch, and the retries are cremad.fetching's. Ours: the pointer protocol,
the choice of source, and the report.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import threading
import time
import urllib.parse
from pathlib import Path

import pooch

from cremad import CremadError
from cremad.config import FeatureConfig
from cremad.corpus import CREMAD_CLIPS
from cremad.duplicates import identical_groups
from cremad.fetching import FetchError, Retry, get_bytes, transfer, with_retries
from cremad.lfs import (
    AUDIO_DIR,
    LEGACY_NAMES,
    POINTER_MAX_SIZE,
    Target,
    format_pointer,
    git_blob_sha1,
    local_copy,
    parse_pointer,
    read_manifest,
    verify,
    write_manifest,
)

log = logging.getLogger(__name__)

GITHUB_REPO = "CheyneyComputerScience/CREMA-D"
GITHUB_REF = "master"
# The mirror the CREMA-D maintainers opened when GitHub's LFS budget ran out (issue #15, 2025).
GITLAB_MIRROR = "https://gitlab.com/cs-cooper-lab/crema-d-mirror/-/raw/main"
OFFICIAL = "GitHub"  # how the report names the official source
METADATA_FILES = (
    "VideoDemographics.csv",
    "SentenceFilenames.csv",
    "processedResults/summaryTable.csv",
    "processedResults/tabulatedVotes.csv",
)
MANIFEST_NAME = "manifest.csv"
GIVE_UP_AFTER = 32  # downloads failed in a row before the rest are not even tried
# Known corpus problems, reported after every run rather than hidden.
SILENT_CLIPS = ("AudioWAV/1076_MTI_SAD_XX.wav",)  # the corpus README: "no audio, very short"
# The same bytes under two emotions (AudioWAV-lfs-pointers.csv's sha256 column): one label is wrong.
IDENTICAL_CLIPS = (
    ("AudioWAV/1006_TIE_HAP_XX.wav", "AudioWAV/1006_TIE_NEU_XX.wav"),
    ("AudioWAV/1013_WSI_DIS_XX.wav", "AudioWAV/1013_WSI_SAD_XX.wav"),
    ("AudioWAV/1017_IWW_ANG_XX.wav", "AudioWAV/1017_IWW_FEA_XX.wav"),
)


@dataclasses.dataclass(frozen=True)
class Source:
    """Where every URL comes from: GitHub's API, raw and LFS media hosts, and the mirrors."""

    api: str = "https://api.github.com"
    raw: str = "https://raw.githubusercontent.com"
    media: str = "https://media.githubusercontent.com/media"
    repo: str = GITHUB_REPO
    ref: str = GITHUB_REF
    mirror: str | None = None  # serves every file, LFS or not, as plain bytes under its path
    fallback: str | None = GITLAB_MIRROR  # serves the LFS objects once the media host refuses them

    def tree_url(self, tree: str) -> str:
        return f"{self.api}/repos/{self.repo}/git/trees/{urllib.parse.quote(tree)}"

    def raw_url(self, path: str) -> str:
        return f"{self.raw}/{self.repo}/{self.ref}/{urllib.parse.quote(path)}"

    def content_url(self, path: str, lfs: bool, base: str | None = None) -> str:
        """The URL of a file's bytes: under the mirror `base` if given, else on GitHub."""
        if base:
            return f"{base.rstrip('/')}/{urllib.parse.quote(path)}"
        host = self.media if lfs else self.raw
        return f"{host}/{self.repo}/{self.ref}/{urllib.parse.quote(path)}"


@dataclasses.dataclass
class Report:
    downloaded: list[str] = dataclasses.field(default_factory=list)
    present: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)  # path -> reason
    notes: list[str] = dataclasses.field(default_factory=list)  # corpus problems, substitutions
    served: dict[str, int] = dataclasses.field(default_factory=dict)  # source -> files it served
    refusal: str | None = None  # the media host's answer that sent the LFS objects to the fallback

    def source_line(self) -> str:
        """One line: which source served how many of the files downloaded, and why."""
        if not self.served:
            return "source: nothing was downloaded"
        counts = sorted(self.served.items(), key=lambda item: (item[0] != OFFICIAL, item[0]))
        line = "source: " + ", ".join(f"{count} files from {name}" for name, count in counts)
        return line + (f" (GitHub's LFS media host refused: {self.refusal})" if self.refusal else "")

    def summary(self) -> str:
        lines = [
            f"downloaded {len(self.downloaded)}, already present {len(self.present)}, "
            f"failed {len(self.failed)}",
            self.source_line(),
        ]
        not_tried = sorted(path for path, reason in self.failed.items() if reason.startswith("not tried"))
        lines += [
            f"  FAILED {path}: {reason}"
            for path, reason in sorted(self.failed.items())
            if path not in not_tried
        ]
        if not_tried:
            lines.append(f"  FAILED {len(not_tried)} more, {self.failed[not_tried[0]]} ({not_tried[0]}, ...)")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


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
            entries.update(
                {
                    f"{item['path']}/{sub['path']}": (sub["sha"], sub["size"])
                    for sub in tree(item["sha"])
                    if sub["type"] == "blob"
                }
            )
    return entries


def resolve(
    path: str, blob_sha: str, blob_size: int, cached: dict, dest: Path, source: Source, retry: Retry
) -> Target:
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


def repository_targets(
    dest: Path, source: Source, retry: Retry, jobs: int, report: Report, progress: bool = True
) -> list[Target]:
    """Targets for the metadata and every AudioWAV/*.wav the repository lists now."""
    cached = read_manifest(dest / MANIFEST_NAME) if (dest / MANIFEST_NAME).is_file() else {}
    try:
        entries = list_repository(source, retry)
    except (FetchError, KeyError, ValueError) as error:
        if not cached:
            raise CremadError(
                f"cannot list the repository ({error}); pass --manifest FILE "
                "(filename,sha256,size) to download without the GitHub API"
            ) from None
        log.warning("cannot list the repository (%s); using %s", error, dest / MANIFEST_NAME)
        return manifest_targets(cached, report)
    wanted = [
        path
        for path in entries
        if path in METADATA_FILES or (path.startswith(AUDIO_DIR + "/") and path.lower().endswith(".wav"))
    ]
    report.failed.update({path: "not in the repository" for path in METADATA_FILES if path not in entries})
    targets = []
    with (
        concurrent.futures.ThreadPoolExecutor(jobs) as pool,
        _bar(len(wanted), "pointers", "file", progress) as bar,
    ):
        futures = {
            pool.submit(resolve, path, *entries[path], cached, dest, source, retry): path for path in wanted
        }
        for future in concurrent.futures.as_completed(futures):
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
    return [
        Target(path, size, sha256, "sha256", lfs=path.lower().endswith(".wav"))
        for path, (sha256, size) in sorted(rows.items())
    ]


# ---- Downloads --------------------------------------------------------------------------------


def fetch(target: Target, dest: Path, source: Source, retry: Retry, report: Report) -> tuple[str, str]:
    """Download one target; returns (the name the server had it under, the source that served
    it). An LFS object goes to `source.fallback` when GitHub's media host refuses it, and once
    that host has refused one, every later one goes to the fallback directly."""
    final = dest / target.path
    final.unlink(missing_ok=True)  # it did not verify; pooch keeps a file it has no hash for
    final.with_name(final.name + ".part").unlink(missing_ok=True)  # an unfinished one from before pooch
    if not (target.lfs and source.fallback and not source.mirror):
        return fetch_from(source.mirror, target, final, source, retry), source.mirror or OFFICIAL
    if report.refusal is None:
        try:
            return fetch_from(None, target, final, source, retry), OFFICIAL
        except FetchError as error:
            if not error.refused:
                raise
            if report.refusal is None:  # the switch is for every later file
                report.refusal = str(error)
                log.warning("%s; the audio now comes from %s", error, source.fallback)
    return fetch_from(source.fallback, target, final, source, retry), source.fallback


def fetch_from(base: str | None, target: Target, final: Path, source: Source, retry: Retry) -> str:
    """Download `target` from the mirror `base` (None: GitHub) to `final`, retrying; returns the
    name it was served under: an older mirror's name when the official one is not found."""
    names = [target.path] + ([LEGACY_NAMES[target.path]] if target.path in LEGACY_NAMES else [])
    errors = []
    for name in names:
        url = source.content_url(name, target.lfs, base)
        try:
            with_retries(
                lambda url=url: transfer(url, final, target, media=target.lfs and base is None), retry
            )
            return name
        except FetchError as error:
            errors.append(error)
            if error.status != 404:
                break
    raise errors[0]


def fetch_all(
    missing: list[Target],
    dest: Path,
    source: Source,
    retry: Retry,
    jobs: int,
    progress: bool,
    report: Report,
    verified: dict[str, Path],
) -> None:
    """Download `missing` in parallel behind one progress bar, recording each outcome. After
    GIVE_UP_AFTER failures in a row, or on Ctrl-C, the downloads not yet started are skipped
    (Executor.shutdown(cancel_futures=True) would leave as_completed waiting forever)."""
    stop = threading.Event()

    def fetch_unless_stopped(target: Target) -> tuple[str, str] | None:
        return None if stop.is_set() else fetch(target, dest, source, retry, report)

    failures_in_a_row = 0
    with (
        _bar(sum(target.size for target in missing), "download", "B", progress) as bar,
        concurrent.futures.ThreadPoolExecutor(jobs) as pool,
    ):
        futures = {pool.submit(fetch_unless_stopped, target): target for target in missing}
        try:
            for future in concurrent.futures.as_completed(futures):
                target = futures[future]
                bar.update(target.size)
                try:
                    served = future.result()
                except FetchError as error:
                    report.failed[target.path] = str(error)
                    failures_in_a_row += 1
                    if (
                        failures_in_a_row == GIVE_UP_AFTER
                    ):  # a dead server should not cost every file's retries
                        stop.set()
                    continue
                if served is None:
                    report.failed[target.path] = (
                        f"not tried: the {GIVE_UP_AFTER} downloads before it all failed"
                    )
                    continue
                failures_in_a_row = 0
                verified[target.path] = dest / target.path
                report.downloaded.append(target.path)
                report.served[served[1]] = report.served.get(served[1], 0) + 1
                if served[0] != target.path:
                    report.notes.append(
                        f"the server had {target.path} under its older name {served[0]}; "
                        f"saved as {target.path}"
                    )
        finally:
            stop.set()


def save_manifest(dest: Path, targets: list[Target], verified: dict[str, Path]) -> None:
    """LFS checksums are known from the pointers; a plain file's sha256 once it is verified."""
    write_manifest(
        dest / MANIFEST_NAME,
        {
            target.path: (
                target.digest
                if target.algorithm == "sha256"
                else pooch.file_hash(str(verified[target.path]), alg="sha256"),
                target.size,
            )
            for target in targets
            if target.algorithm == "sha256" or target.path in verified
        },
    )


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
            report.notes.append(
                f"{path} holds no sound (peak {level}), a known corpus problem; "
                "`cremad features` leaves it out unless --keep-silent"
            )
        else:
            report.notes.append(f"{path} was listed as silent by the corpus README but peaks at {level}")


def identical_clip_notes(targets: list[Target]) -> list[str]:
    """Notes on the WAVs whose pointers give the same sha256: each known pair of which the file
    list holds a clip, and any other group it holds."""
    digests = {
        target.path: target.digest
        for target in targets
        if target.algorithm == "sha256" and target.path.startswith(AUDIO_DIR + "/")
    }
    groups = [tuple(group) for group in identical_groups(digests)]
    notes = []
    for pair in IDENTICAL_CLIPS:
        names = " and ".join(pair)
        if pair in groups:
            notes.append(
                f"{names} hold the same bytes under two emotions, a known corpus problem (one label is "
                "wrong); `cremad features` keeps both unless --drop-conflicting"
            )
        elif all(path in digests for path in pair):
            notes.append(f"{names} were known to hold the same bytes but differ in this file list")
        elif any(path in digests for path in pair):
            notes.append(
                f"{names} hold the same bytes under two emotions in the published corpus, a known "
                "corpus problem (not both in this file list)"
            )
    notes += [
        f"{' and '.join(group)} hold the same bytes (by their pointers); `cremad features` reports them"
        for group in groups
        if group not in IDENTICAL_CLIPS
    ]
    return notes


def download(
    dest: str | Path,
    source: Source = Source(),
    jobs: int = 8,
    manifest: str | Path | None = None,
    retry: Retry = Retry(),
    progress: bool = True,
) -> Report:
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
    log.info(
        "%d files listed, %d already here, %d to download (%.0f MB)",
        len(targets),
        len(verified),
        len(missing),
        sum(target.size for target in missing) / 1e6,
    )

    fetch_all(missing, dest, source, retry, jobs, progress, report, verified)
    if manifest is None:
        save_manifest(dest, targets, verified)
    check_silent_clips(dest, report)
    report.notes += identical_clip_notes(targets)
    report.downloaded.sort()
    return report


def _bar(total: int, description: str, unit: str, progress: bool):
    from tqdm import tqdm

    # unit="B" with unit_scale shows MB/s and the ETA; no bar when stderr is not a terminal.
    return tqdm(
        total=total,
        desc=description,
        unit=unit,
        unit_scale=unit == "B",
        unit_divisor=1024,
        disable=None if progress else True,
        leave=False,
    )


# ---- Command line ---------------------------------------------------------------------------


def _mirror_url(value: str | None, option: str) -> str | None:
    """'gitlab' names the maintainers' mirror, 'none' none; anything else must be an http(s) URL."""
    url = {"gitlab": GITLAB_MIRROR, "none": None}.get(value, value) if value else None
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"{option} must be an http(s) URL, 'gitlab' or 'none', not {value!r}")
    return url


def add_arguments(parser) -> None:
    parser.add_argument("--dest", default="data/CREMA-D", help="folder to fill (default: data/CREMA-D)")
    parser.add_argument("--jobs", type=int, default=8, help="parallel downloads (default: 8)")
    parser.add_argument(
        "--fallback",
        metavar="URL",
        default="gitlab",
        help="where the audio comes from once GitHub's LFS host refuses it (LFS budget spent, "
        f"HTTP 403/429); default 'gitlab' = {GITLAB_MIRROR}; 'none' for no fall-back",
    )
    parser.add_argument(
        "--mirror",
        metavar="URL",
        help="take every file from this base URL from the start "
        "(same paths, plain files; 'gitlab' = the maintainers' mirror)",
    )
    parser.add_argument(
        "--manifest",
        metavar="FILE",
        help="take the file list and checksums from a filename,sha256,size table instead of the GitHub API",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    source = Source(
        mirror=_mirror_url(args.mirror, "--mirror"), fallback=_mirror_url(args.fallback, "--fallback")
    )
    started = time.perf_counter()
    report = download(args.dest, source, args.jobs, args.manifest)
    print(report.summary())
    print(
        f"{args.dest}: {len(report.downloaded) + len(report.present)} files verified "
        f"in {time.perf_counter() - started:.0f} s"
    )
    return 1 if report.failed else 0
