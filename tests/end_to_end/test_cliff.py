"""RingCentral's deletion cliff end to end (issue 14): deadline-first archiving, the forecast, lost.

Every scenario is a backlog against the emulator over HTTP whose recordings RingCentral deletes at call
start + retention, and whose oldest deadlines fall inside the run: the calls end an hour before the
test starts and the retention is a little more than that, so deadlines lie seconds ahead. The Heavy
budget is small (10 a second) so that it binds.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.emulator.data import parse_iso
from archiver.models import format_time, parse_time
from tests.helpers import ONE_RECORDING_EACH, archiver_env

Run = Callable[..., tuple[int, list[dict[str, Any]]]]
PACE = 10  # Heavy requests a second: the budget that binds
HEAVY = GroupLimit(PACE, 1.0, 1.0)
ENDED = 3700.0  # seconds before the test that the newest call started (every call has ended by then)


@dataclass(frozen=True)
class Cliff:
    """A backlog of `calls` recordings whose deadlines spread over [t0 + lead, t0 + lead + spread]."""

    emulator: Emulator
    env: dict[str, str]
    t0: float
    retention: float


def cliff(
    start: Callable[..., Emulator],
    tmp_path: Path,
    calls: int,
    lead: float,
    spread: float,
    seed: int = 3,
    **extra: str,
) -> Cliff:
    t0 = time.time()
    # Whole seconds: the state recomputes deadlines with a whole number of seconds of retention.
    retention = float(round(ENDED + spread + lead))
    data = DataOptions(
        seed=seed,
        calls=calls,
        days=spread / 86400,
        anchor=t0 + lead + spread - retention,
        fixed_size=256,
        **ONE_RECORDING_EACH,  # type: ignore[arg-type]
    )
    emulator = start(data=data, heavy=HEAVY, retention=retention)
    dest = tmp_path / "archive"
    dest.mkdir(exist_ok=True)
    env = archiver_env(
        emulator,
        tmp_path,
        dest.as_uri(),
        RC_ARCHIVER_RATE_HEAVY=f"{PACE}/1s",
        RC_ARCHIVER_SOURCE_RETENTION=f"{retention:.0f}s",  # about an hour, alone: any retention works
        RC_ARCHIVER_LOOKBACK="3h",
        **extra,
    )
    return Cliff(emulator, env, t0, retention)


def since(c: Cliff) -> str:
    return format_time(datetime.fromtimestamp(c.t0 - 2 * ENDED, UTC))


def deadlines(c: Cliff) -> dict[str, float]:
    """Each recording's deletion time at the emulator (epoch seconds)."""
    return {item["recordingId"]: parse_iso(item["deadline"]) for item in c.emulator.ground_truth()}


def content_requests(c: Cliff) -> list[tuple[str, float]]:
    """(recording id, epoch time) of each successful content request, in the order they were answered.

    The emulator's download counter keeps the order of first requests; its timeline the times."""
    offset = time.time() - time.monotonic()
    snapshot = c.emulator.stats.snapshot()
    order = list(snapshot["downloads"])
    times = [
        t + offset for t, route, status in c.emulator.stats.timeline if route == "content" and status == 200
    ]
    assert len(order) == len(times)
    return list(zip(order, times, strict=True))


def summary_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "run_summary")


def event(events: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(e for e in events if e["event"] == name)


def epoch(value: str) -> float:
    return parse_time(value).timestamp()


def scan_order_losses(c: Cliff, requests: list[tuple[str, float]]) -> int:
    """How many recordings the same run would have lost in scan order (newest call first): the same
    request times, handed out newest first."""
    due = deadlines(c)
    newest_first = sorted(due, key=lambda rec: -due[rec])
    slots = sorted(t for _, t in requests)
    return sum(1 for rec, at in zip(newest_first, slots, strict=False) if at >= due[rec])


def test_cliff_clearable_backlog_is_archived_with_zero_loss_oldest_deadline_first(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    # 60 recordings at 10 a second: about 6 s of work; the oldest deadline is 4 s away, then one
    # every 0.2 s: clearable oldest first with 4 s to spare, not newest first.
    c = cliff(
        emulator_factory, tmp_path, calls=60, lead=4.0, spread=12.0, RC_ARCHIVER_DOWNLOAD_CONCURRENCY="1"
    )
    code, events = run_archiver(c.env, "run", "--since", since(c))
    summary = summary_of(events)
    assert code == 0, summary
    assert summary["archived"] == 60 and summary["lost"] == 0
    due = deadlines(c)
    requests = content_requests(c)
    assert [rec for rec, _ in requests] == sorted(due, key=lambda rec: (due[rec], rec))  # deadline order
    assert all(at < due[rec] for rec, at in requests)  # each fetched before RingCentral deleted it
    # The oldest deadline passed during the run: scan order, at the same pace, would have lost some.
    assert min(due.values()) < max(at for _, at in requests)
    assert scan_order_losses(c, requests) > 0


@pytest.mark.alone  # the forecast is about the budget; a busy neighbour would make the machine bind
def test_cliff_forecast_matches_the_loss_and_the_clear_time_within_15_percent(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    report: Callable[..., tuple[int, str]],
) -> None:
    # 100 recordings whose deadlines come at 25 a second from 2 s on, at 10 a second: about half are lost.
    c = cliff(
        emulator_factory, tmp_path, calls=100, lead=2.0, spread=4.0, RC_ARCHIVER_DOWNLOAD_CONCURRENCY="1"
    )
    code, dry = report(c.env, "run", "--dry-run", "--since", since(c))
    assert code == 0 and "forecast: backlog 100, clears at " in dry and "to prevent the loss: ask" in dry
    asked = time.time()
    code, out = report(c.env, "status", "--json")
    status = json.loads(out)["forecast"]
    assert code == 0 and set(status) == {"backlog", "clears_at", "projected_loss", "first_loss_at"}
    code, events = run_archiver(c.env, "run", "--since", since(c))
    forecast = event(events, "forecast")
    summary = summary_of(events)
    assert code == 1 and summary["forecast"]["projected_loss"] == forecast["projected_loss"]
    projected, lost = forecast["projected_loss"], summary["lost"]
    assert 0 < projected < 100 and lost > 0
    assert abs(lost - projected) <= 0.15 * projected, (projected, lost)
    # The backlog cleared (its last recording archived) when the forecast said it would.
    made = epoch(forecast["timestamp"])
    cleared = max(epoch(e["timestamp"]) for e in events if e["event"] == "recording_archived")
    projected_seconds = epoch(forecast["clears_at"]) - made
    assert abs((cleared - made) - projected_seconds) <= 0.15 * projected_seconds, (
        cleared - made,
        projected_seconds,
    )
    due = deadlines(c)
    assert min(due.values()) - 0.01 <= epoch(forecast["first_loss_at"]) <= max(due.values()) + 0.01
    # status, asked a moment before the run, projected the same, less what that moment bought.
    head_start = (made - asked) * PACE
    assert status["backlog"] == 100 and status["first_loss_at"] is not None
    assert abs(lost - status["projected_loss"]) <= 0.15 * projected + head_start + 1, (status, lost)
    assert "raise the app's Heavy limit from 10 to at least" in forecast["fix"]


def test_cliff_lost_recordings_are_reported_as_lost_and_never_retried(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    report: Callable[..., tuple[int, str]],
) -> None:
    # 40 recordings whose deadlines all fall in the next 3 s, at 10 a second: some cannot be saved.
    c = cliff(emulator_factory, tmp_path, calls=40, lead=1.0, spread=2.0)
    code, events = run_archiver(c.env, "run", "--since", since(c))
    summary = summary_of(events)
    lost = {e["recording_id"]: e["reason"] for e in events if e["event"] == "recording_lost"}
    archived = {e["recording_id"] for e in events if e["event"] == "recording_archived"}
    assert code == 1 and summary["outcome"] == "incomplete"
    assert summary["lost"] == len(lost) > 0 and summary["pending"] == 0 and summary["failed"] == 0
    assert set(lost) == set(deadlines(c)) - archived
    assert all(reason.startswith("deleted by RingCentral: its retention ended ") for reason in lost.values())

    code, out = report(c.env, "status", "--json")
    status = json.loads(out)
    assert code == 0 and status["counts"]["lost"] == len(lost)
    assert {row["recording_id"]: row["reason"] for row in status["lost"]} == lost
    code, text = report(c.env, "status")
    assert f"LOST: deleted by RingCentral before they were archived ({len(lost)})" in text

    # The next run does not ask for them again: lost is final, not "not ready" until exhausted.
    refused = c.emulator.stats.snapshot()["requests"].get("content 404", 0)
    code, events = run_archiver(c.env, "run", "--since", since(c))
    summary = summary_of(events)
    assert code == 0 and summary["lost"] == summary["pending"] == summary["archived"] == 0
    assert c.emulator.stats.snapshot()["requests"].get("content 404", 0) == refused
    code, out = report(c.env, "status", "--json")
    assert [row["attempts"] for row in json.loads(out)["lost"]] == [0] * len(lost)


def test_cliff_dry_run_and_status_show_the_forecast_and_download_nothing(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    report: Callable[..., tuple[int, str]],
) -> None:
    # 30 recordings due 2 s to 3 s from now at 10 a second: a loss is certain; the forecast says so.
    c = cliff(emulator_factory, tmp_path, calls=30, lead=2.0, spread=1.0)
    code, dry = report(c.env, "run", "--dry-run", "--since", since(c))
    would = [line.split()[2] for line in dry.splitlines() if line.startswith("would archive ")]
    due = deadlines(c)
    assert code == 0 and sorted(would) == sorted(due)
    assert would == sorted(due, key=lambda rec: (due[rec], rec))  # the run's order: deadline first
    assert "forecast: backlog 30, clears at " in dry and "to prevent the loss: ask RingCentral" in dry
    code, out = report(c.env, "status", "--json")
    status = json.loads(out)
    forecast = status["forecast"]
    assert forecast["backlog"] == 30 and 0 < forecast["projected_loss"] < 30
    assert min(due.values()) - 0.01 <= epoch(forecast["first_loss_at"]) <= max(due.values()) + 0.01
    saved = 30 - forecast["projected_loss"]  # each costs a tenth of a second of budget
    assert epoch(forecast["clears_at"]) - time.time() <= saved / PACE + 0.5
    assert "Heavy limit from 10 to at least" in status["forecast_advice"]
    code, text = report(c.env, "status")
    assert code == 0 and "forecast     backlog 30, clears at " in text and "to prevent it: ask" in text
    assert c.emulator.stats.snapshot()["downloads"] == {}
