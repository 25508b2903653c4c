"""Retry classification: one table from HTTP status and RingCentral error code to a kind of failure,
Retry-After in both its forms, and the backoff each kind waits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tenacity import RetryCallState, Retrying

from archiver.errors import (
    AuthError,
    NotReady,
    PermanentError,
    RateLimited,
    TokenExpired,
    TransientError,
    TruncatedBody,
)
from archiver.ringcentral.retry import (
    NoAnswer,
    ServerFailed,
    SilenceDeadline,
    backoff_seconds,
    classify,
    header,
    retry_after,
)
from archiver.settings import Settings, parse_duration


def body(code: str, **fields: str) -> dict[str, object]:
    return {"errors": [{"errorCode": code, "message": "m", **fields}]}


@pytest.mark.parametrize(
    ("status", "payload", "headers", "kind"),
    [
        (200, None, {}, None),
        (206, None, {}, None),
        (401, body("OAU-128"), {}, TokenExpired),
        (401, body("OAU-129"), {}, TokenExpired),
        (401, body("OAU-149"), {}, TokenExpired),
        (401, body("OAU-213"), {}, TokenExpired),
        (401, None, {}, TokenExpired),  # a 401 without a code
        (401, body("CMN-405"), {}, AuthError),  # "Login to extension required": no token fixes it
        (401, body("OAU-151"), {}, AuthError),
        (403, body("CMN-401", permissionName="ReadCallRecording"), {}, AuthError),
        (403, body("CMN-408"), {}, AuthError),
        (429, body("CMN-301"), {"Retry-After": "60"}, RateLimited),
        (500, None, {}, ServerFailed),
        (503, body("CMN-203"), {}, ServerFailed),
        (408, None, {}, ServerFailed),
        (404, body("CMN-102"), {}, NotReady),
        (404, body("CMN-999"), {}, PermanentError),
        (400, body("CMN-101"), {}, PermanentError),
    ],
)
def test_retry_classify(status: int, payload: object, headers: dict[str, str], kind: type | None) -> None:
    error = classify(status, payload, headers, "media.example")
    if kind is None:
        assert error is None
    else:
        assert type(error) is kind
        assert str(status) in str(error)


def test_retry_403_names_the_permission_and_where_to_grant_it() -> None:
    app = classify(403, body("CMN-401", permissionName="ReadCallRecording"), {}, "recording r1")
    user = classify(403, body("CMN-401", permissionName="FullCompanyCallLog"), {}, "call-log")
    assert app is not None and "ReadCallRecording" in str(app) and "Developer Console" in app.hint
    assert user is not None and "FullCompanyCallLog" in str(user) and "Admin Portal" in user.hint


NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "42"}, 42.0),
        ({"retry-after": "42"}, 42.0),
        ({"Retry-After": "Fri, 27 Nov 2026 12:00:30 GMT"}, 30.0),  # the HTTP-date form
        ({"Retry-After": "Fri, 27 Nov 2026 11:59:00 GMT"}, 0.0),  # a date in the past
        ({"Retry-After": "later"}, None),
        ({"Retry-After": "nan"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after(headers, NOW) == expected


def test_retry_header_is_case_insensitive_on_plain_dicts() -> None:
    assert header({"x-rate-limit-group": "media"}, "X-Rate-Limit-Group") == "media"
    assert header(None, "Retry-After") is None


def lowest(low: float, high: float) -> float:
    return low


@pytest.mark.parametrize(
    ("exc", "attempt", "expected"),
    [
        (ServerFailed("HTTP 503", None), 1, 2.0),  # 5xx: from 2 s
        (ServerFailed("HTTP 503", None), 2, 4.0),
        (ServerFailed("HTTP 503", 9.0), 1, 9.0),  # never sooner than Retry-After
        (TransientError("reset"), 1, 0.5),  # a dropped connection: sooner
        (RateLimited("429", 30.0), 1, 0.0),  # the pacer waits
        (TokenExpired("401"), 1, 0.0),
        (TruncatedBody("cut"), 1, 0.0),
    ],
)
def test_retry_backoff_seconds(exc: BaseException, attempt: int, expected: float) -> None:
    assert backoff_seconds(exc, attempt, lowest) == expected


def _outcome(exc: BaseException, attempt: int) -> RetryCallState:
    state = RetryCallState(Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    state.set_exception((type(exc), exc, None))
    return state


def test_retry_silence_deadline_gives_up_on_a_server_silent_that_long_and_only_then() -> None:
    clock = [100.0]
    stop = SilenceDeadline(attempts=6, deadline=60.0, clock=lambda: clock[0])
    assert stop(_outcome(NoAnswer("ReadTimeout", 20.0), 1)) is False  # silent since 80
    clock[0] = 130.0
    assert stop(_outcome(NoAnswer("ReadTimeout", 20.0), 2)) is False  # 50 s of silence
    clock[0] = 141.0
    assert stop(_outcome(NoAnswer("ConnectionError", 0.0), 3)) is True  # 61 s: given up
    # An answer of any kind (a 5xx here) starts the count over; attempts still bound everything.
    stop = SilenceDeadline(attempts=6, deadline=60.0, clock=lambda: clock[0])
    assert stop(_outcome(NoAnswer("ReadTimeout", 59.0), 1)) is False
    clock[0] = 200.0
    assert stop(_outcome(ServerFailed("503", None), 2)) is False
    clock[0] = 230.0
    assert stop(_outcome(NoAnswer("ReadTimeout", 20.0), 3)) is False  # silent 20 s since the 503
    assert stop(_outcome(ServerFailed("503", None), 6)) is True
    unbounded = SilenceDeadline(attempts=6, deadline=None, clock=lambda: 1e9)
    assert unbounded(_outcome(NoAnswer("x", 1e6), 2)) is False


def test_retry_silence_deadline_retries_one_timeout_as_long_as_itself_at_the_defaults() -> None:
    """RC_ARCHIVER_READ_TIMEOUT (60 s) and RC_ARCHIVER_REQUEST_DEADLINE (90 s) as shipped: one slow
    reply is retried; a second silent minute is the end of that request."""
    defaults = Settings.model_fields
    read, deadline = (
        parse_duration(defaults[name].default).total_seconds()
        for name in ("read_timeout", "request_deadline")
    )
    clock = [1000.0]
    stop = SilenceDeadline(attempts=6, deadline=deadline, clock=lambda: clock[0])
    assert stop(_outcome(NoAnswer("ReadTimeout", read), 1)) is False
    clock[0] += 1 + read  # a back-off, then the second attempt's whole read timeout
    assert stop(_outcome(NoAnswer("ReadTimeout", read), 2)) is True
