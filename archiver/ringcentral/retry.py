"""How each kind of failure is retried: one classification, one tenacity policy.

429                      RateLimited    the pacer holds the group until Retry-After; then retry at once
5xx, 408, connection     TransientError exponential backoff with jitter
errors, timeouts
truncated body           TruncatedBody  resume at once with a Range request from the bytes on disk
401 on an API call       TokenExpired   the client logs in again (once per request) and retries
404 CMN-102              NotReady       not retried now: stays pending for the next run
other 4xx                PermanentError fails the recording at once, reason recorded
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from archiver.errors import (
    ArchiverError,
    NotReady,
    PermanentError,
    RateLimited,
    TokenExpired,
    TransientError,
    TruncatedBody,
)

DEFAULT_ATTEMPTS = 6
BACKOFF_BASE = 0.5
BACKOFF_CAP = 30.0


def error_code(body: Any) -> str:
    """The first errors[].errorCode of a RingCentral error body, or ''."""
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return str(errors[0].get("errorCode", ""))
        return str(body.get("errorCode", ""))
    return ""


def retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["Retry-After"])
    except (KeyError, ValueError):
        return None


def classify(status: int, body: Any, headers: Mapping[str, str], what: str) -> ArchiverError | None:
    """The error an HTTP status stands for (None for success). Messages never carry headers."""
    if status < 300:
        return None
    code = error_code(body)
    detail = f"HTTP {status}{' ' + code if code else ''} from {what}"
    if status == 401:
        return TokenExpired(detail)
    if status == 429:
        return RateLimited(detail, retry_after(headers))
    if status == 408 or status >= 500:
        return TransientError(detail)
    if status == 404 and code == "CMN-102":
        return NotReady(f"{detail}: recording not available yet")
    return PermanentError(detail)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimited | TokenExpired):
        return 0.0  # the pacer does the waiting for 429s; a new login can go at once
    if isinstance(exc, TruncatedBody):
        return min(2.0, 0.1 * (state.attempt_number - 1))  # resume soon: the bytes so far are kept
    backoff = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (state.attempt_number - 1))
    return random.uniform(backoff / 2, backoff)


def policy(
    attempts: int = DEFAULT_ATTEMPTS,
    on_retry: Callable[[RetryCallState], None] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Retrying:
    """The retry policy for one request (or one download, resumed across attempts)."""
    kwargs: dict[str, Any] = {}
    if sleep is not None:
        kwargs["sleep"] = sleep
    return Retrying(
        retry=retry_if_exception_type((TransientError, TruncatedBody)),
        stop=stop_after_attempt(attempts),
        wait=_wait,
        before_sleep=on_retry,
        reraise=True,
        **kwargs,
    )
