"""RingCentral data calls: call-log paging (a generator, paging.py), streamed recording downloads, deletions.

Each request goes through the Channel (channel.py: token, rate group, failure classification); each
call here is retried by the one policy of retry.py, whose `retrying` events name the host, what was
being fetched (`what`: "call-log 2026-11-27", "recording <id>") and the attempt. The body side of a
download (what a recording is, Range resumes) is download.py; the URL rules are urls.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

import requests
import structlog
from tenacity import RetryCallState, Retrying

from archiver.errors import AuthError, RateLimited, TransientError, TruncatedBody
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.channel import Channel, host_of, make_session
from archiver.ringcentral.download import ContentSample, Downloaded, DownloadState, recording_id
from archiver.ringcentral.pacer import RateGroups, RatePacer
from archiver.ringcentral.paging import CALL_LOG_PATH, CallLogPaging
from archiver.ringcentral.retry import DEFAULT_ATTEMPTS, header, policy, rate_window

log = structlog.get_logger(__name__)
MAX_END_PROBES = 8  # Range requests per attempt to find a connection-delimited body's end
MAX_DELETE = 100  # RingCentral's limit of ids per DELETE call-recordings (CallRecordingIds.maxItems)
DELETE_PATH = "/restapi/v1.0/account/~/call-recordings"

__all__ = ["CALL_LOG_PATH", "ContentSample", "Downloaded", "RingCentralClient", "make_session"]


class RingCentralClient(CallLogPaging):
    """RingCentral's data calls: the call log's pages (paging.py), a recording's content streamed or
    sampled, deletions; each request through the Channel, each call retried by retry.py's policy."""

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
        silence_deadline: float | None = None,
    ) -> None:
        self._server_url = server_url.rstrip("/")
        self._auth = auth
        self._groups = RateGroups({"heavy": heavy, auth.pacer.group: auth.pacer})
        self._channel = Channel(self._server_url, session, auth, self._groups, timeout, cancel, on_progress)
        self._attempts = attempts
        self._silence_deadline = silence_deadline
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

    def _policy(
        self, url: str, what: str, retry_on: tuple[type[BaseException], ...] = (TransientError, TruncatedBody)
    ) -> Retrying:
        host = host_of(url)

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

        return policy(self._attempts, log_retry, self._sleep, retry_on, self._silence_deadline)

    def _get_json(self, kind: str, url: str, what: str) -> dict[str, Any]:
        """One JSON object by GET (a call-log page), retried by the policy."""
        for attempt in self._policy(url, what):
            with attempt:
                response = self._channel.send(kind, url, what)
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
        no recording (download.py), SpoolError when the spool cannot be written.
        """
        what = what or f"recording {recording_id(content_uri)}"
        state = DownloadState(sink, self._on_progress)
        for attempt in self._policy(content_uri, what):
            with attempt:
                headers = state.request_headers()
                with self._channel.send(
                    "content", content_uri, what, stream=True, headers=headers
                ) as response:
                    state.take(response, what)
                probes = 0
                while not state.end_proven:
                    # A connection-delimited body: a cut looks like its end, so ask for what follows
                    # (download.py): 416 proves the end, 206 brings what the cut lost.
                    probes += 1
                    if probes > MAX_END_PROBES:
                        raise TransientError(f"{what}: its end still unproven after {MAX_END_PROBES} asks")
                    headers = state.request_headers()
                    with self._channel.send(
                        "content", content_uri, what, stream=True, headers=headers, accept=(416,)
                    ) as response:
                        state.take_end(response, what)
        return state.finish()

    def sample(self, content_uri: str, what: str = "a recording's first byte") -> ContentSample:
        """The first byte of a recording (Range: bytes=0-0): proves ReadCallRecording and the media host,
        and reports the rate group, limit and window the media reply names."""
        headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
        for attempt in self._policy(content_uri, what):
            with (
                attempt,
                self._channel.send("content", content_uri, what, stream=True, headers=headers) as response,
            ):
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

    def delete_recordings(self, ids: Sequence[str]) -> frozenset[str]:
        """Delete recordings at RingCentral (the content, not the call-log records): one Heavy
        `DELETE /restapi/v1.0/account/~/call-recordings` with {"records": ids}, at most 100 ids.
        Returns the ids RingCentral confirmed deleted: all of them for a 204, only those its per-id
        list answers with a 2xx for any other 2xx (a 207), none for a 2xx without that list.

        Only a 429 is retried (RingCentral did not carry it out). Anything else may or may not have
        been carried out (a timeout, a reset, a 5xx after the fact), so it is raised, not retried:
        the caller settles each id with one look at its content
        (docs/ringcentral-api.md#u10-after-a-deletion).
        A 404 is NotReady (a batch with an id RingCentral does not know; under reading B nothing is
        deleted); a 403 is an AuthError naming the app permission EditCallLog and the user permission
        EditCompanyCallRecordings."""
        if len(ids) > MAX_DELETE:
            raise ValueError(f"at most {MAX_DELETE} recordings per deletion, not {len(ids)}")
        if not ids:
            return frozenset()
        url = f"{self._server_url}{DELETE_PATH}"
        what = f"deletion of {len(ids)} recording(s)"
        retrying = self._policy(url, what, retry_on=(RateLimited,))
        try:
            for attempt in retrying:
                with (
                    attempt,
                    self._channel.send(
                        "delete", url, what, method="DELETE", json_body={"records": list(ids)}
                    ) as response,
                ):
                    return confirmed_deletions(response, ids)
        except AuthError as exc:
            raise AuthError(
                f"{exc}; deleting needs the app permission EditCallLog and the user permission "
                "EditCompanyCallRecordings",
                hint="add EditCallLog to the app in the Developer Console and give the JWT's user "
                "EditCompanyCallRecordings (Admin Portal > Roles), "
                "or set RC_ARCHIVER_DELETE_FROM_SOURCE=false",
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity re-raises


def confirmed_deletions(response: requests.Response, ids: Sequence[str]) -> frozenset[str]:
    """The ids a 2xx deletion reply confirms: all of them for a 204 (RingCentral's documented answer),
    those its JSON per-id list (`records`: id and a 2xx status) names for any other 2xx, and none for
    anything else (an empty 200, a page from a proxy, JSON without the list): those are settled one by
    one (deletion.py), never taken as deleted."""
    if response.status_code == 204:
        return frozenset(ids)
    try:
        body = response.json()
    except ValueError:
        return frozenset()
    entries = body.get("records") if isinstance(body, dict) else None
    if not isinstance(entries, list):
        return frozenset()
    asked = set(ids)
    return frozenset(
        str(entry["id"])
        for entry in entries
        if isinstance(entry, dict)
        and str(entry.get("id")) in asked
        and isinstance(entry.get("status"), int)
        and 200 <= entry["status"] < 300
    )
