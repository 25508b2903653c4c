"""One request to RingCentral: a valid token, inside its rate group's budget, failures classified.

The channel is the only place that sends data calls. It never sends the token to a host that is not
RingCentral's (urls.ringcentral_host); it picks each request's pacer by kind (pacer.RateGroups) and
counts the reply in the group RingCentral names; a token-class 401 renews the token once per request
(Authenticator.renew); a 429 holds the group (pacer.penalty_seconds); every other failure becomes
the error retry.classify names. `on_progress` is called on every reply, for the watchdog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.adapters
import requests.auth
import structlog

from archiver import __version__
from archiver.errors import PermanentError, RateLimited, TokenExpired, TruncatedBody
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.pacer import RateGroups
from archiver.ringcentral.retry import NoAnswer, classify, rate_window
from archiver.ringcentral.urls import ringcentral_host

log = structlog.get_logger(__name__)


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


def host_of(url: str) -> str:
    return urlsplit(url).hostname or "RingCentral"


class Channel:
    def __init__(
        self,
        server_url: str,
        session: requests.Session,
        auth: Authenticator,
        groups: RateGroups,
        timeout: tuple[float, float],
        cancel: threading.Event | None = None,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self._server_url = server_url
        self._session = session
        self._auth = auth
        self._groups = groups
        self._timeout = timeout
        self._cancel = cancel
        self._on_progress = on_progress

    def send(
        self,
        kind: str,
        url: str,
        what: str,
        *,
        method: str = "GET",
        stream: bool = False,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        accept: tuple[int, ...] = (),
    ) -> requests.Response:
        """A 2xx reply to one request (or one whose status is in `accept`), or the error its reply
        stands for."""
        host = host_of(url)
        if not ringcentral_host(url, self._server_url):
            raise PermanentError(f"{what}: {host} is not a RingCentral host; not fetched with our token")
        token = self._auth.token()
        renewed = False
        while True:
            pacer = self._groups.pacer_for(kind)
            pacer.acquire(self._cancel)
            sent_at = time.monotonic()
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
                raise NoAnswer(
                    f"{type(exc).__name__} talking to {host}", time.monotonic() - sent_at
                ) from None
            counted = self._groups.settle(kind, pacer, response.headers)
            if self._on_progress is not None:
                self._on_progress()
            log.debug(
                "http_response",
                method=method,
                url=url,
                status=response.status_code,
                seconds=round(response.elapsed.total_seconds(), 3),
                group=counted.group,
                rate_remaining=response.headers.get("X-Rate-Limit-Remaining"),
            )
            if response.status_code < 300 or response.status_code in accept:
                return response
            body = _error_body(response)
            response.close()
            error = classify(response.status_code, body, response.headers, f"{what} on {host}")
            if (isinstance(error, TokenExpired) or response.status_code == 401) and not renewed:
                # Any 401 gets one fresh token (or the one another thread already got): a token-class
                # code, a token we ended ourselves, or a session ended elsewhere (other logins past the
                # session cap) answered with another code (U2 reading B). A 401 again is the error.
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


def _error_body(response: requests.Response) -> Any:
    if "json" not in (response.headers.get("Content-Type") or ""):
        return None
    try:
        return response.json()
    except (ValueError, requests.RequestException):
        return None
