"""archive/breaker.py: a failing world (an outage) told from a failing recording (pure logic)."""

from __future__ import annotations

import threading

import pytest
from structlog.testing import capture_logs

from archiver.archive.breaker import DESTINATION, RINGCENTRAL, SPOOL, THRESHOLD, OutageBreaker
from archiver.errors import (
    AuthError,
    DestinationError,
    RingCentralUnavailable,
    SpoolError,
    exit_code_for,
    outcome_for,
)


def test_breaker_trips_after_threshold_consecutive_world_failures_and_stops_the_run() -> None:
    cancel = threading.Event()
    breaker = OutageBreaker(cancel)
    with capture_logs() as logs:
        for n in range(THRESHOLD - 1):
            breaker.failure(RINGCENTRAL, f"connection refused #{n}")
        assert breaker.tripped is None and not cancel.is_set()
        breaker.failure(RINGCENTRAL, "connection refused #last")
    assert cancel.is_set()
    assert isinstance(breaker.tripped, RingCentralUnavailable)
    assert "connection refused #last" in str(breaker.tripped) and breaker.tripped.hint
    assert (exit_code_for(breaker.tripped), outcome_for(breaker.tripped)) == (6, "outage")
    assert logs == [
        {
            "event": "outage_detected",
            "world": RINGCENTRAL,
            "reason": "connection refused #last",
            "consecutive": THRESHOLD,
            "log_level": "warning",
        }
    ]


def test_breaker_a_success_in_between_resets_the_count() -> None:
    cancel = threading.Event()
    breaker = OutageBreaker(cancel, threshold=3)
    for _ in range(5):
        breaker.failure(DESTINATION, "503 Slow Down")
        breaker.failure(DESTINATION, "503 Slow Down")
        breaker.success()
    assert breaker.tripped is None and not cancel.is_set()
    breaker.failure(DESTINATION, "503 Slow Down")
    breaker.failure(DESTINATION, "503 Slow Down")
    breaker.failure(DESTINATION, "503 Slow Down")
    assert isinstance(breaker.tripped, DestinationError) and cancel.is_set()


@pytest.mark.parametrize(
    ("world", "kind", "code", "names"),
    [
        (RINGCENTRAL, RingCentralUnavailable, 6, "RingCentral"),
        (DESTINATION, DestinationError, 4, "destination"),
        (SPOOL, SpoolError, 4, "RC_ARCHIVER_SPOOL_DIR"),
    ],
)
def test_breaker_names_the_world_that_failed_with_its_exit_code_and_fix(
    world: str, kind: type[Exception], code: int, names: str
) -> None:
    breaker = OutageBreaker(threading.Event(), threshold=1)
    breaker.failure(world, "No space left on device")
    tripped = breaker.tripped
    assert type(tripped) is kind and tripped is not None
    assert exit_code_for(tripped) == code
    assert "No space left on device" in str(tripped)
    assert names in f"{tripped} {tripped.hint}"


def test_breaker_keeps_the_first_cause_and_logs_the_outage_once() -> None:
    breaker = OutageBreaker(threading.Event(), threshold=2)
    with capture_logs() as logs:
        for _ in range(2):
            breaker.failure(SPOOL, "disk full")
        first = breaker.tripped
        for _ in range(5):
            breaker.failure(RINGCENTRAL, "timed out")
        breaker.stop_with(AuthError("403 ReadCallRecording"))
    assert breaker.tripped is first and isinstance(first, SpoolError)
    assert [e["event"] for e in logs] == ["outage_detected"]


def test_breaker_stop_with_stops_at_once_and_keeps_the_first_error() -> None:
    cancel = threading.Event()
    breaker = OutageBreaker(cancel)
    missing = DestinationError("bucket rec-x does not exist", hint="create it")
    breaker.stop_with(missing)
    assert breaker.tripped is missing and cancel.is_set()
    breaker.stop_with(AuthError("later"))
    for _ in range(THRESHOLD):
        breaker.failure(RINGCENTRAL, "after the stop")
    assert breaker.tripped is missing


def test_breaker_names_a_destination_that_answers_with_errors_as_refusing_not_unreachable() -> None:
    breaker = OutageBreaker(threading.Event())
    reason = "refused by the destination: InternalError We encountered an internal error while uploading"
    for _ in range(THRESHOLD):
        breaker.failure(DESTINATION, reason)
    assert isinstance(breaker.tripped, DestinationError)
    assert reason in str(breaker.tripped) and "unreachable" not in str(breaker.tripped)
    assert "RC_ARCHIVER_S3_SSE" in breaker.tripped.hint and "network" not in breaker.tripped.hint
