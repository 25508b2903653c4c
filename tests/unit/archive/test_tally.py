"""archive/tally.py: each recording's outcome counted into the run summary (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from archiver.archive.scan import ScanResult
from archiver.archive.tally import MAX_REPORTED_FAILURES, Kind, Outcome, Progress, Tally
from archiver.models import Failure
from archiver.state import Seen

BERLIN = ZoneInfo("Europe/Berlin")
COUNTERS = ("found", "archived", "skipped", "failed", "pending", "exhausted", "lost", "deleted", "bytes")


def counters(tally: Tally) -> dict[str, int]:
    summary = tally.summary().as_dict()
    return {name: summary[name] for name in COUNTERS if summary[name]}


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (Outcome("r1", Kind.ARCHIVED, bytes=1234), {"archived": 1, "bytes": 1234}),
        (Outcome("r1", Kind.FOUND_STORED), {"skipped": 1}),
        (Outcome("r1", Kind.NOT_READY, reason="404 CMN-102", attempts=1), {"pending": 1}),
        (Outcome("r1", Kind.FAILED, reason="403 on this one", attempts=2), {"failed": 1}),
        (Outcome("r1", Kind.LOST, reason="deleted by RingCentral"), {"lost": 1}),
        # A failing world, a stop for a failure no retry fixes, a signal: nothing charged, nothing counted.
        (Outcome("r1", Kind.OUTAGE, reason="connection refused"), {}),
        (Outcome("r1", Kind.FATAL, reason="bucket missing"), {}),
        (Outcome("r1", Kind.STOPPED), {}),
    ],
    ids=lambda value: value.kind if isinstance(value, Outcome) else "",
)
def test_tally_counts_each_outcome_kind(outcome: Outcome, expected: dict[str, int]) -> None:
    tally = Tally("run-1")
    tally.add(outcome)
    assert counters(tally) == expected
    assert tally.progress() == Progress(done=1, total=0, bytes=expected.get("bytes", 0))
    failures = tally.summary().failures
    assert failures == ([Failure("r1", outcome.reason, outcome.attempts)] if outcome.kind == "failed" else [])


@pytest.mark.parametrize("kind", [Kind.FAILED, Kind.NOT_READY])
def test_tally_an_exhausted_recording_is_not_counted_as_failed_or_pending(kind: Kind) -> None:
    tally = Tally("run-1")
    tally.add(Outcome("r1", kind, reason="still 404", attempts=5, exhausted=True))
    summary = tally.summary()
    assert (summary.failed, summary.pending, summary.failures) == (0, 0, [])
    assert tally.progress().done == 1  # it was worked on all the same


@pytest.mark.parametrize("kind", [Kind.FAILED, Kind.NOT_READY])
def test_tally_a_recording_exhausted_in_this_run_leaves_it_incomplete(kind: Kind) -> None:
    """It failed in this run (its last counted attempt, or a slow retry): the run is not complete."""
    tally = Tally("run-1")
    tally.add(Outcome("r1", kind, reason="still 404", attempts=5, exhausted=True))
    assert tally.summary().exhausted_in_run == 1 and not tally.summary().complete


def test_tally_exhausted_recordings_this_run_did_not_attempt_leave_it_complete() -> None:
    """Exhausted by earlier runs and not due for their slow retry: counted in `exhausted` (run_pass
    reads them from the state), but nothing this run did failed, so it is complete."""
    tally = Tally("run-1")
    tally.add(Outcome("r2", Kind.ARCHIVED, bytes=10))
    summary = tally.summary()
    summary.exhausted = 3
    assert summary.complete and summary.exhausted_in_run == 0


def test_tally_failures_are_capped_but_every_one_is_counted() -> None:
    tally = Tally("run-1")
    for n in range(MAX_REPORTED_FAILURES + 25):
        tally.add(Outcome(f"r{n}", Kind.FAILED, reason=f"reason {n}", attempts=1))
    summary = tally.summary()
    assert summary.failed == MAX_REPORTED_FAILURES + 25
    assert len(summary.failures) == MAX_REPORTED_FAILURES
    assert summary.failures[0] == Failure("r0", "reason 0", 1)  # the first ones are kept


def test_tally_seen_counts_found_and_already_archived_and_progress_follows() -> None:
    tally = Tally("run-1")
    tally.seen(Seen(new_in_run=10, already_archived=4))
    tally.seen(Seen(new_in_run=5, already_archived=0))
    tally.taken_up(2)  # leftovers of earlier runs outside this window
    tally.taken_up()
    tally.add(Outcome("a", Kind.ARCHIVED, bytes=100))
    tally.add(Outcome("b", Kind.ARCHIVED, bytes=50))
    day = (datetime(2026, 11, 26, 23, 0, tzinfo=UTC), datetime(2026, 11, 27, 23, 0, tzinfo=UTC))
    assert not tally.scanned(ScanResult(days_total=3, days_scanned=2, unreadable=[day]), BERLIN)
    tally.deleted(7)
    summary = tally.summary()
    assert (summary.found, summary.skipped, summary.archived) == (18, 4, 2)
    assert (summary.days_unreadable, summary.deleted, summary.run_id) == (1, 7, "run-1")
    assert summary.as_dict()["unreadable_days"] == ["2026-11-27"]  # the local date, not the UTC one
    assert tally.progress() == Progress(done=2, total=18, bytes=150)
    assert not summary.complete  # an unreadable day leaves the run incomplete


def test_tally_scanned_says_whether_the_watermark_may_pass_the_window() -> None:
    tally = Tally("run-1")
    assert tally.scanned(ScanResult(days_total=2, days_scanned=2), BERLIN)  # read whole
    assert not tally.scanned(ScanResult(days_total=2, days_scanned=1, stopped=True), BERLIN)
    summary = tally.summary()
    assert (summary.days_unreadable, summary.unreadable_days, summary.complete) == (0, [], True)
