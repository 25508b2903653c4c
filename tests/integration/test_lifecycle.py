"""lifecycle.py: a run from start to end, whatever happens: exactly one run_summary with its outcome and
exit code, on every path. In-process against the emulator over HTTP, a folder and a real SQLite file."""

from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from archiver.emulator import DataOptions, Emulator
from archiver.errors import SettingsError
from archiver.lifecycle import RunRequest, execute_run
from archiver.models import RunSummary
from archiver.settings import Settings, load_settings
from archiver.state import StateStore, lock_for
from tests.helpers import archiver_env, audio_by_recording, folder_files

NOW = datetime(2026, 12, 2, 1, 0, tzinfo=UTC)
DATA = DataOptions(seed=13, calls=10, days=1, bytes_per_second=10)


@pytest.mark.parametrize(
    ("since", "until", "names"),
    [
        (NOW + timedelta(seconds=1), None, "in the future"),
        (NOW, None, "in the future"),
        (NOW - timedelta(days=2), NOW - timedelta(days=2), "is not before --until"),
        (NOW - timedelta(days=1), NOW - timedelta(days=2), "is not before --until"),
    ],
    ids=["future", "now", "empty", "reversed"],
)
def test_lifecycle_run_request_check_refuses_window_errors(
    since: datetime, until: datetime | None, names: str
) -> None:
    with pytest.raises(SettingsError, match=names) as caught:
        RunRequest(since, until).check(NOW)
    assert "--since" in str(caught.value) and caught.value.hint


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, None),
        (NOW - timedelta(days=3), None),
        (None, NOW - timedelta(days=1)),
        (NOW - timedelta(days=3), NOW),
    ],
    ids=["default", "since", "until", "both"],
)
def test_lifecycle_run_request_check_accepts_a_window(since: datetime | None, until: datetime | None) -> None:
    RunRequest(since, until).check(NOW)


def settings_for(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **changes: str | None
) -> Settings:
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    env: dict[str, str | None] = {
        **archiver_env(emulator, tmp_path, archive.as_uri()),
        "RC_ARCHIVER_METRICS_FILE": str(tmp_path / "metrics" / "rc_archiver.prom"),
        **changes,
    }
    for name in list(os.environ):
        if name.startswith("RC_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    return load_settings()


def run(settings: Settings, request: RunRequest) -> tuple[RunSummary, list[dict[str, Any]]]:
    """execute_run with its logs captured; in a context of its own, so its bound run_id stays there."""

    def go() -> RunSummary:
        return execute_run(settings, request, threading.Event())

    with capture_logs() as logs:
        summary = contextvars.copy_context().run(go)
    return summary, [dict(entry) for entry in logs]


def the_summary(logs: list[dict[str, Any]]) -> dict[str, Any]:
    (summary,) = [e for e in logs if e["event"] == "run_summary"]
    return summary


def metrics_up(tmp_path: Path) -> str:
    text = (tmp_path / "metrics" / "rc_archiver.prom").read_text()
    return next(line for line in text.splitlines() if line.startswith("rc_archiver_up"))


def test_lifecycle_a_window_error_ends_before_the_lock_and_the_login_with_one_summary(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(data=DATA)
    settings = settings_for(emulator, tmp_path, monkeypatch)
    summary, logs = run(settings, RunRequest(since=datetime.now(UTC) + timedelta(days=1)))
    assert (summary.outcome, summary.exit_code) == ("settings", 2)
    event = the_summary(logs)
    assert (event["outcome"], event["exit_code"], event["log_level"]) == ("settings", 2, "warning")
    (error,) = [e for e in logs if e["log_level"] == "error"]
    assert error["event"] == "settings_error" and "--since" in error["error"] and error["fix"]
    assert not (tmp_path / "state").exists()  # no lock, no state
    assert emulator.stats.snapshot()["logins"] == 0  # no login
    assert metrics_up(tmp_path) == "rc_archiver_up 0.0"


def test_lifecycle_a_missing_setting_ends_the_run_with_one_summary(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(data=DATA)
    settings = settings_for(emulator, tmp_path, monkeypatch, RC_ARCHIVER_DESTINATION=None)
    summary, logs = run(settings, RunRequest())
    assert (the_summary(logs)["outcome"], summary.exit_code) == ("settings", 2)
    assert "RC_ARCHIVER_DESTINATION" in summary.error
    assert emulator.stats.snapshot()["logins"] == 0


def test_lifecycle_a_held_lock_ends_the_run_with_one_summary_and_touches_nothing(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(data=DATA)
    settings = settings_for(emulator, tmp_path, monkeypatch)
    lock = lock_for(Path(settings.state_path))
    lock.acquire()  # another run
    try:
        summary, logs = run(settings, RunRequest(wait_lock=0.0))
    finally:
        lock.release()
    event = the_summary(logs)
    assert (event["outcome"], event["exit_code"], summary.exit_code) == ("lock", 5, 5)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["lock_held"]
    assert not Path(settings.state_path).exists()  # the other run's state is not opened
    assert emulator.stats.snapshot()["logins"] == 0
    assert metrics_up(tmp_path) == "rc_archiver_up 0.0"


def test_lifecycle_a_good_run_archives_everything_with_one_summary(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator = emulator_factory(data=DATA)
    settings = settings_for(emulator, tmp_path, monkeypatch)
    summary, logs = run(settings, RunRequest(since=datetime.now(UTC) - timedelta(days=3)))
    truth = {item["recordingId"] for item in emulator.ground_truth()}
    event = the_summary(logs)
    assert (event["outcome"], event["exit_code"], event["log_level"]) == ("ok", 0, "info")
    assert event["archived"] == len(truth) and event["run_id"] == summary.run_id
    assert set(audio_by_recording(folder_files(tmp_path / "archive"))) == truth
    assert [e for e in logs if e["log_level"] == "error"] == []
    state = StateStore(Path(settings.state_path), read_only=True)
    try:
        (last,) = state.last_runs()
        assert (last["run_id"], last["outcome"], last["exit_code"]) == (summary.run_id, "ok", 0)
    finally:
        state.close()
    assert metrics_up(tmp_path) == "rc_archiver_up 1.0"
    assert emulator.stats.snapshot()["revokes"] == 1  # the login was given back


def metric_values(tmp_path: Path) -> dict[str, float]:
    text = (tmp_path / "metrics" / "rc_archiver.prom").read_text()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_lifecycle_a_run_that_fails_before_its_pass_still_reports_the_state_gauges(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a good run, a run refused by the lock (exit 5) never opens the state for writing, yet its
    textfile carries the state's gauges, read read-only: last_success, the recordings by status."""
    emulator = emulator_factory(data=DATA)
    settings = settings_for(emulator, tmp_path, monkeypatch)
    good, _ = run(settings, RunRequest(since=datetime.now(UTC) - timedelta(days=3)))
    assert good.exit_code == 0 and good.archived > 0
    after_good = metric_values(tmp_path)
    lock = lock_for(Path(settings.state_path))
    lock.acquire()  # another run
    try:
        failed, _ = run(settings, RunRequest(wait_lock=0.0))
    finally:
        lock.release()
    assert failed.exit_code == 5
    values = metric_values(tmp_path)
    assert values["rc_archiver_last_run_exit_code"] == 5 and values["rc_archiver_up"] == 0
    assert values['rc_archiver_last_run_outcome{outcome="lock"}'] == 1
    assert values["rc_archiver_state_read"] == 1
    for kept in (
        "rc_archiver_last_success_timestamp_seconds",
        "rc_archiver_last_progress_timestamp_seconds",
        'rc_archiver_recordings{status="archived"}',
        "rc_archiver_recordings_at_risk",
        "rc_archiver_backlog_recordings",
    ):
        assert values[kept] == after_good[kept], kept
    assert values['rc_archiver_recordings{status="archived"}'] == good.archived


def test_lifecycle_a_run_stopped_with_work_left_is_stopped_exit_0_and_counts_as_progress(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A time limit stops a run as SIGTERM does (the cancel event): what it archived counts as
    progress for the alerts, what it did not reach stays due; nothing failed, so exit 0."""
    emulator = emulator_factory(data=DataOptions(seed=13, calls=30, days=1, bytes_per_second=10))
    settings = settings_for(emulator, tmp_path, monkeypatch, RC_ARCHIVER_DOWNLOAD_CONCURRENCY="1")
    cancel = threading.Event()
    archive = tmp_path / "archive"

    def stop_after_two() -> None:  # the time limit, once two recordings are in the archive
        if len(audio_by_recording(folder_files(archive))) >= 2:
            cancel.set()

    def go() -> RunSummary:
        since = datetime.now(UTC) - timedelta(days=3)
        return execute_run(settings, RunRequest(since=since), cancel, on_progress=stop_after_two)

    with capture_logs() as logs:
        summary = contextvars.copy_context().run(go)
    event = the_summary([dict(e) for e in logs])
    assert (event["outcome"], event["exit_code"], event["stopped"]) == ("stopped", 0, True)
    assert summary.archived >= 2 and summary.remaining > 0 and summary.failed == 0
    values = metric_values(tmp_path)
    assert values['rc_archiver_last_run_outcome{outcome="stopped"}'] == 1
    assert "rc_archiver_last_success_timestamp_seconds" not in values  # not a success...
    assert values["rc_archiver_last_progress_timestamp_seconds"] > 0  # ...but progress
    state = StateStore(Path(settings.state_path), read_only=True)
    try:
        assert state.last_runs(1)[0]["outcome"] == "stopped"
        assert state.watermark() is None  # the window was not finished
    finally:
        state.close()
