"""The HTTP layer under `cremad download`: requests that tell a permanent answer from a passing
one, retried with back-off, and one checked transfer per file.

pooch makes each transfer: the bytes go to a temporary file beside the target, pooch checks the
sha256 and renames it into place, so nothing unverified sits under a final name and a rerun
fetches only what is missing. Which URL to ask, and what to do when it refuses, is
cremad.download's.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path

import pooch
import requests

from cremad import __version__
from cremad.lfs import POINTER_MAX_SIZE, Target, is_pointer, verify

log = logging.getLogger(__name__)

HEADERS = {"User-Agent": f"cremad/{__version__}"}
TIMEOUT = 60.0  # seconds without a byte before a request counts as failed
# GitHub's words for a spent LFS budget, since 2025 and before ("over its data quota").
BUDGET_ANSWERS = ("exceeded its LFS budget", "over its data quota")
REFUSALS = (403, 429)  # what the media host answers when it will not serve the repository's objects


@dataclasses.dataclass(frozen=True)
class Retry:
    """A failed request is tried `attempts` times in all, waiting first_delay, first_delay *
    factor, ... in between. `sleep` is injectable so tests never wait."""

    attempts: int = 5
    first_delay: float = 1.0
    factor: float = 2.0
    sleep: Callable[[float], None] = time.sleep


class FetchError(Exception):
    """A request or a download that failed; the message names the URL. Permanent ones (404, a
    bad pointer, a refusal) are not retried; `refused`: GitHub's media host will not serve it."""

    def __init__(
        self, message: str, permanent: bool = False, status: int | None = None, refused: bool = False
    ):
        super().__init__(message)
        self.permanent = permanent
        self.status = status  # the HTTP status, if the server answered
        self.refused = refused


def _fetch_error(error: requests.RequestException, url: str, media: bool = False) -> FetchError:
    """The FetchError for a failed request. 408 and 429 ask us to come back later; any other 4xx
    will not change on a retry. From GitHub's media host (`media`), 403, 429 or the LFS budget
    answer are a refusal: permanent, and the reason to try the fallback."""
    response = error.response
    if response is None:  # no answer: refused, reset, timed out or cut short
        return FetchError(f"{url}: {error}")
    status, body = response.status_code, " ".join(response.text[:300].split())
    budget = any(answer in body for answer in BUDGET_ANSWERS)
    refused = media and (budget or status in REFUSALS)
    message = f"HTTP {status} {response.reason} from {url}" + (f': "{body}"' if budget else "")
    return FetchError(message, refused or (400 <= status < 500 and status not in (408, 429)), status, refused)


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
        try:
            response = requests.get(url, headers=HEADERS, timeout=TIMEOUT)
            response.raise_for_status()
            return response.content
        except requests.RequestException as error:
            raise _fetch_error(error, url) from None

    return with_retries(attempt, retry)


def transfer(url: str, final: Path, target: Target, media: bool = False) -> None:
    """One download by pooch: into a temporary file beside `final`, checked, renamed to `final`."""

    def download_and_check(url: str, output_file: str, pooch_instance) -> None:
        pooch.HTTPDownloader(headers=HEADERS, timeout=TIMEOUT)(url, output_file, pooch_instance)
        received = Path(output_file)
        if received.stat().st_size < POINTER_MAX_SIZE and is_pointer(received):  # the same every time
            raise FetchError(f"{url}: sent the Git LFS pointer, not the object", permanent=True)
        if target.algorithm != "sha256" and (problem := verify(received, target)):  # pooch knows no git ids
            raise FetchError(f"{url}: {problem}")

    known_hash = f"sha256:{target.digest}" if target.algorithm == "sha256" else None
    try:
        pooch.retrieve(url, known_hash, fname=final.name, path=final.parent, downloader=download_and_check)
    except requests.RequestException as error:
        raise _fetch_error(error, url, media) from None
    except ValueError:  # pooch's hash check; the temporary file is gone
        raise FetchError(f"{url}: the sha256 of the bytes received is not {target.digest[:16]}...") from None
