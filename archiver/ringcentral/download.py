"""The body side of a recording download: what counts as a recording, and resuming a broken body.

A download streams to a file while hashing (DownloadState, kept across attempts); a broken body
resumes with a Range request from the bytes already on disk, and the whole is checked against the
announced length. The client asks for `Accept-Encoding: identity`, and bytes are written as they
came (never decoded), so Range offsets and bytes on disk agree even behind a compressing proxy.

A body is complete only when its end is proven: by its Content-Length, by a Content-Range total, or by
chunked framing. A body delimited only by the connection closing (no length, no chunks: some proxies
send it) is followed by `Range: bytes=<received>-`, which must answer 416 (nothing more) before the
bytes count as the recording; a cut there would otherwise look like the end.

A body is a recording only when it is non-empty and its Content-Type is `audio/*` (RingCentral sends
audio/mpeg and audio/wav). Anything else, an HTML page from a proxy or a captive portal,
application/octet-stream, no type at all, or a body encoded although identity was asked for, is a
PermanentError with the reason: never an archived object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from archiver.errors import PermanentError, SpoolError, TransientError, TruncatedBody

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    content_type: str
    resumed: int  # how many times the body was resumed with a Range request


@dataclass(frozen=True)
class ContentSample:
    """The first bytes of a recording (Range: bytes=0-0) and the rate group its reply named."""

    status: int
    content_type: str
    first_bytes: bytes
    group: str | None
    limit: int | None
    window: float | None


class DownloadState:
    """Bytes on disk so far and their running hash, kept across attempts so a resume continues."""

    def __init__(self, sink: BinaryIO, on_progress: Callable[[], None] | None = None) -> None:
        self.sink = sink
        self.hasher = hashlib.sha256()
        self.received = 0
        self.resumes = 0
        self.content_type = "application/octet-stream"
        self.end_proven = False
        self._on_progress = on_progress

    def request_headers(self) -> dict[str, str]:
        """The headers of the next attempt: identity encoding, and a Range once bytes are on disk."""
        headers = {"Accept-Encoding": "identity"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
        return headers

    def take(self, response: requests.Response, what: str) -> None:
        """Read one reply's body onto the bytes so far; raise what a short, long or empty body is.

        Afterwards `end_proven` says whether the reply itself proved the body complete: a
        Content-Length or a Content-Range total that the bytes received reach, or chunked framing
        (whose last chunk marks the end). A body delimited only by the connection closing proves
        nothing: a cut looks exactly like the end, so the caller must prove it (prove_end).
        """
        self.content_type = audio_type(response, what)
        if self.received:
            self.resumes += 1
            start = range_start(response.headers.get("Content-Range", ""))
            if response.status_code != 206 or start != self.received:
                self.restart()  # the server ignored or misread the Range: start over
        length = response.headers.get("Content-Length")
        total = self.received + int(length) if length and length.isdigit() else None
        range_total = range_size(response.headers.get("Content-Range", ""))
        if response.status_code != 206:
            range_total = None
        chunked = "chunked" in (response.headers.get("Transfer-Encoding") or "").lower()
        try:
            # read1 hands over whatever has arrived, so a body cut short keeps every byte that
            # came before the cut, and the resume asks only for the rest.
            while chunk := response.raw.read1(CHUNK, decode_content=False):
                self.write(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            announced = total if total is not None else range_total if range_total is not None else "?"
            raise TruncatedBody(
                f"{what}: body cut short after {self.received} of {announced} bytes"
            ) from None
        if total is not None and self.received < total:
            raise TruncatedBody(f"{what}: body cut short after {self.received} of {total} bytes")
        if total is not None and self.received > total:
            self.restart()
            raise TransientError(f"{what}: body longer than its Content-Length ({total} bytes)")
        if range_total is not None and self.received < range_total:
            raise TruncatedBody(f"{what}: body cut short after {self.received} of {range_total} bytes")
        if range_total is not None and self.received > range_total:
            self.restart()
            raise TransientError(
                f"{what}: {self.received} bytes received, its Content-Range says {range_total}"
            )
        if self.received == 0:
            raise PermanentError(f"{what}: empty body (0 bytes of audio)")
        self.end_proven = total is not None or range_total is not None or chunked

    def take_end(self, response: requests.Response, what: str) -> None:
        """The reply to `Range: bytes=<received>-`, asked because the body's end was not proven.

        416 (nothing past what we hold; its Content-Range total, if any, must be what we hold) proves
        the end; 206 carries bytes that the first reply lost to a cut: they are added and the end is
        asked again; a 200 means the server ignores Range, so the end can never be proven."""
        if response.status_code == 416:
            total = range_size(response.headers.get("Content-Range", ""))
            if total is not None and total != self.received:
                self.restart()
                raise TransientError(
                    f"{what}: {self.received} bytes received, the server says the recording has {total}"
                )
            self.end_proven = True
            return
        if response.status_code != 206:
            self.restart()
            raise PermanentError(
                f"{what}: a body without Content-Length or chunked framing, and the server ignores Range, "
                "so a cut cannot be told from the end: not archived"
            )
        self.take(response, what)

    def write(self, chunk: bytes) -> None:
        try:
            self.sink.write(chunk)
        except OSError as exc:
            # A full spool disk: SpoolError, which the run's breaker counts, not this recording.
            raise SpoolError(f"cannot write the spool file: {exc.strerror}") from None
        self.hasher.update(chunk)
        self.received += len(chunk)
        if self._on_progress is not None:
            self._on_progress()

    def restart(self) -> None:
        self.sink.seek(0)
        self.sink.truncate()
        self.hasher = hashlib.sha256()
        self.received = 0
        self.end_proven = False

    def finish(self) -> Downloaded:
        try:
            # No fsync: the spool file is read back at once from the page cache, and after a
            # machine crash the spool is discarded anyway; durability belongs to the destination.
            self.sink.flush()
        except OSError as exc:
            raise SpoolError(f"cannot write the spool file: {exc.strerror}") from None
        return Downloaded(self.received, self.hasher.hexdigest(), self.content_type, self.resumes)


def audio_type(response: requests.Response, what: str) -> str:
    """The reply's Content-Type when it is a recording's (audio/*), else PermanentError."""
    content_type = response.headers.get("Content-Type") or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type.startswith("audio/"):
        raise PermanentError(f"{what}: {media_type or 'no Content-Type'} instead of audio")
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise PermanentError(f"{what}: a {encoding}-encoded body although identity was asked for")
    return content_type


def recording_id(content_uri: str) -> str:
    """The recording id in a contentUri (…/recording/{id}/content), for log and error lines."""
    parts = urlsplit(content_uri).path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1] == "content" else parts[-1]


def range_size(content_range: str) -> int | None:
    """The total of `bytes a-b/total` or `bytes */total` (None when absent or `*`)."""
    total = content_range.rpartition("/")[2].strip()
    return int(total) if total.isdigit() else None


def range_start(content_range: str) -> int | None:
    """The first byte of `bytes a-b/total`."""
    try:
        return int(content_range.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None
