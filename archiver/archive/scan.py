"""The call log's day slices into the state: shared by a run, a dry run and `verify`.

Each slice's recordings are recorded (with their deadlines) as its pages arrive; a finished slice is
marked done (by a run, so an interrupted 90-day backfill resumes at the first day it had not finished).
A slice that cannot be read is counted as an unreadable day (scanned again by the next run) and, when
the reason is a failing RingCentral, told to the outage breaker; it is never charged to a recording.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from archiver.archive.breaker import RINGCENTRAL, OutageBreaker
from archiver.errors import AuthError, Cancelled, RecordingError, TransientError
from archiver.models import format_time
from archiver.ringcentral.client import RingCentralClient
from archiver.state import Seen, StateStore

log = structlog.get_logger(__name__)


@dataclass
class ScanResult:
    """What a scan read. A run folds it into its summary (Tally.scanned), which names each unreadable
    day and says whether the watermark may advance."""

    days_total: int = 0
    days_scanned: int = 0
    stopped: bool = False
    # The (start, end) of each slice that could not be read, so a run's summary can name the days.
    unreadable: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def days_unreadable(self) -> int:
        return len(self.unreadable)

    @property
    def complete(self) -> bool:
        return not self.stopped and not self.unreadable


def scan_window(
    slices: list[tuple[datetime, datetime]],
    *,
    client: RingCentralClient,
    state: StateStore,
    run_id: str,
    retention: timedelta,
    cancel: threading.Event,
    breaker: OutageBreaker,
    on_seen: Callable[[Seen], None] = lambda seen: None,
    on_slice: Callable[[], None] = lambda: None,
    mark_done: bool = True,
) -> ScanResult:
    """Record every recording of the slices in the state (seen under `run_id`, with the deadline
    `retention` gives each). AuthError (a missing permission) is raised: no other day could be read
    either. `mark_done=False` (a dry run, verify) reads every slice and marks none done."""
    result = ScanResult(days_total=len(slices))
    for start, end in slices:
        if cancel.is_set():
            result.stopped = True
            break
        if mark_done and state.window_done(start, end):
            result.days_scanned += 1
            on_slice()
            continue
        records = recordings = 0
        try:
            for page in client.call_log_pages(start, end, f"call-log {format_time(start)[:10]}"):
                records += page.records
                recordings += len(page.recordings)
                on_seen(state.note_found(page.recordings, run_id, retention))
        except Cancelled:
            result.stopped = True
            break
        except AuthError:
            raise
        except (TransientError, RecordingError) as exc:
            result.unreadable.append((start, end))
            log.error(
                "scan_failed", window_start=format_time(start), window_end=format_time(end), reason=str(exc)
            )
            if isinstance(exc, TransientError):
                breaker.failure(RINGCENTRAL, str(exc))
            continue
        breaker.success(RINGCENTRAL)
        if mark_done:
            state.mark_window_done(start, end, run_id)
        result.days_scanned += 1
        on_slice()
        log.info(
            "window_scanned",
            window_start=format_time(start),
            window_end=format_time(end),
            records=records,
            recordings=recordings,
        )
    return result
