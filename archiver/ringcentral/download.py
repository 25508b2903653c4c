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
from archiver.models import ArchivedObject

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Downloaded:
    """A recording's body, complete in the spool file: the object it becomes once stored under a key."""

    size: int
    sha256: str
    content_type: str
    resumed: int  # how many times the body was resumed with a Range request

    def archived_as(self, key: str) -> ArchivedObject:
        return ArchivedObject(key, self.content_type, self.size, self.sha256)


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
        self.expected: int | None = None  # the recording's size, as the first reply to name one said
        self._on_progress = on_progress

    def request_headers(self) -> dict[str, str]:
        """The headers of the next attempt: identity encoding, and a Range once bytes are on disk."""
        headers = {"Accept-Encoding": "identity"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
        return headers

    def take(self, response: requests.Response, what: str) -> None:
        """Read one reply's body onto the bytes so far; raise what a short, long or empty body is.

        Every size a reply announces (a 200's Content-Length, a 206's Content-Range total) must agree
        with the first one announced: a resume that names another size is another body. A 206 must
        start where our bytes end and bring at least one byte. Afterwards `end_proven` says whether the
        replies proved the body complete: the bytes reach the announced size, or chunked framing (whose
        last chunk marks the end) closed a body of unannounced size. A body delimited only by the
        connection closing proves nothing: a cut looks exactly like the end (take_end proves it).
        """
        self.content_type = audio_type(response, what)
        partial = response.status_code == 206
        if self.received:
            self.resumes += 1
            if not partial:
                self.restart()  # the server ignored the Range: the whole body follows
            elif range_start(response.headers.get("Content-Range", "")) != self.received:
                raise TransientError(f"{what}: a resume that does not start at byte {self.received}")
        before = self.received
        length = response.headers.get("Content-Length")
        reply_end = before + int(length) if length and length.isdigit() else None
        announced = range_size(response.headers.get("Content-Range", "")) if partial else reply_end
        if announced is not None:
            if self.expected is not None and announced != self.expected:
                self.restart()
                raise TransientError(
                    f"{what}: the size announced changed from {self.expected} to {announced}"
                )
            self.expected = announced
        chunked = "chunked" in (response.headers.get("Transfer-Encoding") or "").lower()
        try:
            # read1 hands over whatever has arrived, so a body cut short keeps every byte that
            # came before the cut, and the resume asks only for the rest.
            while chunk := response.raw.read1(CHUNK, decode_content=False):
                self.write(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
            raise TruncatedBody(
                f"{what}: body cut short after {self.received} of {self.expected or '?'} bytes"
            ) from None
        if reply_end is not None and self.received < reply_end:
            raise TruncatedBody(f"{what}: body cut short after {self.received} of {reply_end} bytes")
        if (reply_end is not None and self.received > reply_end) or (
            self.expected is not None and self.received > self.expected
        ):
            self.restart()
            raise TransientError(f"{what}: a body longer than announced")
        if self.received == 0:
            raise PermanentError(f"{what}: empty body (0 bytes of audio)")
        if partial and self.received == before:
            raise TransientError(f"{what}: a 206 reply with no bytes")
        if self.expected is not None and self.received < self.expected:
            if reply_end is not None:  # its own length was met: it says it ended short of the whole
                self.restart()
                raise TransientError(f"{what}: a reply that ends at {self.received} of {self.expected} bytes")
            raise TruncatedBody(f"{what}: body cut short after {self.received} of {self.expected} bytes")
        self.end_proven = self.expected is not None or chunked

    def take_end(self, response: requests.Response, what: str) -> None:
        """The reply to `Range: bytes=<received>-`, asked because the body's end was not proven.

        A 416 whose Content-Range total is what we hold proves the end; a 206 carries bytes that the
        first reply lost to a cut: they are added (take) and the end is asked again; a 200, or a 416
        that names no total, leaves the end unprovable: that recording's attempt fails."""
        if response.status_code == 416:
            total = range_size(response.headers.get("Content-Range", ""))
            if total is None:
                raise PermanentError(
                    f"{what}: a body without Content-Length or chunked framing, and the server's 416 names "
                    "no total, so a cut cannot be told from the end: not archived"
                )
            if total != self.received:
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
        self.expected = None

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
