"""archive/scan.py: the call log's day slices into the state, against the emulator over HTTP and a real
SQLite file. An unreadable day is counted (and told to the breaker when RingCentral is failing), never
charged to a recording."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from structlog.testing import capture_logs

from archiver.archive.breaker import RINGCENTRAL, THRESHOLD, OutageBreaker
from archiver.archive.scan import ScanResult, scan_window
from archiver.emulator import DataOptions, Emulator
from archiver.errors import AuthError, RingCentralUnavailable
from archiver.models import ArchivedObject
from archiver.ringcentral.client import CALL_LOG_PATH, RingCentralClient, make_session
from archiver.state import Seen, StateStore
from archiver.windows import day_slices
from tests.helpers import RefusingTransport, emulator_client

RUN = "run-unit"
DATA = DataOptions(seed=9, calls=30, days=2, bytes_per_second=10)


@dataclass
class Scanner:
    emulator: Emulator
    session: requests.Session
    client: RingCentralClient
    state: StateStore
    cancel: threading.Event = field(default_factory=threading.Event)
    seen: list[Seen] = field(default_factory=list)
    slices_done: int = 0

    def __post_init__(self) -> None:
        self.breaker = OutageBreaker(self.cancel)

    def slices(self) -> list[tuple[datetime, datetime]]:
        now = datetime.now(UTC)
        return day_slices(now - timedelta(days=3), now + timedelta(minutes=1), ZoneInfo("UTC"))

    def scan(self, slices: list[tuple[datetime, datetime]], run_id: str = RUN, **options: Any) -> ScanResult:
        def on_slice() -> None:
            self.slices_done += 1

        return scan_window(slices, **self.collaborators(run_id), on_slice=on_slice, **options)

    def collaborators(self, run_id: str = RUN) -> dict[str, Any]:
        """scan_window's keyword arguments but the slices and what is told of each finished one."""
        return {
            "client": self.client,
            "state": self.state,
            "run_id": run_id,
            "retention": timedelta(days=90),
            "cancel": self.cancel,
            "breaker": self.breaker,
            "on_seen": self.seen.append,
        }

    def call_log_requests(self) -> int:
        requests_ = self.emulator.stats.snapshot()["requests"]
        return sum(n for route, n in requests_.items() if route.startswith("call-log"))


@pytest.fixture
def make_scanner(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> Iterator[Callable[..., Scanner]]:
    opened: list[Scanner] = []

    def make(**emulator_changes: Any) -> Scanner:
        emulator = emulator_factory(data=DATA, **emulator_changes)
        session = make_session(2)
        cancel = threading.Event()
        scanner = Scanner(
            emulator,
            session,
            emulator_client(emulator, session, cancel=cancel),
            StateStore(tmp_path / "s.db"),
            cancel,
        )
        opened.append(scanner)
        return scanner

    yield make
    for scanner in opened:
        scanner.state.close()
        scanner.session.close()


def test_scan_records_every_recording_of_the_window_once_and_marks_each_day_done(
    make_scanner: Callable[..., Scanner],
) -> None:
    scanner = make_scanner()
    slices = scanner.slices()
    truth = {item["recordingId"] for item in scanner.emulator.ground_truth()}
    with capture_logs() as logs:
        result = scanner.scan(slices)
    assert result == ScanResult(days_total=len(slices), days_scanned=len(slices))
    assert result.complete and scanner.slices_done == len(slices)
    assert all(scanner.state.get(recording_id) is not None for recording_id in truth)
    assert sum(seen.new_in_run for seen in scanner.seen) == len(truth)  # a call logged twice counts once
    assert all(scanner.state.window_done(start, end) for start, end in slices)
    scanned = [e for e in logs if e["event"] == "window_scanned"]
    assert len(scanned) == len(slices) and sum(e["recordings"] for e in scanned) >= len(truth)
    row = scanner.state.get(sorted(truth)[0])
    assert row is not None and (row.status, row.attempts, row.last_seen_run) == ("pending", 0, RUN)


def test_scan_a_second_run_skips_the_days_already_done(make_scanner: Callable[..., Scanner]) -> None:
    scanner = make_scanner()
    slices = scanner.slices()
    scanner.scan(slices)
    requests_before = scanner.call_log_requests()
    scanner.seen.clear()
    result = scanner.scan(slices, run_id="run-2")
    assert result.complete and result.days_scanned == len(slices)
    assert scanner.call_log_requests() == requests_before  # not read again
    assert scanner.seen == [] and scanner.slices_done == 2 * len(slices)


def test_scan_without_marking_reads_every_day_again_and_counts_the_archived(
    make_scanner: Callable[..., Scanner],
) -> None:
    scanner = make_scanner()
    slices = scanner.slices()
    scanner.scan(slices, mark_done=False)  # a dry run or `verify`: nothing is marked done
    assert not any(scanner.state.window_done(start, end) for start, end in slices)
    first = scanner.seen[:]
    some = next(iter(scanner.emulator.ground_truth()))["recordingId"]
    scanner.state.mark_archived(some, ArchivedObject("k.mp3", "audio/mpeg", 1, "0" * 64))
    scanner.seen.clear()
    requests_before = scanner.call_log_requests()
    scanner.scan(slices, run_id="run-2", mark_done=False)
    assert scanner.call_log_requests() > requests_before
    assert sum(s.new_in_run for s in scanner.seen) == sum(s.new_in_run for s in first)
    assert sum(s.already_archived for s in scanner.seen) == 1


def test_scan_a_refused_call_log_counts_unreadable_days_and_trips_the_breaker(
    make_scanner: Callable[..., Scanner],
) -> None:
    scanner = make_scanner()
    slices = scanner.slices()
    assert len(slices) > THRESHOLD
    refusing = RefusingTransport()
    scanner.session.mount(scanner.emulator.url + CALL_LOG_PATH, refusing)  # the login still works
    with capture_logs() as logs:
        result = scanner.scan(slices)
    assert (result.days_unreadable, result.days_scanned, result.stopped) == (THRESHOLD, 0, True)
    assert result.unreadable == slices[:THRESHOLD]  # the days, for the summary to name
    assert not result.complete and refusing.sent == 3 * THRESHOLD
    assert isinstance(scanner.breaker.tripped, RingCentralUnavailable) and scanner.cancel.is_set()
    assert scanner.seen == [] and not any(scanner.state.window_done(s, e) for s, e in slices)
    failed = [e for e in logs if e["event"] == "scan_failed"]
    assert len(failed) == THRESHOLD and all("ConnectionError" in e["reason"] for e in failed)


def test_scan_a_day_read_resets_the_breaker(make_scanner: Callable[..., Scanner]) -> None:
    scanner = make_scanner()
    for _ in range(THRESHOLD - 1):
        scanner.breaker.failure(RINGCENTRAL, "timed out")
    assert scanner.scan(scanner.slices()[:1]).complete
    scanner.breaker.failure(RINGCENTRAL, "timed out")
    assert scanner.breaker.tripped is None


def test_scan_a_missing_permission_is_raised_not_counted(make_scanner: Callable[..., Scanner]) -> None:
    scanner = make_scanner(call_log_error="no-read-call-log")
    with pytest.raises(AuthError, match="ReadCallLog"):
        scanner.scan(scanner.slices())
    assert scanner.breaker.tripped is None


def test_scan_stops_before_the_next_day_once_cancelled(make_scanner: Callable[..., Scanner]) -> None:
    scanner = make_scanner()
    slices = scanner.slices()

    def stop_after_the_first_day() -> None:
        scanner.slices_done += 1
        scanner.cancel.set()

    result = scan_window(slices, **scanner.collaborators(), on_slice=stop_after_the_first_day)
    assert (result.days_scanned, result.stopped, result.complete) == (1, True, False)
    assert scanner.state.window_done(*slices[0]) and not scanner.state.window_done(*slices[1])
