"""How each kind of failure is retried: one classification, one tenacity policy.

429                      RateLimited    the pacer holds the group (pacer.penalty_seconds); then retry
5xx, 408                 ServerFailed   backoff from 2 s (doubling, with jitter), never sooner than
                                        the reply's Retry-After
connection errors,       NoAnswer       backoff from 0.5 s (doubling, with jitter); a request unanswered
timeouts                                for the silence deadline (across its retries) is given up on:
                                        it counts toward the outage breaker, so a hung RingCentral
                                        stops the run in a few deadlines (exit 6), charging nothing
truncated body           TruncatedBody  resume soon with a Range request from the bytes on disk
401, token class         TokenExpired   the client renews the token (Authenticator.renew) and retries
401, any other code      AuthError      one fresh token first (a session ended elsewhere may answer so,
                                        U2 reading B); a 401 again stops the run (CMN-405, OAU-151, ...)
403                      AuthError      stops the run, naming the missing permission and the fix
404 CMN-102              NotReady       not retried now: stays pending for the next run
other 4xx                PermanentError fails the recording at once, reason recorded

Headers are read case-insensitively (`header`): replies come through proxies and SDKs that spell
them differently. RingCentral's error bodies and codes: docs/ringcentral-api.md#errors.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from archiver.errors import (
    ArchiverError,
    AuthError,
    NotReady,
    PermanentError,
    RateLimited,
    TokenExpired,
    TransientError,
    TruncatedBody,
)

DEFAULT_ATTEMPTS = 6
BACKOFF_BASE = 0.5  # connection errors and timeouts
SERVER_BACKOFF_BASE = 2.0  # 5xx: RingCentral's guide uses 2 s as its example
BACKOFF_CAP = 30.0
# 401 codes that mean "this token is no longer valid": a new token fixes them. A 401 without a code
# is treated the same. Every other 401 (CMN-405 "Login to extension required", OAU-151, ...) is not.
TOKEN_CODES = frozenset({"OAU-128", "OAU-129", "OAU-149", "OAU-213", ""})
# Where each permission RingCentral can name is granted.
APP_PERMISSIONS = frozenset({"ReadCallLog", "ReadCallRecording", "EditCallLog", "ReadAccounts"})


class ServerFailed(TransientError):
    """A 5xx (or 408) reply: retried with backoff from SERVER_BACKOFF_BASE, honouring Retry-After."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NoAnswer(TransientError):
    """No reply at all: a timeout, or a connection refused or reset. `seconds`: how long the request
    waited for it (the pacer's wait before it excluded)."""

    def __init__(self, message: str, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class SilenceDeadline:
    """tenacity's stop for one request: after `attempts`, or once the server has been silent (every
    attempt since the streak began a NoAnswer) for `deadline` seconds, back-offs included, and at
    least two attempts were made. Without it
    a hung server costs attempts x the read timeout per request (six minutes at the defaults)."""

    def __init__(self, attempts: int, deadline: float | None, clock: Callable[[], float] = time.monotonic):
        self._attempts, self._deadline, self._clock = attempts, deadline, clock
        self._silent_since: float | None = None

    def __call__(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        now = self._clock()
        if isinstance(exc, NoAnswer):
            if self._silent_since is None:
                self._silent_since = now - exc.seconds
        else:
            self._silent_since = None
        silent_for = now - self._silent_since if self._silent_since is not None else 0.0
        # Never before a second attempt: one slow reply (a read timeout as long as the deadline) is
        # retried once; a server still silent then is given up on.
        return state.attempt_number >= self._attempts or (
            self._deadline is not None and silent_for >= self._deadline and state.attempt_number >= 2
        )


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value whatever the spelling of its name (requests' headers already are)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def error_code(body: Any) -> str:
    """The first errors[].errorCode of a RingCentral error body, or ''."""
    first = _first_error(body)
    return str(first.get("errorCode", "")) if first else ""


def _first_error(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return errors[0]
        return body
    return {}


def retry_after(headers: Mapping[str, str] | None, now: datetime | None = None) -> float | None:
    """Retry-After in seconds: the delta-seconds form or the HTTP-date form; None when absent or
    unparseable (then the pacer picks a hold long enough to outlast RingCentral's penalty)."""
    value = (header(headers, "Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def rate_window(headers: Mapping[str, str] | None) -> float | None:
    try:
        window = float(header(headers, "X-Rate-Limit-Window") or "")
    except ValueError:
        return None
    return window if window > 0 else None


def permission_hint(permission: str) -> str:
    """Where a permission RingCentral reports missing is granted."""
    if not permission:
        return (
            "give the app the permissions ReadCallLog and ReadCallRecording (EditCallLog to delete) in "
            "the Developer Console, and the JWT's user FullCompanyCallLog in the Admin Portal"
        )
    if permission in APP_PERMISSIONS:
        return (
            f"add the app permission {permission} in the Developer Console (the app's Settings), then rerun"
        )
    return f"give the JWT's user the user permission {permission} (Admin Portal > Roles), then run again"


def classify(status: int, body: Any, headers: Mapping[str, str], what: str) -> ArchiverError | None:
    """The error an HTTP status stands for (None for success). Messages never carry headers."""
    if status < 300:
        return None
    code = error_code(body)
    detail = f"HTTP {status}{' ' + code if code else ''} from {what}"
    if status == 401:
        if code in TOKEN_CODES:
            return TokenExpired(detail)
        message = str(_first_error(body).get("message", ""))[:200]
        return AuthError(
            f"RingCentral refused the token: {detail}{': ' + message if message else ''}",
            hint="no new token fixes this: check that the JWT belongs to an admin user of this account "
            "(a user with FullCompanyCallLog) and that the app is enabled for it",
        )
    if status == 403:
        permission = str(_first_error(body).get("permissionName", ""))
        missing = f" (missing permission {permission})" if permission else ""
        return AuthError(
            f"RingCentral refused {what}: HTTP 403 {code or ''}{missing}", permission_hint(permission)
        )
    if status == 429:
        return RateLimited(detail, retry_after(headers))
    if status == 408 or status >= 500:
        return ServerFailed(detail, retry_after(headers))
    if status == 404 and code == "CMN-102":
        return NotReady(f"{detail}: recording not available yet")
    return PermanentError(detail)


def backoff_seconds(exc: BaseException | None, attempt: int, draw: Callable[[float, float], float]) -> float:
    """How long to wait before retry number `attempt` (1 for the first retry) after `exc`."""
    if isinstance(exc, RateLimited | TokenExpired):
        return 0.0  # the pacer does the waiting for 429s; a new token can be used at once
    if isinstance(exc, TruncatedBody):
        return min(2.0, 0.1 * (attempt - 1))  # resume soon: the bytes so far are kept
    base = SERVER_BACKOFF_BASE if isinstance(exc, ServerFailed) else BACKOFF_BASE
    backoff = min(BACKOFF_CAP, base * 2 ** (attempt - 1))
    wait = draw(backoff, backoff * 1.5)
    if isinstance(exc, ServerFailed) and exc.retry_after is not None:
        wait = max(wait, min(exc.retry_after, 300.0))
    return wait


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    return backoff_seconds(exc, state.attempt_number, random.uniform)


def policy(
    attempts: int = DEFAULT_ATTEMPTS,
    on_retry: Callable[[RetryCallState], None] | None = None,
    sleep: Callable[[float], None] | None = None,
    retry_on: tuple[type[BaseException], ...] = (TransientError, TruncatedBody),
    silence_deadline: float | None = None,
) -> Retrying:
    """The retry policy for one request (or one download, resumed across attempts); `retry_on`
    narrows what is retried (a deletion retries only a 429, which RingCentral did not carry out);
    `silence_deadline` gives up on a server silent that long (SilenceDeadline)."""
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return Retrying(
        retry=retry_if_exception_type(retry_on),
        stop=SilenceDeadline(attempts, silence_deadline),
        wait=_wait,
        before_sleep=on_retry,
        reraise=True,
        **kwargs,
    )
