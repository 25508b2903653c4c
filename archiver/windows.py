"""Which time window a run scans, and its day slices. Pure functions: time is passed in."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from archiver.errors import SettingsError


def plan_window(
    now: datetime,
    watermark: datetime | None,
    since: datetime | None,
    until: datetime | None,
    lookback: timedelta,
    settle_delay: timedelta,
) -> tuple[datetime, datetime]:
    """[since, until) when given; else [watermark - lookback, now - settle delay); first run: lookback back.

    The lookback rescans the end of the previous window because records appear late and recordings
    lag; the settle delay keeps the window away from calls whose records are still changing.
    """
    end = min(until, now) if until is not None else now - settle_delay  # the future has no recordings yet
    if since is not None:
        start = since
    elif watermark is not None:
        start = min(watermark, end) - lookback
    else:
        start = end - lookback
    if start >= end:
        raise SettingsError(
            f"empty window: --since {start.isoformat()} is not before --until {end.isoformat()}",
            hint="give --since earlier than --until (and --until no later than now)",
        )
    return start, end


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
