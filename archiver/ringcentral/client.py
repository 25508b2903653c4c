"""RingCentral data calls: call-log paging (a generator), streamed recording downloads, deletions.

Every request goes through one pooled `requests` session (passed in) with connect and read
timeouts, the pacer of its rate group (pacer.RateGroups) and one classification of failures
(retry.py). A token-class 401 renews the token once per request; any other 401 or a 403 is an
AuthError at once. The token goes only to RingCentral's own hosts: the platform host and the hosts
beside it (media.ringcentral.com beside platform.ringcentral.com); a nextPage link is followed only
when it names the very resource that was asked for.

Downloads stream to a file while hashing; a broken body resumes with a Range request from the bytes
already on disk, and the whole is checked against the announced length. They ask for
`Accept-Encoding: identity` so Range offsets and bytes on disk agree behind a compressing proxy.
A body is a recording only when it is non-empty and its Content-Type is `audio/*` (RingCentral sends
audio/mpeg and audio/wav); anything else (an HTML error page from a proxy, application/octet-stream,
no type at all) is a PermanentError with the reason, never an archived object.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
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
from archiver.errors import (
    AuthError,
    PermanentError,
    RateLimited,
    SpoolError,
    TokenExpired,
    TransientError,
    TruncatedBody,
)
from archiver.models import format_time
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.calllog import CallLogPage, recordings_in
from archiver.ringcentral.pacer import RateGroups, RatePacer
from archiver.ringcentral.retry import DEFAULT_ATTEMPTS, classify, header, policy, rate_window

log = structlog.get_logger(__name__)
CHUNK = 1024 * 1024
PER_PAGE = 1000
MAX_DELETE = 100  # RingCentral's limit of ids per DELETE call-recordings (CallRecordingIds.maxItems)
CALL_LOG_PATH = "/restapi/v1.0/account/~/call-log"
DELETE_PATH = "/restapi/v1.0/account/~/call-recordings"
RINGCENTRAL_DOMAINS = ("ringcentral.com", "ringcentral.biz")


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


@dataclass(frozen=True)
class ContentSample:
    """The first bytes of a recording (Range: bytes=0-0) and the rate group its reply named."""

    status: int
    content_type: str
    first_bytes: bytes
    group: str | None
    limit: int | None
    window: float | None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default


def same_resource(candidate: str, asked: str) -> bool:
    """True when `candidate` has the scheme, host, port and path of `asked` (a nextPage we may follow)."""
    return _origin(candidate) == _origin(asked) and urlsplit(candidate).path == urlsplit(asked).path


def ringcentral_host(url: str, platform_url: str) -> bool:
    """May our token be sent to `url`? The platform's host, a host beside it (the media host), or a
    RingCentral domain; over https, or over the platform's own scheme (the emulator's http)."""
    scheme, host, _ = _origin(url)
    platform_scheme, platform_host, _ = _origin(platform_url)
    if not host or scheme not in ("https", platform_scheme):
        return False
    if host == platform_host:
        return True
    labels = platform_host.split(".")
    parent = ".".join(labels[1:]) if len(labels) >= 3 and not platform_host.replace(".", "").isdigit() else ""
    domains = (*RINGCENTRAL_DOMAINS, *((parent,) if parent else ()))
    return any(host == d or host.endswith("." + d) for d in domains)


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
        on_progress: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._server_url = server_url.rstrip("/")
        self._session = session
        self._auth = auth
        self._groups = RateGroups({"heavy": heavy, auth.pacer.group: auth.pacer})
        self._timeout = timeout
        self._attempts = attempts
        self._cancel = cancel
        self._on_progress = on_progress
        self._sleep = sleep

    @property
    def pacers(self) -> dict[str, RatePacer]:
        """Every rate group's pacer (heavy, auth, and any group RingCentral has named), by group."""
        return self._groups.pacers

    @property
    def scope(self) -> str:
        """The token's scope: the app permissions RingCentral granted it, space-separated."""
        return self._auth.scope

    def _progress(self) -> None:
        if self._on_progress is not None:
            self._on_progress()

    # -- one request ------------------------------------------------------------------------------
    def _send(
        self,
        kind: str,
        url: str,
        what: str,
        *,
        method: str = "GET",
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
    ) -> requests.Response:
        """One request with a valid token inside its group's budget; a token-class 401 renews the
        token once, any other 401 or 403 raises AuthError."""
        host = urlsplit(url).hostname or "RingCentral"
        if not ringcentral_host(url, self._server_url):
            # Never send the token to a host that is not RingCentral's.
            raise PermanentError(f"{what}: {host} is not a RingCentral host; not fetched with our token")
        token = self._auth.token()
        renewed = False
        while True:
            pacer = self._groups.pacer_for(kind)
            pacer.acquire(self._cancel)
            try:
                response = self._session.request(
                    method,
                    url,
                    auth=BearerAuth(token),  # an auth object also spares requests a ~/.netrc lookup
                    headers={"Accept": "*/*", **(headers or {})},
                    json=json_body,
                    timeout=self._timeout,
                    stream=stream,
                )
            except requests.exceptions.ChunkedEncodingError:
                pacer.release(None)
                raise TruncatedBody(f"a reply from {host} cut short") from None
            except requests.RequestException as exc:
                pacer.release(None)  # the server may have counted it: so do we
                # Only the class name: requests' messages can carry the URL and pool details.
                raise TransientError(f"{type(exc).__name__} talking to {host}") from None
            counted = self._groups.settle(kind, pacer, response.headers)
            self._progress()
            log.debug(
                "http_response",
                method=method,
                url=url,
                status=response.status_code,
                seconds=round(response.elapsed.total_seconds(), 3),
                group=counted.group,
                rate_remaining=response.headers.get("X-Rate-Limit-Remaining"),
            )
            if response.status_code < 300:
                return response
            body = _error_body(response)
            response.close()
            error = classify(response.status_code, body, response.headers, f"{what} on {host}")
            if isinstance(error, TokenExpired) and not renewed:
                token = self._auth.renew(token)
                renewed = True
                continue
            if isinstance(error, RateLimited):
                hold = counted.penalize(error.retry_after, rate_window(response.headers))
                log.warning(
                    "rate_limited",
                    group=counted.group,
                    host=host,
                    what=what,
                    retry_after=error.retry_after,
                    hold=hold,
                )
            assert error is not None
            raise error

    def _retry_logger(self, url: str, what: str) -> Callable[[RetryCallState], None]:
        host = urlsplit(url).hostname or "RingCentral"

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "retrying",
                host=host,
                what=what,
                attempt=state.attempt_number,
                reason=str(exc),
                kind=type(exc).__name__,
            )

        return log_retry

    # -- call log ---------------------------------------------------------------------------------
    def call_log_pages(
        self,
        date_from: datetime,
        date_to: datetime,
        what: str | None = None,
        *,
        recording_type: str | None = None,
    ) -> Iterator[CallLogPage]:
        """Pages of the company call log for [date_from, date_to): Detailed view, every call.

        No `recordingType` filter by default: whether RingCentral's filter sees recordings that exist
        only on a leg is unverified (docs/ringcentral-api.md#records-and-legs), so the scan reads every
        call and calllog.recordings_in picks the recordings from records and legs. The cost: about
        one Heavy request per 1,000 calls (perPage=1000), recorded or not. `recording_type` is for
        `check`, which compares the two readings.

        nextPage is followed only when it names the resource asked for (scheme, host, port, path);
        otherwise page N+1 is built from the original query. The pages stop at an empty page.
        """
        what = what or f"call-log {date_from:%Y-%m-%d}"
        params = [
            ("dateFrom", format_time(date_from)),
            ("dateTo", format_time(date_to)),
            ("view", "Detailed"),
            *((("recordingType", recording_type),) if recording_type else ()),
            ("perPage", str(PER_PAGE)),
        ]
        base = f"{self._server_url}{CALL_LOG_PATH}"
        url = f"{base}?{urlencode(params)}"
        seen: set[str] = set()
        number = 1
        while True:
            if url in seen:
                raise TransientError(f"the call log's nextPage for {what} points back at a page already read")
            seen.add(url)
            page = self._get_json("call-log", url, what)
            records = page.get("records")
            if not isinstance(records, list):
                raise TransientError(f"a call-log page for {what} without a records list")
            found = [ref for record in records if isinstance(record, dict) for ref in recordings_in(record)]
            yield CallLogPage(len(records), found)
            navigation = page.get("navigation")
            next_page = navigation.get("nextPage") if isinstance(navigation, dict) else None
            next_uri = next_page.get("uri") if isinstance(next_page, dict) else None
            if not isinstance(next_uri, str) or not next_uri or not records:
                return
            number += 1
            if same_resource(next_uri, url):
                url = next_uri
            else:
                log.info(
                    "next_page_rebuilt", what=what, page=number, reason="nextPage names another resource"
                )
                url = f"{base}?{urlencode([*params, ('page', str(number))])}"

    def _get_json(self, kind: str, url: str, what: str) -> dict[str, Any]:
        for attempt in policy(self._attempts, self._retry_logger(url, what), self._sleep):
            with attempt:
                response = self._send(kind, url, what)
                try:
                    data = response.json()
                except requests.RequestException:
                    raise TransientError(f"a {what} page cut short") from None
                except ValueError:
                    raise TransientError(f"a {what} page that is not JSON") from None
                if not isinstance(data, dict):
                    raise TransientError(f"a {what} page that is not a JSON object")
                return data
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises

    # -- recordings -------------------------------------------------------------------------------
    def download(self, content_uri: str, sink: BinaryIO, what: str | None = None) -> Downloaded:
        """Stream a recording into `sink` (an empty, seekable file), resuming broken bodies.

        TruncatedBody when the body stays short after every attempt (charged to the recording),
        TransientError when the world keeps failing (not charged), PermanentError for a body that is
        no recording, SpoolError when the spool cannot be written.
        """
        what = what or f"recording {_recording_id(content_uri)}"
        state = _DownloadState(sink, self._on_progress)
        for attempt in policy(self._attempts, self._retry_logger(content_uri, what), self._sleep):
            with attempt:
                self._download_once(content_uri, what, state)
        try:
            # No fsync: the spool file is read back at once from the page cache, and after a
            # machine crash the spool is discarded anyway; durability belongs to the destination.
            sink.flush()
        except OSError as exc:
            raise SpoolError(f"cannot write the spool file: {exc.strerror}") from None
        return Downloaded(state.received, state.hasher.hexdigest(), state.content_type, state.resumes)

    def _download_once(self, content_uri: str, what: str, state: _DownloadState) -> None:
        headers = {"Accept-Encoding": "identity"}
        if state.received:
            headers["Range"] = f"bytes={state.received}-"
        response = self._send("content", content_uri, what, stream=True, headers=headers)
        with response:
            state.content_type = _audio_type(response, what)
            if state.received:
                state.resumes += 1
                start = _range_start(response.headers.get("Content-Range", ""))
                if response.status_code != 206 or start != state.received:
                    state.restart()  # the server ignored or misread the Range: start over
            length = response.headers.get("Content-Length")
            total = state.received + int(length) if length and length.isdigit() else None
            try:
                # read1 hands over whatever has arrived, so a body cut short keeps every byte that
                # came before the cut, and the resume asks only for the rest.
                while chunk := response.raw.read1(CHUNK, decode_content=False):
                    state.write(chunk)
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError):
                announced = total if total is not None else "?"
                raise TruncatedBody(
                    f"{what}: body cut short after {state.received} of {announced} bytes"
                ) from None
        if total is not None and state.received < total:
            raise TruncatedBody(f"{what}: body cut short after {state.received} of {total} bytes")
        if total is not None and state.received > total:
            state.restart()
            raise TransientError(f"{what}: body longer than its Content-Length ({total} bytes)")
        if state.received == 0:
            raise PermanentError(f"{what}: empty body (0 bytes of audio)")

    def sample(self, content_uri: str, what: str = "a recording's first byte") -> ContentSample:
        """The first byte of a recording (Range: bytes=0-0): proves ReadCallRecording and the media host,
        and reports the rate group, limit and window the media reply names."""
        headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
        for attempt in policy(self._attempts, self._retry_logger(content_uri, what), self._sleep):
            with attempt, self._send("content", content_uri, what, stream=True, headers=headers) as response:
                first = response.raw.read(16, decode_content=False) or b""
                limit = header(response.headers, "X-Rate-Limit-Limit")
                group = header(response.headers, "X-Rate-Limit-Group")
                return ContentSample(
                    response.status_code,
                    response.headers.get("Content-Type", ""),
                    first,
                    group.lower() if group else None,
                    int(limit) if limit and limit.isdigit() else None,
                    rate_window(response.headers),
                )
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises

    def delete_recordings(self, ids: Sequence[str]) -> None:
        """Delete recordings at RingCentral (the content, not the call-log records): one Heavy
        `DELETE /restapi/v1.0/account/~/call-recordings` with {"records": ids}, at most 100 ids.

        A 403 is an AuthError naming the app permission EditCallLog and the user permission
        EditCompanyCallRecordings."""
        if len(ids) > MAX_DELETE:
            raise ValueError(f"at most {MAX_DELETE} recordings per deletion, not {len(ids)}")
        if not ids:
            return
        url = f"{self._server_url}{DELETE_PATH}"
        what = f"deletion of {len(ids)} recording(s)"
        try:
            for attempt in policy(self._attempts, self._retry_logger(url, what), self._sleep):
                with attempt:
                    self._send("delete", url, what, method="DELETE", json_body={"records": list(ids)}).close()
        except AuthError as exc:
            raise AuthError(
                f"{exc}; deleting needs the app permission EditCallLog and the user permission "
                "EditCompanyCallRecordings",
                hint="add EditCallLog to the app in the Developer Console and give the JWT's user "
                "EditCompanyCallRecordings (Admin Portal > Roles), "
                "or set RC_ARCHIVER_DELETE_FROM_SOURCE=false",
            ) from None


def _error_body(response: requests.Response) -> Any:
    if "json" not in (response.headers.get("Content-Type") or ""):
        return None
    try:
        return response.json()
    except (ValueError, requests.RequestException):
        return None


def _audio_type(response: requests.Response, what: str) -> str:
    """The reply's Content-Type when it is a recording's (audio/*), else PermanentError."""
    content_type = response.headers.get("Content-Type") or ""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if not media_type.startswith("audio/"):
        raise PermanentError(f"{what}: {media_type or 'no Content-Type'} instead of audio")
    encoding = (response.headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise PermanentError(f"{what}: a {encoding}-encoded body although identity was asked for")
    return content_type


def _recording_id(content_uri: str) -> str:
    parts = urlsplit(content_uri).path.rstrip("/").split("/")
    return parts[-2] if len(parts) >= 2 and parts[-1] == "content" else parts[-1]


def _range_start(content_range: str) -> int | None:
    """The first byte of `bytes a-b/total`."""
    try:
        return int(content_range.split(" ", 1)[1].split("-", 1)[0])
    except (IndexError, ValueError):
        return None


class _DownloadState:
    """Bytes on disk so far and their running hash, kept across attempts so a resume continues."""

    def __init__(self, sink: BinaryIO, on_progress: Callable[[], None] | None) -> None:
        self.sink = sink
        self.hasher = hashlib.sha256()
        self.received = 0
        self.resumes = 0
        self.content_type = "application/octet-stream"
        self._on_progress = on_progress

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
