"""Counting a pass: each recording's outcome goes in, the run's summary comes out. Thread-safe, and
flat in memory: counters, and the first failures for the summary, nothing per recording."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from archiver.archive.scan import ScanResult
from archiver.models import MAX_REPORTED_FAILURES, Failure, RunSummary
from archiver.state import Seen


class Kind(StrEnum):
    """What became of one recording in a pass."""

    ARCHIVED = "archived"  # downloaded, uploaded with its sidecar, recorded
    FOUND_STORED = "found_stored"  # already in the destination, whole: adopted, nothing uploaded
    NOT_READY = "not_ready"  # RingCentral has no content yet (404 CMN-102): stays pending
    FAILED = "failed"  # its own failure, counted as an attempt
    LOST = "lost"  # RingCentral deleted it before we could archive it
    LATE = "late"  # its deadline passed before its turn: handed back, tried after the live ones
    OUTAGE = "outage"  # the world failed (the breaker counts it): nothing charged
    FATAL = "fatal"  # a failure that ends the run (a revoked login): nothing charged
    STOPPED = "stopped"  # the run was stopping before its turn: still pending


@dataclass(frozen=True)
class Outcome:
    """What became of one recording in this pass."""

    recording_id: str
    kind: Kind
    bytes: int = 0
    reason: str = ""
    attempts: int = 0
    exhausted: bool = False  # the failure was its last counted attempt: now retried only slowly


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    bytes: int


class Tally:
    def __init__(self, run_id: str) -> None:
        self._lock = threading.Lock()
        self._summary = RunSummary(run_id=run_id)
        self._done = 0

    def seen(self, seen: Seen) -> None:
        with self._lock:
            self._summary.found += seen.new_in_run
            self._summary.skipped += seen.already_archived

    def taken_up(self, count: int = 1) -> None:
        """Leftovers of earlier runs that this run's scan did not see (another window)."""
        with self._lock:
            self._summary.found += count

    def add(self, outcome: Outcome) -> None:
        with self._lock:
            s = self._summary
            self._done += 1
            if outcome.kind is Kind.ARCHIVED:
                s.archived += 1
                s.bytes += outcome.bytes
            elif outcome.kind is Kind.FOUND_STORED:
                s.skipped += 1
            elif outcome.kind is Kind.LOST:
                s.lost += 1
            elif outcome.kind in (Kind.NOT_READY, Kind.FAILED) and outcome.exhausted:
                # Listed with the other exhausted ones among the failures (run_pass._complete_summary).
                s.exhausted_in_run += 1
            elif outcome.kind in (Kind.NOT_READY, Kind.FAILED):
                if outcome.kind is Kind.NOT_READY:
                    s.pending += 1
                else:
                    s.failed += 1
                    if len(s.failures) < MAX_REPORTED_FAILURES:
                        s.failures.append(Failure(outcome.recording_id, outcome.reason, outcome.attempts))

    def scanned(self, scan: ScanResult, tz: ZoneInfo) -> bool:
        """Fold the call-log scan's result into the summary: each day that could not be read after
        every retry, named by the local date (RC_ARCHIVER_TIMEZONE) an operator looks up, so a run that
        could not read part of the call log never says "ok". Returns whether the scan read the whole
        window (only then may the watermark pass it)."""
        with self._lock:
            for start, _ in scan.unreadable:
                self._summary.days_unreadable += 1
                self._summary.unreadable_days.append(start.astimezone(tz).date().isoformat())
        return scan.complete

    def deleted(self, count: int) -> None:
        with self._lock:
            self._summary.deleted += count

    def progress(self) -> Progress:
        with self._lock:
            return Progress(self._done, self._summary.found, self._summary.bytes)

    def summary(self) -> RunSummary:
        with self._lock:
            return self._summary
