"""RingCentral login with the JWT bearer grant, through the official SDK, and the token's lifetime.

The SDK sends the grant; we plug our own transport into it (SdkTransport) because the SDK's own
has no timeouts, a new connection per call and no pacing. Nothing else in the archiver looks at
tokens: callers ask `token()` for a valid one, and `renew(stale)` after a 401.

SDK traps handled here (NOTES.md): str(ApiException) contains the request headers (Basic
credentials or a bearer token), so it is never logged or re-raised; the SDK never logs in again
with the JWT once a refresh fails, so we never rely on its refresh: we log in with the JWT before
the token expires (RingCentral apps issue no refresh tokens by default anyway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import structlog
from ringcentral import SDK
from ringcentral.http import Client as SdkClient
from ringcentral.http.api_response import ApiResponse

from archiver import __version__
from archiver.errors import AuthError, RateLimited, TransientError
from archiver.logs import register_secret
from archiver.ringcentral.pacer import RatePacer
from archiver.ringcentral.retry import error_code, policy, retry_after

log = structlog.get_logger(__name__)
RENEW_MARGIN = 120.0  # log in again this long before the token expires


class SdkTransport(SdkClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's HTTP client, sending through our pooled session with timeouts and the Auth pacer."""

    def __init__(self, session: requests.Session, timeout: tuple[float, float], pacer: RatePacer) -> None:
        super().__init__()
        self._session = session
        self._timeout = timeout
        self._pacer = pacer

    def load_response(self, request: requests.PreparedRequest) -> ApiResponse:
        ticket = self._pacer.acquire()
        try:
            response = self._session.send(request, timeout=self._timeout, allow_redirects=False)
        except requests.RequestException:
            self._pacer.release(ticket, None)
            raise
        self._pacer.release(ticket, response.headers)
        return ApiResponse(request, response)


def _failure(exc: BaseException) -> tuple[int, Any, dict[str, str], str]:
    """Status, JSON body, headers and the underlying error's class name of a failed SDK call.

    Reads the response object, never str(exc), which carries the credentials.
    """
    status, body, headers = 0, None, {}
    api_response = getattr(exc, "api_response", None)
    response = api_response().response() if callable(api_response) else None
    if response is not None:
        status = response.status_code
        headers = dict(response.headers)
        try:
            body = response.json()
        except ValueError:
            body = None
    cause = exc.__context__ or exc
    return status, body, headers, type(cause).__name__


class Authenticator:
    def __init__(
        self,
        server_url: str,
        client_id: str,
        client_secret: str,
        jwt: str,
        session: requests.Session,
        timeout: tuple[float, float],
        pacer: RatePacer,
        clock: Callable[[], float] = time.monotonic,
        attempts: int = 5,
    ) -> None:
        sdk = SDK(client_id, client_secret, server_url, "rc-archiver", __version__)
        self._platform = sdk.platform()
        self._platform._client = SdkTransport(session, timeout, pacer)  # the SDK has no public seam for this
        self._server_url = server_url
        self._jwt = jwt
        self._pacer = pacer
        self._clock = clock
        self._attempts = attempts
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.logins = 0

    @property
    def pacer(self) -> RatePacer:
        return self._pacer

    def token(self) -> str:
        """A token valid for at least RENEW_MARGIN seconds more (or half its lifetime)."""
        with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                self._login()
            assert self._token is not None
            return self._token

    def renew(self, stale: str) -> str:
        """After a 401 with `stale`: log in again, unless another thread already did."""
        with self._lock:
            if self._token == stale or self._token is None:
                self._login()
            assert self._token is not None
            return self._token

    def _login(self) -> None:
        for attempt in policy(self._attempts):
            with attempt:
                self._login_once()

    def _login_once(self) -> None:
        started = self._clock()
        try:
            self._platform.login(jwt=self._jwt)
        except Exception as exc:  # the SDK raises bare Exception subclasses
            status, body, headers, cause = _failure(exc)
            code = error_code(body)
            described = (body or {}).get("error", "") if isinstance(body, dict) else ""
            if status in (400, 401, 403):
                fix = (
                    "check RC_CLIENT_ID and RC_CLIENT_SECRET"
                    if described == "invalid_client" or code == "OAU-146"
                    else "check RC_JWT (a JWT credential of an admin service user, not expired or revoked)"
                )
                raise AuthError(
                    f"RingCentral refused the login: HTTP {status} {described or 'error'} {code}".rstrip(),
                    hint=fix,
                ) from None
            if status == 429:
                self._pacer.penalize(retry_after(headers))
                raise RateLimited("HTTP 429 from the token endpoint", retry_after(headers)) from None
            if status == 0:
                raise TransientError(f"cannot reach RingCentral at {self._server_url} ({cause})") from None
            raise TransientError(f"HTTP {status} {code} from the token endpoint".rstrip()) from None
        data = self._platform.auth().data()
        lifetime = float(data.get("expires_in") or 3600)
        self._token = str(data["access_token"])
        register_secret(self._token)
        self._expires_at = started + max(lifetime - RENEW_MARGIN, lifetime / 2)
        self.logins += 1
        log.info("logged_in", expires_in=int(lifetime))

    def revoke(self) -> None:
        """End the session (RingCentral allows ~5 per user). Failures are logged, never raised."""
        with self._lock:
            if self._token is None:
                return
            try:
                self._platform.logout()
            except Exception as exc:  # best effort: the token expires by itself
                status, _, _, cause = _failure(exc)
                log.warning("revoke_failed", status=status, cause=cause)
            else:
                log.info("token_revoked")
            self._token = None
