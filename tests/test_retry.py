"""Retry classification: one table from HTTP status and RingCentral error code to a kind of failure."""

from __future__ import annotations

import pytest

from archiver.errors import NotReady, PermanentError, RateLimited, TokenExpired, TransientError
from archiver.ringcentral.retry import classify


def body(code: str) -> dict[str, object]:
    return {"errors": [{"errorCode": code, "message": "m"}]}


@pytest.mark.parametrize(
    ("status", "payload", "headers", "kind"),
    [
        (200, None, {}, None),
        (206, None, {}, None),
        (401, body("OAU-128"), {}, TokenExpired),
        (429, body("CMN-301"), {"Retry-After": "60"}, RateLimited),
        (500, None, {}, TransientError),
        (503, body("CMN-503"), {}, TransientError),
        (408, None, {}, TransientError),
        (404, body("CMN-102"), {}, NotReady),
        (404, body("CMN-999"), {}, PermanentError),
        (403, body("CMN-408"), {}, PermanentError),
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


def test_retry_429_carries_retry_after() -> None:
    error = classify(429, body("CMN-301"), {"Retry-After": "42"}, "h")
    assert isinstance(error, RateLimited) and error.retry_after == 42.0
    assert classify(429, None, {}, "h").retry_after == 0.0  # type: ignore[union-attr]
