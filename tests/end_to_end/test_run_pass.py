"""archive/run_pass.py end to end with its real parts: the emulator over HTTP, the archiver's own
client and pacers, a folder destination, a real SQLite state and spool. Nothing of the pass is
replaced; the one fault is the world's: a call-log day whose every request is refused."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from structlog.testing import capture_logs

from archiver.archive.context import PassContext
from archiver.archive.run_pass import run_pass
from archiver.destinations import destination_for
from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.lifecycle import conclude
from archiver.models import RunSummary, format_time
from archiver.ringcentral.client import CALL_LOG_PATH, make_session
from archiver.settings import Settings, load_settings
from archiver.state import StateStore
from archiver.windows import day_slices
from tests.helpers import (
    ONE_RECORDING_EACH,
    RefusingTransport,
    archiver_env,
    audio_by_recording,
    emulator_client,
    folder_files,
)


@dataclass
class Pass:
    """One archive's world: the emulator, the settings, the state and the folder it archives to."""

    emulator: Emulator
    settings: Settings
    state: StateStore
    archive: Path
    spool: Path

    def run(
        self, window: tuple[datetime, datetime], session: requests.Session, run_id: str
    ) -> tuple[RunSummary, list[dict[str, Any]], PassContext]:
        """run_pass as the lifecycle calls it, then its outcome and exit code (lifecycle.conclude)."""
        cancel = threading.Event()
        client = emulator_client(self.emulator, session, cancel=cancel)
        destination = destination_for(self.settings, journal=self.state)
        destination.probe()
        ctx = PassContext(
            settings=self.settings,
            client=client,
            destination=destination,
            state=self.state,
            spool=self.spool,
            cancel=cancel,
        )
        self.state.begin_run(run_id)
        with capture_logs() as logs:
            summary = run_pass(ctx, run_id=run_id, window=window)
        conclude(summary)
        return summary, [dict(entry) for entry in logs], ctx

    def archived(self) -> set[str]:
        return set(audio_by_recording(folder_files(self.archive)))

    def recordings_between(self, start: datetime, end: datetime) -> set[str]:
        return {
            item["recordingId"] for item in self.emulator.ground_truth(start.timestamp(), end.timestamp())
        }


@pytest.fixture
def make_pass(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Pass]]:
    opened: list[StateStore] = []

    def make(data: DataOptions, limit: GroupLimit | None = None, **env: str) -> Pass:
        emulator = emulator_factory(data=data, **({"heavy": limit} if limit else {}))
        archive, spool = tmp_path / "archive", tmp_path / "spool"
        archive.mkdir()
        spool.mkdir()
        for name in list(os.environ):
            if name.startswith("RC_"):
                monkeypatch.delenv(name)
        for name, value in {**archiver_env(emulator, tmp_path, archive.as_uri()), **env}.items():
            monkeypatch.setenv(name, value)
        state = StateStore(tmp_path / "state.db")
        opened.append(state)
        return Pass(emulator, load_settings(), state, archive, spool)

    yield make
    for state in opened:
        state.close()


def refusing_day(session: requests.Session, emulator: Emulator, day_start: datetime) -> RefusingTransport:
    """Every call-log request for the day starting at `day_start` is refused (the other days are
    served): mounted on the URL prefix the client builds for that day, dateFrom first."""
    refusing = RefusingTransport()
    query = urlencode([("dateFrom", format_time(day_start))])
    session.mount(f"{emulator.url}{CALL_LOG_PATH}?{query}", refusing)
    return refusing


DAYS = DataOptions(seed=23, calls=24, days=3, bytes_per_second=10, **ONE_RECORDING_EACH)  # type: ignore[arg-type]


def test_run_pass_an_unreadable_call_log_day_is_incomplete_named_and_keeps_the_watermark(
    make_pass: Callable[..., Pass],
) -> None:
    world = make_pass(DAYS)
    now = datetime.now(UTC)
    window = (now - timedelta(days=4), now)
    slices = day_slices(*window, world.settings.tz)
    every = world.recordings_between(*window)
    # The day with the most calls is the one RingCentral cannot serve.
    day = max(slices, key=lambda s: len(world.recordings_between(*s)))
    hidden = world.recordings_between(*day)
    assert hidden and every - hidden, "the data must have calls on the day and outside it"

    with make_session(4) as session:
        refusing = refusing_day(session, world.emulator, day[0])
        summary, logs, _ = world.run(window, session, "run-1")

    day_name = day[0].astimezone(world.settings.tz).date().isoformat()
    assert refusing.sent >= 1  # retried, and failed every time
    assert (summary.days_unreadable, summary.unreadable_days) == (1, [day_name])
    assert (summary.outcome, summary.exit_code, summary.complete) == ("incomplete", 1, False)
    assert summary.as_dict()["unreadable_days"] == [day_name]  # what run_summary logs
    assert summary.error == ""  # one day is not an outage: the breaker did not trip
    (failed,) = [e for e in logs if e["event"] == "scan_failed"]
    assert failed["window_start"] == format_time(day[0])
    # Everything the other days hold is archived; the unread day's recordings were never seen.
    assert world.archived() == every - hidden
    assert summary.archived == len(every - hidden)
    # The watermark does not pass a day that was not read, and the day is not marked done.
    assert world.state.watermark() is None
    assert not world.state.window_done(*day)

    # The next run (RingCentral serves the day again) reads it, archives the rest, and completes.
    with make_session(4) as session:
        again, _, _ = world.run(window, session, "run-2")
    assert (again.outcome, again.exit_code, again.days_unreadable, again.unreadable_days) == ("ok", 0, 0, [])
    assert again.archived == len(hidden)
    assert world.archived() == every
    watermark = world.state.watermark()
    assert watermark is not None and format_time(watermark) == format_time(window[1])  # ms, as stored


def test_run_pass_rate_wait_is_wall_time_never_more_than_the_run(make_pass: Callable[..., Pass]) -> None:
    """Four download workers held by one budget at once: the pacers' summed waits exceed the run's
    duration; the reported wait is the wall time the work was held, within it."""
    data = DataOptions(seed=29, calls=30, days=1, bytes_per_second=10, **ONE_RECORDING_EACH)  # type: ignore[arg-type]
    world = make_pass(data, GroupLimit(8, 1.0, 1.0), RC_ARCHIVER_DOWNLOAD_CONCURRENCY="4")
    now = datetime.now(UTC)
    window = (now - timedelta(days=2), now)
    with make_session(8) as session:
        summary, _, ctx = world.run(window, session, "run-1")
    assert summary.outcome == "ok" and summary.archived == len(world.recordings_between(*window)) > 20
    summed = sum(p.waited for p in ctx.client.pacers.values())
    assert summed > summary.seconds, "the budget must hold several workers at once for this test to tell"
    assert 0 < summary.rate_wait_seconds <= summary.seconds


def test_run_pass_deletes_nothing_where_the_destination_cannot_keep_the_lock_the_settings_ask(
    make_pass: Callable[..., Pass],
) -> None:
    """Object Lock settings with a folder destination: the pass asks the backend's capability
    (proves_retention), not the settings, and says once that nothing is deleted instead of failing
    each recording's proof."""
    data = DataOptions(seed=31, calls=6, days=1, bytes_per_second=10, **ONE_RECORDING_EACH)  # type: ignore[arg-type]
    world = make_pass(
        data,
        RC_ARCHIVER_DELETE_FROM_SOURCE="true",
        RC_ARCHIVER_DELETE_AFTER="0s",
        RC_ARCHIVER_S3_LEGAL_HOLD="true",
    )
    now = datetime.now(UTC)
    window = (now - timedelta(days=2), now)
    with make_session(4) as session:
        summary, logs, _ = world.run(window, session, "run-1")
    assert summary.archived == len(world.recordings_between(*window)) > 0
    assert summary.deleted == 0 and world.emulator.stats.snapshot()["deleted"] == {}
    (refused,) = [e for e in logs if e["event"] == "deletion_refused"]
    assert "file://" in refused["error"] and "RC_ARCHIVER_S3_LEGAL_HOLD" in refused["error"]
    assert not [e for e in logs if e["event"] == "deletion_skipped"]  # said once, not per recording
