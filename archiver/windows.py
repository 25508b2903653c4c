"""Which time window a run scans, and its day slices. Pure functions (time is passed in), and the one
log line that says a new state scans the whole source retention window."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import structlog

from archiver.errors import SettingsError
from archiver.models import format_time
from archiver.settings import Settings

log = structlog.get_logger(__name__)
CALLS_PER_PAGE = 1000  # the call log's perPage: one Heavy request reads up to this many calls of a day


def plan_window(
    now: datetime,
    watermark: datetime | None,
    since: datetime | None,
    until: datetime | None,
    lookback: timedelta,
    settle_delay: timedelta,
    retention: timedelta | None = None,
) -> tuple[datetime, datetime]:
    """[since, until) when given; else [watermark - lookback, now - settle delay); with no watermark
    (a new, replaced or never completed state), from `retention` back: every recording RingCentral may
    still hold (the last `lookback` when no retention is given, as for verify).

    The lookback rescans the end of the previous window because records appear late and recordings
    lag; the settle delay keeps the window away from calls whose records are still changing. A state
    without a watermark cannot know what earlier runs saw, so scanning less than the retention window
    would silently forget every unarchived recording before it.
    """
    end = min(until, now) if until is not None else now - settle_delay  # the future has no recordings yet
    if since is not None:
        start = since
    elif watermark is not None:
        start = min(watermark, end) - lookback
    elif retention is not None:
        start = min(now - retention, end - lookback)
    else:
        start = end - lookback
    if start >= end:
        raise SettingsError(
            f"empty window: --since {start.isoformat()} is not before --until {end.isoformat()}",
            hint="give --since earlier than --until (and --until no later than now)",
        )
    return start, end


def plan_run_window(
    now: datetime,
    watermark: datetime | None,
    since: datetime | None,
    until: datetime | None,
    settings: Settings,
) -> tuple[datetime, datetime]:
    """The window of a run (and a dry run): plan_window with the settings, saying so when a state
    without a watermark makes it scan the whole source retention window."""
    window = plan_window(
        now, watermark, since, until, settings.lookback, settings.settle_delay, settings.source_retention
    )
    if watermark is None and since is None:
        days = len(day_slices(*window, settings.tz))
        log.info(
            "full_retention_scan",
            reason="the state has no watermark (new, replaced or never completed): every recording "
            "RingCentral may still hold is scanned for, and what the destination already holds is adopted "
            "by key, size and sha256 without a download",
            window_start=format_time(window[0]),
            window_end=format_time(window[1]),
            day_slices=days,
            cost=f"about one Heavy request per {CALLS_PER_PAGE:,} calls per day slice (at least {days})",
        )
    return window


def day_slices(start: datetime, end: datetime, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """Cut [start, end) at local midnights in tz, oldest first, so each day can be recorded as done."""
    slices: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        local = cursor.astimezone(tz)
        next_midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=tz)
        boundary = min(end, next_midnight.astimezone(start.tzinfo))
        slices.append((cursor, boundary))
        cursor = boundary
    return slices


VERIFY_RANGE = timedelta(days=90)  # verify's default range back from now (RingCentral's retention)


def verify_until(now: datetime, watermark: datetime | None, settle_delay: timedelta) -> datetime:
    """Where verify's range ends when none is asked for: the watermark, what the runs have scanned and
    claim to hold, never the calls after it (the next run archives those: not missing, only not yet
    due); with no watermark, now less the settle delay."""
    end = now - settle_delay
    return min(watermark, end) if watermark is not None else end
