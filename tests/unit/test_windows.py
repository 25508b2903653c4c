"""Which window a run scans and how it is cut into days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from archiver.errors import SettingsError
from archiver.windows import day_slices, plan_window

NOW = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


@pytest.mark.parametrize(
    ("watermark", "since", "until", "expected"),
    [
        (None, None, None, (NOW - HOUR - DAY, NOW - HOUR)),  # first run: the last lookback
        (NOW - DAY, None, None, (NOW - 2 * DAY, NOW - HOUR)),  # watermark - lookback
        (NOW - 5 * DAY, None, None, (NOW - 6 * DAY, NOW - HOUR)),  # a daemon down for days catches up
        (NOW - DAY, NOW - 10 * DAY, NOW - 9 * DAY, (NOW - 10 * DAY, NOW - 9 * DAY)),  # explicit backfill
        (None, NOW - DAY, NOW + DAY, (NOW - DAY, NOW)),  # never into the future
    ],
)
def test_windows_plan(
    watermark: datetime | None,
    since: datetime | None,
    until: datetime | None,
    expected: tuple[datetime, datetime],
) -> None:
    assert plan_window(NOW, watermark, since, until, DAY, HOUR) == expected


@pytest.mark.parametrize(
    ("watermark", "since", "expected_start"),
    [
        (None, None, NOW - 90 * DAY),  # a new or replaced state: everything RingCentral may still hold
        (NOW - DAY, None, NOW - 2 * DAY),  # a state that knows where it stopped: watermark - lookback
        (None, NOW - 3 * DAY, NOW - 3 * DAY),  # --since wins
    ],
)
def test_windows_a_state_without_a_watermark_scans_the_retention_window(
    watermark: datetime | None, since: datetime | None, expected_start: datetime
) -> None:
    start, end = plan_window(NOW, watermark, since, None, DAY, HOUR, retention=90 * DAY)
    assert (start, end) == (expected_start, NOW - HOUR)


def test_windows_the_full_scan_is_said_once_with_its_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    from structlog.testing import capture_logs

    from archiver.settings import load_settings
    from archiver.windows import plan_run_window

    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", "30d")
    monkeypatch.setenv("RC_ARCHIVER_RISK_WINDOW", "1d")
    monkeypatch.setenv("RC_ARCHIVER_SETTLE_DELAY", "1h")
    settings = load_settings()
    with capture_logs() as logs:
        window = plan_run_window(NOW, None, None, None, settings)
        plan_run_window(NOW, NOW - DAY, None, None, settings)  # a watermark: no full scan, no line
    assert window == (NOW - 30 * DAY, NOW - HOUR)
    (line,) = [e for e in logs if e["event"] == "full_retention_scan"]
    assert line["log_level"] == "info" and line["day_slices"] == 31
    assert "one Heavy request per 1,000 calls per day slice" in line["cost"]


def test_windows_empty_window_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="--since"):
        plan_window(NOW, None, NOW - HOUR, NOW - 2 * HOUR, DAY, HOUR)


def test_windows_slices_at_utc_midnight() -> None:
    start = datetime(2026, 1, 1, 12, tzinfo=UTC)
    slices = day_slices(start, start + 2 * DAY, ZoneInfo("UTC"))
    assert [(a.isoformat(), b.isoformat()) for a, b in slices] == [
        ("2026-01-01T12:00:00+00:00", "2026-01-02T00:00:00+00:00"),
        ("2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"),
        ("2026-01-03T00:00:00+00:00", "2026-01-03T12:00:00+00:00"),
    ]


def test_windows_slices_follow_local_midnight_across_dst() -> None:
    tz = ZoneInfo("Europe/Berlin")
    start = datetime(2026, 3, 28, 0, tzinfo=tz).astimezone(UTC)
    slices = day_slices(start, start + 3 * DAY, tz)
    lengths = [(b - a) for a, b in slices]
    assert timedelta(hours=23) in lengths  # the spring-forward day is 23 hours long
    assert all(b.astimezone(tz).hour == 0 for _, b in slices[:-1])
    assert slices[0][0] == start and slices[-1][1] == start + 3 * DAY


def test_windows_ninety_day_backfill_is_ninety_slices() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert len(day_slices(start, start + 90 * DAY, ZoneInfo("UTC"))) == 90


def test_verify_until_stops_at_what_the_runs_have_scanned() -> None:
    from archiver.windows import verify_until

    now = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    settle = timedelta(hours=1)
    watermark = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
    assert verify_until(now, watermark, settle) == watermark  # after it: the next run's, not missing
    assert verify_until(now, None, settle) == now - settle
    assert verify_until(now, now, settle) == now - settle  # never closer to now than a run would go
