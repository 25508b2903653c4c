"""RingCentral data calls: call-log paging (a generator) and streamed recording downloads.

Every request goes through one pooled `requests` session (passed in) with connect and read
timeouts, the Heavy pacer, and one classification of failures (retry.py). A 401 logs in again once
per request. A download streams to a file while hashing; a broken body resumes with a Range request
from the bytes already on disk, and the whole is checked against the announced length.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO
from urllib.parse import urlencode, urlsplit

import requests
import requests.adapters
import requests.auth
import structlog
import urllib3.exceptions
from tenacity import RetryCallState

from archiver import __version__
from archiver.errors import RateLimited, SpoolError, TokenExpired, TransientError, TruncatedBody
from archiver.models import format_time
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.calllog import CallLogPage, recordings_in
from archiver.ringcentral.pacer import RatePacer
from archiver.ringcentral.retry import DEFAULT_ATTEMPTS, classify, policy

log = structlog.get_logger(__name__)
CHUNK = 1024 * 1024
PER_PAGE = 1000


class BearerAuth(requests.auth.AuthBase):
    """Authorization: Bearer <token>; requests drops it on a redirect to another host."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request


def make_session(pool_size: int) -> requests.Session:
    """The one pooled HTTP session for RingCentral; retries are ours (retry.py), not urllib3's."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.headers["User-Agent"] = f"rc-archiver/{__version__}"
    return session


@dataclass(frozen=True)
class Downloaded:
    size: int
    sha256: str
    content_type: str
    resumed: int  # how many times the body was resumed with a Range request


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying", attempt=state.attempt_number, reason=str(exc), kind=type(exc).__name__)


class RingCentralClient:
    def __init__(
        self,
        server_url: str,
        session: requests.Session,
        auth: Authenticator,
        heavy: RatePacer,
        timeout: tuple[float, float],
        attempts: int = DEFAULT_ATTEMPTS,
        cancel: threading.Event | None = None,
    ) -> None:
        self._server_url = server_url.rstrip("/")
        self._session = session
        self._auth = auth
        self._heavy = heavy
        self._timeout = timeout
        self._attempts = attempts
        self._cancel = cancel

    @property
    def pacer(self) -> RatePacer:
        return self._heavy

    # -- one request ------------------------------------------------------------------------------
    def _send(self, url: str, *, stream: bool, headers: Mapping[str, str] | None = None) -> requests.Response:
        """One request with a valid token inside the rate budget; a 401 renews the token once."""
        what = urlsplit(url).hostname or "RingCentral"
        token = self._auth.token()
        renewed = False
        while True:
            ticket = self._heavy.acquire(self._cancel)
            try:
                response = self._session.get(
                    url,
                    auth=BearerAuth(token),  # an auth object also spares requests a ~/.netrc lookup
                    headers={"Accept": "*/*", **(headers or {})},
                    timeout=self._timeout,
                    stream=stream,
                )
            except requests.exceptions.ChunkedEncodingError:
                self._heavy.release(ticket, None)
                raise TruncatedBody(f"a reply from {what} cut short") from None
            except requests.RequestException as exc:
                self._heavy.release(ticket, None)  # the server may have counted it: so do we
                # Only the class name: requests' messages can carry the URL and pool details.
                raise TransientError(f"{type(exc).__name__} talking to {what}") from None
            self._heavy.release(ticket, response.headers)
            log.debug(
                "http_response",
                method="GET",
                url=url,
                status=response.status_code,
                seconds=round(response.elapsed.total_seconds(), 3),
                rate_remaining=response.headers.get("X-Rate-Limit-Remaining"),
            )
            if response.status_code < 300:
                return response
            body: Any = None
            if "json" in response.headers.get("Content-Type", ""):
                try:
                    body = response.json()
                except (ValueError, requests.RequestException):
                    body = None
            response.close()
            error = classify(response.status_code, body, response.headers, what)
            if isinstance(error, TokenExpired) and not renewed:
                token = self._auth.renew(token)
                renewed = True
                continue
            if isinstance(error, RateLimited):
                self._heavy.penalize(error.retry_after or None)
                log.warning("rate_limited", group="heavy", retry_after=error.retry_after or None)
            assert error is not None
            raise error

    # -- call log ---------------------------------------------------------------------------------
    def call_log_pages(self, date_from: datetime, date_to: datetime) -> Iterator[CallLogPage]:
        """Pages of the company call log for [date_from, date_to): Detailed view, recorded calls only."""
        query = urlencode(
            [
                ("dateFrom", format_time(date_from)),
                ("dateTo", format_time(date_to)),
                ("view", "Detailed"),
                ("recordingType", "All"),
                ("perPage", str(PER_PAGE)),
            ]
        )
        url: str | None = f"{self._server_url}/restapi/v1.0/account/~/call-log?{query}"
        seen: set[str] = set()
        while url:
            if url in seen:
                raise TransientError("the call log's nextPage points back at a page already read")
            seen.add(url)
            page = self._get_json(url)
            records = page.get("records")
            if not isinstance(records, list):
                raise TransientError("a call-log page without a records list")
            yield CallLogPage(len(records), [ref for record in records for ref in recordings_in(record)])
            next_page = (page.get("navigation") or {}).get("nextPage") or {}
            url = next_page.get("uri") if isinstance(next_page, dict) else None

    def first_page(self, date_from: datetime, date_to: datetime) -> list[dict[str, Any]]:
        """One small call-log page: proves the token can read the company call log."""
        query = urlencode(
            [("dateFrom", format_time(date_from)), ("dateTo", format_time(date_to)), ("perPage", "1")]
        )
        records = self._get_json(f"{self._server_url}/restapi/v1.0/account/~/call-log?{query}").get("records")
        return records if isinstance(records, list) else []

    def _get_json(self, url: str) -> dict[str, Any]:
        for attempt in policy(self._attempts, _log_retry):
            with attempt:
                response = self._send(url, stream=False)
                try:
                    data = response.json()
                except requests.RequestException:
                    raise TransientError("a call-log page cut short") from None
                except ValueError:
                    raise TransientError("a call-log page that is not JSON") from None
                if not isinstance(data, dict):
                    raise TransientError("a call-log page that is not a JSON object")
                return data
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises

    # -- recordings -------------------------------------------------------------------------------
    def download(self, content_uri: str, sink: BinaryIO) -> Downloaded:
        """Stream a recording into `sink` (an empty, seekable file), resuming broken bodies."""
        state = _DownloadState(sink)
        for attempt in policy(self._attempts, _log_retry):
            with attempt:
                self._download_once(content_uri, state)
        try:
            # No fsync: the spool file is read back at once from the page cache, and after a
            # machine crash the spool is discarded anyway; durability belongs to the destination.
            sink.flush()
        except OSError as exc:
            raise SpoolError(f"cannot write the spool file: {exc.strerror}") from None
        return Downloaded(state.received, state.hasher.hexdigest(), state.content_type, state.resumes)

    def _download_once(self, content_uri: str, state: _DownloadState) -> None:
        headers = {"Range": f"bytes={state.received}-"} if state.received else {}
        response = self._send(content_uri, stream=True, headers=headers)
        with response:
            if state.received:
                state.resumes += 1
                start = _range_start(response.headers.get("Content-Range", ""))
                if response.status_code != 206 or start != state.received:
                    state.restart()  # the server ignored or misread the Range: start over
            length = response.headers.get("Content-Length")
            total = state.received + int(length) if length and length.isdigit() else None
            state.content_type = response.headers.get("Content-Type", "application/octet-stream")
            try:
                # read1 hands over whatever has arrived, so a body cut short keeps every byte that
                # came before the cut, and the resume asks only for the rest.
                while chunk := response.raw.read1(CHUNK, decode_content=True):
                    state.write(chunk)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
                raise TruncatedBody(
                    f"body cut short after {state.received} of {total if total is not None else '?'} bytes",
                ) from None
        if total is not None and state.received < total:
            raise TruncatedBody(f"body cut short after {state.received} of {total} bytes")
        if total is not None and state.received > total:
            state.restart()
            raise TransientError(f"body longer than its Content-Length ({total} bytes)")


def _range_start(content_range: str) -> int | None:
    """The first byte of `bytes a-b/total`."""
    try:
        return int(content_range.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


class _DownloadState:
    """Bytes on disk so far and their running hash, kept across attempts so a resume continues."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.hasher = hashlib.sha256()
        self.received = 0
        self.resumes = 0
        self.content_type = "application/octet-stream"

    def write(self, chunk: bytes) -> None:
        try:
            self.sink.write(chunk)
        except OSError as exc:
            # A full spool disk fails this recording with a clear reason; the next run retries it.
            raise SpoolError(f"cannot write the spool file: {exc.strerror}") from None
        self.hasher.update(chunk)
        self.received += len(chunk)

    def restart(self) -> None:
        self.sink.seek(0)
        self.sink.truncate()
        self.hasher = hashlib.sha256()
        self.received = 0
