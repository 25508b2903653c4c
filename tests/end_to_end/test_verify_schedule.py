"""The daemon's scheduled verify (RC_ARCHIVER_VERIFY_SCHEDULE) as a real process against the emulator:
it never runs during an archive pass, it exports its result, and it notices an object deleted from
the archive."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from archiver.cron import parse_cron
from archiver.emulator import Emulator
from archiver.models import parse_time
from archiver.settings import load_settings
from archiver.verify import VerifyResult
from archiver.verify_job import KINDS, VerifyGauges, problems_by_kind, schedule_interval
from tests.helpers import (
    folder_env,
    free_port,
    scrape,
    slow_emulator,
    start_daemon,
    stop_daemon,
    wait_for_event,
)


def _between(event: dict[str, Any], start: dict[str, Any], end: dict[str, Any]) -> bool:
    return parse_time(start["timestamp"]) <= parse_time(event["timestamp"]) <= parse_time(end["timestamp"])


VERIFY_EVERY = 5  # seconds: the schedule below, in cron's seconds field


def test_scheduled_verify_waits_for_the_run_exports_its_result_and_finds_a_deleted_object(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """A verify every 5 s; the daemon starts a run (--run-now) that takes longer, so verifies fall due
    during the run: one starts only after the run's summary. A healthy archive has no problem; after
    one recording's object is deleted from the archive, the next verify reports it missing in
    /metrics."""
    emulator = slow_emulator(emulator_factory, calls=400, days=0.8)
    port = free_port()
    dest = tmp_path / "archive"
    env = folder_env(
        emulator,
        tmp_path,
        RC_ARCHIVER_SCHEDULE="0 2 1 1 *",
        RC_ARCHIVER_VERIFY_SCHEDULE=f"*/{VERIFY_EVERY} * * * * *",
        RC_ARCHIVER_VERIFY_SAMPLE="100",
        RC_ARCHIVER_METRICS_ADDR=f"127.0.0.1:{port}",
    )
    proc, lines = start_daemon(env, "--run-now")
    seen: list[dict[str, Any]] = []
    try:
        wait_for_event(lines, seen, "run_summary", timeout=120)
        wait_for_event(lines, seen, "verify_summary", timeout=60)
        first = scrape(port)
        audio = next(p for p in sorted(dest.rglob("*")) if p.is_file() and p.suffix in (".mp3", ".wav"))
        audio.unlink()
        deleted_at = datetime.now(UTC)
        while True:  # the next verify started after the deletion
            wait_for_event(lines, seen, "verify_summary", timeout=60)
            started = [e for e in seen if e["event"] == "verify_started"][-1]
            if parse_time(started["timestamp"]) > deleted_at:
                break
        second = scrape(port)
        wait_for_event(lines, seen, "next_verify")
        assert stop_daemon(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run_started = next(e for e in seen if e["event"] == "run_started")
    run_summary = next(e for e in seen if e["event"] == "run_summary")
    assert run_summary["outcome"] == "ok" and run_summary["archived"] >= 300
    verifies = [e for e in seen if e["event"] == "verify_started"]
    assert not any(_between(v, run_started, run_summary) for v in verifies), "a verify ran during the run"
    # Not vacuous: the run outlasted the schedule's interval, so a verify fell due then and had to wait.
    run_seconds = (
        parse_time(run_summary["timestamp"]) - parse_time(run_started["timestamp"])
    ).total_seconds()
    assert run_seconds > VERIFY_EVERY, run_seconds
    assert all(v["run_id"].startswith("verify-") for v in verifies)
    summaries = [e for e in seen if e["event"] == "verify_summary"]
    # The first verify finds the archive whole (its examples name what it would call missing); the
    # object deleted from the archive is the one problem the next verify finds.
    before = summaries[0]["problems"]
    assert summaries[0]["checked"] >= 300 and summaries[0]["ok"] is True, json.dumps(summaries[0])
    assert sum(before.values()) == 0 and summaries[0]["examples"] == {}, summaries[0]
    after = summaries[-1]
    assert after["ok"] is False and after["problems"] == {**before, "missing": 1}, after
    [example] = after["examples"]["missing"]
    assert example.endswith(f"object {audio.relative_to(dest).as_posix()} is missing"), example
    assert summaries[-1]["level"] == "error" and "--repair" in summaries[-1]["fix"]
    assert all("run_id" not in e for e in seen if e["event"] in ("next_run", "next_verify"))

    assert first["rc_archiver_verify_checked_recordings"] >= 300
    assert all(first[f'rc_archiver_verify_problems{{kind="{kind}"}}'] == before[kind] for kind in KINDS)
    assert first["rc_archiver_verify_interval_seconds"] == VERIFY_EVERY
    assert second['rc_archiver_verify_problems{kind="missing"}'] == 1
    assert (
        second["rc_archiver_last_verify_timestamp_seconds"]
        > first["rc_archiver_last_verify_timestamp_seconds"]
    )
    assert (
        second["rc_archiver_verify_scheduled_timestamp_seconds"]
        < first["rc_archiver_last_verify_timestamp_seconds"]
    )


def test_verify_gauges_are_absent_until_a_verify_has_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    """No "0 problems" from a daemon that never verified: only the schedule's interval and start."""
    monkeypatch.setenv("RC_ARCHIVER_VERIFY_SCHEDULE", "0 12 * * 0")
    settings = load_settings()
    now = datetime(2026, 12, 1, tzinfo=UTC)
    gauges = VerifyGauges(schedule_interval(_trigger(settings.verify_schedule), now), now)
    names = {s.name: s.value for family in gauges.collect() for s in family.samples}
    assert names == {
        "rc_archiver_verify_interval_seconds": 7 * 86400,
        "rc_archiver_verify_scheduled_timestamp_seconds": now.timestamp(),
    }
    result = VerifyResult(checked=10, corrupt=[("1", "why")], chain_breaks=["b"], deletions_unlisted=["2"])
    gauges.record(result, now)
    samples = {(s.name, s.labels.get("kind")): s.value for family in gauges.collect() for s in family.samples}
    assert samples[("rc_archiver_verify_checked_recordings", None)] == 10
    assert samples[("rc_archiver_last_verify_timestamp_seconds", None)] == now.timestamp()
    assert problems_by_kind(result) == {
        "missing": 0, "corrupt": 1, "unlisted": 1, "only_copy": 0, "chain": 1, "unreadable": 0,
    }  # fmt: skip
    assert {k: v for (n, k), v in samples.items() if n == "rc_archiver_verify_problems"} == problems_by_kind(
        result
    )


def _trigger(expression: str) -> Any:
    return parse_cron(expression, UTC)
