"""RingCentral login with the JWT bearer grant, through the official SDK, and the token's lifetime.

The SDK sends the grant; we plug our own transport into it (SdkTransport) because the SDK's own
has no timeouts, a new connection per call, no pacing, and ignores REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
(it calls session.send, which skips the environment: we merge it in as session.request would).
Nothing else in the archiver looks at tokens: callers ask `token()` for a valid one, and
`renew(stale)` after a token-class 401 (retry.TOKEN_CODES).

Renewal is bounded by token lifetimes, never by failures: a thread whose token was already replaced
gets the new one without a login, and a token refused before its expiry can be replaced early only
once per token lifetime; a second early refusal within that time is an AuthError (something else
keeps ending our sessions: RingCentral keeps about five per user and app and drops the oldest).
Every token a renewal replaces is revoked, so our own sessions never crowd each other out.

SDK traps handled here (docs/ringcentral-api.md#the-official-python-sdk): str(ApiException) contains
the request headers (Basic credentials or a bearer token), so it is never logged or re-raised; the SDK never
logs in again with the JWT once a refresh fails, so we never rely on its refresh: we log in with the
JWT before the token expires (RingCentral apps issue no refresh tokens by default anyway).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import structlog
from requests.structures import CaseInsensitiveDict
from ringcentral import SDK
from ringcentral.http import Client as SdkClient
from ringcentral.http.api_response import ApiResponse

from archiver import __version__
from archiver.errors import AuthError, RateLimited, TransientError
from archiver.logs import register_secret
from archiver.ringcentral.pacer import RatePacer
from archiver.ringcentral.retry import ServerFailed, error_code, policy, rate_window, retry_after

log = structlog.get_logger(__name__)
RENEW_MARGIN = 120.0  # log in again this long before the token expires
REVOKE_PATH = "/restapi/oauth/revoke"


class SdkTransport(SdkClient):  # type: ignore[misc]  # the SDK is untyped
    """The SDK's HTTP client, sending through our pooled session with timeouts, the Auth pacer and
    the environment's CA bundle and proxies."""

    def __init__(
        self,
        session: requests.Session,
        timeout: tuple[float, float],
        pacer: RatePacer,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        self._session = session
        self._timeout = timeout
        self._pacer = pacer
        self._on_progress = on_progress

    def load_response(self, request: requests.PreparedRequest) -> ApiResponse:
        settings = self._session.merge_environment_settings(request.url, {}, None, None, None)
        self._pacer.acquire()
        try:
            response = self._session.send(request, timeout=self._timeout, allow_redirects=False, **settings)
        except requests.RequestException:
            self._pacer.release(None)
            raise
        self._pacer.release(response.headers)
        if self._on_progress is not None:
            self._on_progress()
        return ApiResponse(request, response)


def _failure(exc: BaseException) -> tuple[int, Any, CaseInsensitiveDict[str], str]:
    """Status, JSON body, headers and the underlying error's class name of a failed SDK call.

    Reads the response object, never str(exc), which carries the credentials.
    """
    status, body, headers = 0, None, CaseInsensitiveDict[str]()
    api_response = getattr(exc, "api_response", None)
    response = api_response().response() if callable(api_response) else None
    if response is not None:
        status = response.status_code
        headers = CaseInsensitiveDict(response.headers)
        try:
            body = response.json()
        except ValueError:
            body = None
    cause = exc.__context__ or exc
    return status, body, headers, type(cause).__name__


def login_refused(status: int, body: Any) -> AuthError:
    """The AuthError for a 4xx from the token endpoint, with the fix that code calls for."""
    code = error_code(body)
    described = str(body.get("error", "")) if isinstance(body, dict) else ""
    if described == "invalid_client" or code == "OAU-146":
        fix = "check RC_CLIENT_ID and RC_CLIENT_SECRET (the app's credentials in the Developer Console)"
    elif code == "OAU-251" or described == "unauthorized_client":
        fix = (
            "the app is not allowed the JWT grant: enable the JWT auth flow for the app in the "
            "Developer Console (Settings > Auth); RC_JWT itself is not the problem"
        )
    elif code == "OAU-250" or described == "unsupported_grant_type":
        fix = (
            "the app does not accept the JWT bearer grant: enable the JWT auth flow in the Developer Console"
        )
    else:
        fix = "check RC_JWT (a JWT credential of an admin service user, not expired or revoked)"
    return AuthError(
        f"RingCentral refused the login: HTTP {status} {described or 'error'} {code}".rstrip(), hint=fix
    )


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
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        sdk = SDK(client_id, client_secret, server_url, "rc-archiver", __version__)
        self._platform = sdk.platform()
        # The SDK has no public seam for its transport.
        self._platform._client = SdkTransport(session, timeout, pacer, on_progress)
        self._server_url = server_url
        self._jwt = jwt
        self._pacer = pacer
        self._clock = clock
        self._attempts = attempts
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._lifetime = 3600.0
        self._early_renewal_at: float | None = None  # when a token was last replaced before its expiry
        self._scope = ""

    @property
    def pacer(self) -> RatePacer:
        return self._pacer

    @property
    def scope(self) -> str:
        """The app permissions (OAuth scope) of the current token, space-separated ('' before login)."""
        return self._scope

    def token(self) -> str:
        """A token valid for at least RENEW_MARGIN seconds more (or half its lifetime)."""
        with self._lock:
            if self._token is None:
                self._login()
            elif self._clock() >= self._expires_at:
                self._replace()
            assert self._token is not None
            return self._token

    def renew(self, stale: str) -> str:
        """After a token-class 401 with `stale`: the token that replaced it, logging in only when
        nobody has yet. A token refused early twice within one token lifetime is an AuthError."""
        with self._lock:
            if self._token is not None and self._token != stale:
                return self._token  # another thread already replaced it
            if self._token is not None:
                now = self._clock()
                if self._early_renewal_at is not None and now - self._early_renewal_at < self._lifetime:
                    raise AuthError(
                        "RingCentral keeps refusing fresh tokens (401 right after a login)",
                        hint="something else is ending this app's sessions for the JWT's user (RingCentral "
                        "keeps about 5 per user and app): stop other clients using the same JWT",
                    )
                self._early_renewal_at = now
                self._replace()
            else:
                self._login()
            assert self._token is not None
            return self._token

    def _replace(self) -> None:
        """Log in again, then revoke the token the new one replaces (its session is ours no more)."""
        old = self._token
        self._login()
        if old is not None and old != self._token:
            self._revoke(old)

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
            if status in (400, 401, 403):
                raise login_refused(status, body) from None
            if status == 429:
                wait = retry_after(headers)
                self._pacer.penalize(wait, rate_window(headers))
                log.warning("rate_limited", group=self._pacer.group, host=self._host(), retry_after=wait)
                raise RateLimited("HTTP 429 from the token endpoint", wait) from None
            if status == 0:
                raise TransientError(f"cannot reach RingCentral at {self._server_url} ({cause})") from None
            code = error_code(body)
            raise ServerFailed(
                f"HTTP {status} {code} from the token endpoint".rstrip(), retry_after(headers)
            ) from None
        data = self._platform.auth().data()
        lifetime = float(data.get("expires_in") or 3600)
        self._token = str(data["access_token"])
        register_secret(self._token)
        self._lifetime = lifetime
        self._scope = str(data.get("scope") or "")
        self._expires_at = started + max(lifetime - RENEW_MARGIN, lifetime / 2)
        log.info("logged_in", expires_in=int(lifetime))

    def _host(self) -> str:
        return self._server_url.split("://", 1)[-1].split("/", 1)[0]

    def _revoke(self, token: str) -> None:
        """Best effort: a token that is not revoked still expires by itself."""
        try:
            self._platform._request_token(REVOKE_PATH, body={"token": token})
        except Exception as exc:  # never str(exc): it carries the Basic credentials
            status, _, _, cause = _failure(exc)
            log.warning("revoke_failed", status=status, cause=cause)
        else:
            log.info("token_revoked")

    def revoke(self) -> None:
        """End the session (RingCentral allows ~5 per user). Failures are logged, never raised."""
        with self._lock:
            if self._token is None:
                return
            self._revoke(self._token)
            self._platform.auth().reset()
            self._token = None
