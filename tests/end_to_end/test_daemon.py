"""The daemon as a real process: scheduling, --run-now, SIGUSR1 (run now), sd_notify, SIGTERM, the
state gauges refreshed during a run, and the run_id on its events."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.emulator import DataOptions, Emulator, FaultOptions
from archiver.liveness import Liveness
from archiver.metrics import StateFacts
from archiver.models import parse_time
from archiver.schedule import JOB_ID, build_scheduler, health, run_daemon
from archiver.settings import load_settings
from tests.helpers import (
    BIN,
    archiver_env,
    audio_by_recording,
    folder_env,
    free_port,
    read_lines,
    run_subprocess,
    scrape,
    slow_emulator,
    start_daemon,
    stop_daemon,
    wait_for_event,
    wait_for_port,
)


def test_daemon_runs_now_speaks_sd_notify_and_stops_on_sigterm(emulator: Emulator, tmp_path: Path) -> None:
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(0.2)
    dest = tmp_path / "archive"
    env = folder_env(
        emulator,
        tmp_path,
        NOTIFY_SOCKET=str(notify_path),
        WATCHDOG_USEC="300000",
        RC_ARCHIVER_SCHEDULE="0 2 * * *",
    )
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", **env}
    proc = subprocess.Popen(
        [str(BIN / "rc-archiver"), "daemon", "--run-now"],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc, lines), daemon=True).start()
    seen: list[dict[str, Any]] = []
    messages: list[str] = []
    try:
        wait_for_event(lines, seen, "run_summary")
        wait_for_event(lines, seen, "next_run")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                messages.append(listener.recv(4096).decode())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        while True:
            try:
                messages.append(listener.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    started = next(e for e in seen if e["event"] == "daemon_started")
    assert started["schedule"] == "0 2 * * *" and "02:00:00" in started["next_run"]
    next_run = next(e for e in seen if e["event"] == "next_run")
    assert "02:00:00" in next_run["at"]
    assert "run_id" not in next_run  # the run is over: its id is not carried onto the daemon's events
    assert "READY=1" in messages and "STOPPING=1" in messages and "WATCHDOG=1" in messages
    assert any(m.startswith("STATUS=last run archived") for m in messages)
    files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    window = next(e for e in seen if e["event"] == "run_started")  # the first run: the last 24 hours
    truth = emulator.ground_truth(
        parse_time(window["window_start"]).timestamp(), parse_time(window["window_end"]).timestamp()
    )
    assert truth and set(audio_by_recording(files)) == {item["recordingId"] for item in truth}


def test_daemon_scheduler_never_doubles_a_run_and_coalesces_missed_fires(monkeypatch: Any) -> None:
    monkeypatch.setenv("RC_ARCHIVER_SCHEDULE", "*/5 * * * *")
    monkeypatch.setenv("RC_ARCHIVER_JITTER", "90s")
    monkeypatch.setenv("RC_ARCHIVER_TIMEZONE", "Europe/Berlin")
    scheduler = build_scheduler(load_settings(), lambda: None)
    job = scheduler.get_job(JOB_ID)
    assert job.max_instances == 1 and job.coalesce is True
    assert job.trigger.jitter == 90
    assert str(job.trigger.timezone) == "Europe/Berlin"
    assert [str(f) for f in job.trigger.fields if f.name == "minute"] == ["*/5"]


def test_daemon_with_an_invalid_schedule_exits_2_naming_it(emulator: Emulator, tmp_path: Path) -> None:
    env = archiver_env(emulator, tmp_path, tmp_path.as_uri(), RC_ARCHIVER_SCHEDULE="every night")
    result = run_subprocess(env, "daemon")
    assert result.returncode == 2 and "RC_ARCHIVER_SCHEDULE" in result.stdout


def test_daemon_serves_the_state_gauges_before_any_run(monkeypatch: Any) -> None:
    """A restart on a state with a completed run: the first scrape already says when it succeeded."""
    port = free_port()
    monkeypatch.setenv("RC_ARCHIVER_SCHEDULE", "0 2 * * *")
    monkeypatch.setenv("RC_ARCHIVER_METRICS_ADDR", f"127.0.0.1:{port}")
    ended = datetime(2026, 11, 30, 2, 14, tzinfo=UTC)
    facts = StateFacts(
        counts={"archived": 120, "pending": 3},
        last_success=ended,
        last_run_end=ended,
        last_run_outcome="ok",
        last_run_exit_code=0,
        oldest_pending=ended - timedelta(hours=5),
        at_risk=0,
        backlog=3,
        projected_loss=0,
        seconds_to_clear=18.0,
        source_recordings_seen=123,
    )
    cancel = threading.Event()
    codes: list[int] = []
    daemon = threading.Thread(
        target=lambda: codes.append(run_daemon(load_settings(), cancel, False, lambda: facts)), daemon=True
    )
    daemon.start()
    try:
        wait_for_port(port)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:
            healthy = reply.status == 200 and reply.read() == b"ok\n"
    finally:
        cancel.set()
        daemon.join(timeout=30)
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["rc_archiver_last_success_timestamp_seconds"] == ended.timestamp()
    assert values['rc_archiver_recordings{status="archived"}'] == 120
    assert values['rc_archiver_last_run_outcome{outcome="ok"}'] == 1
    assert values["rc_archiver_last_run_exit_code"] == 0
    assert values["rc_archiver_oldest_pending_age_seconds"] > 5 * 3600
    assert healthy and codes == [0]


def test_daemon_health_says_why_it_is_unhealthy() -> None:
    cancel = threading.Event()
    clock = [0.0]
    liveness = Liveness(60, lambda: clock[0])
    assert health(cancel, liveness) is None
    liveness.run_started()
    clock[0] = 100
    assert health(cancel, liveness) == "the run made no progress for 100 s (limit 60 s)"
    cancel.set()
    assert health(cancel, liveness) == "stopping"


@pytest.mark.alone  # timing: a busy neighbour on 2 cores made it fail
def test_daemon_withholds_the_watchdog_while_a_request_stalls(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """Every recording download hangs 4 s before its first byte, past a 1 s watchdog interval: the
    pings stop during the stall (systemd would restart the daemon) and resume once idle."""
    emulator = emulator_factory(
        data=DataOptions(seed=3, calls=6, days=0.5, bytes_per_second=40),
        faults=FaultOptions(rates={"slow": 1.0}, slow_seconds=4.0, routes=frozenset({"content"})),
    )
    notify_path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(notify_path))
    listener.settimeout(0.2)
    env = folder_env(
        emulator,
        tmp_path,
        NOTIFY_SOCKET=str(notify_path),
        WATCHDOG_USEC="1000000",
        RC_ARCHIVER_SCHEDULE="0 2 * * *",
    )
    proc = subprocess.Popen(
        [str(BIN / "rc-archiver"), "daemon", "--run-now"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc, lines), daemon=True).start()
    seen: list[dict[str, Any]] = []
    messages: list[str] = []
    stop_reading = threading.Event()

    def read_notifications() -> None:  # as systemd does: the socket is drained as messages come
        while not stop_reading.is_set():
            try:
                messages.append(listener.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:  # the socket was closed: the test is over
                return

    reader = threading.Thread(target=read_notifications, daemon=True)
    reader.start()
    try:
        wait_for_event(lines, seen, "run_summary", timeout=120)
        watchdog = [e["event"] for e in seen if e["event"].startswith("watchdog_")]
        if watchdog[-1] == "watchdog_withheld":  # the pings come back once the daemon is idle
            wait_for_event(lines, seen, "watchdog_resumed", timeout=30)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        stop_reading.set()
        reader.join(timeout=5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        stop_reading.set()
        reader.join(timeout=5)
        listener.close()
        if proc.stdout is not None:
            proc.stdout.close()
    summary = next(e for e in seen if e["event"] == "run_summary")
    assert summary["archived"] > 0  # downloads did happen, each after its stall
    withheld = [e for e in seen if e["event"] == "watchdog_withheld"]
    assert withheld and "made no progress" in withheld[0]["reason"]
    assert withheld[0]["run_id"] == summary["run_id"]  # the watchdog names the run that stalled
    stalled = next(i for i, m in enumerate(messages) if m.startswith("STATUS=stalled: "))
    ended = next(i for i, m in enumerate(messages) if m.startswith("STATUS=last run"))
    assert "WATCHDOG=1" in messages[ended:]  # idle again: the pings are back
    assert stalled < ended


def test_daemon_runs_now_on_sigusr1_once_at_a_time_naming_who_asked(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """The schedule is a year away: SIGUSR1 starts a run at once; a second one during the run is
    logged and ignored, never a second run; the next scheduled run stays where it was."""
    emulator = slow_emulator(emulator_factory, calls=150, days=0.8)
    env = folder_env(emulator, tmp_path, RC_ARCHIVER_SCHEDULE="0 2 1 1 *")
    proc, lines = start_daemon(env)
    seen: list[dict[str, Any]] = []
    try:
        wait_for_event(lines, seen, "daemon_started")
        os.kill(proc.pid, signal.SIGUSR1)
        wait_for_event(lines, seen, "run_started")
        os.kill(proc.pid, signal.SIGUSR1)  # while the run goes on
        wait_for_event(lines, seen, "run_now_ignored")
        wait_for_event(lines, seen, "run_summary", timeout=120)
        wait_for_event(lines, seen, "next_run")
        time.sleep(1)  # room for a wrongly doubled run to start
        code = stop_daemon(proc)
        wait_for_event(lines, seen, "daemon_stopped")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0
    (requested,) = [e for e in seen if e["event"] == "run_now_requested"]
    assert requested["signal"] == "SIGUSR1" and requested["sender_pid"] == os.getpid()
    assert requested["sender_uid"] == os.getuid() and requested["sender"] not in ("", "?", "unknown")
    ignored = next(e for e in seen if e["event"] == "run_now_ignored")
    assert ignored["sender_pid"] == os.getpid() and "run is going on" in ignored["reason"]
    assert [e["event"] for e in seen].count("run_started") == 1
    summary = next(e for e in seen if e["event"] == "run_summary")
    assert summary["outcome"] == "ok" and summary["archived"] > 0
    next_run = next(e for e in seen if e["event"] == "next_run")
    assert next_run["at"].startswith(f"{datetime.now().year + 1}-01-01 02:00:00")
    assert "run_id" not in next_run


def test_daemon_refreshes_the_state_gauges_during_a_run(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """A first backfill against a slow RingCentral: before the run ends, /metrics already shows the
    pending recordings, and then fewer of them, refreshed every RC_ARCHIVER_PROGRESS_INTERVAL."""
    emulator = slow_emulator(emulator_factory, calls=200, days=0.8)
    port = free_port()
    env = folder_env(
        emulator,
        tmp_path,
        RC_ARCHIVER_SCHEDULE="0 2 1 1 *",
        RC_ARCHIVER_METRICS_ADDR=f"127.0.0.1:{port}",
        RC_ARCHIVER_PROGRESS_INTERVAL="200ms",
    )
    proc, lines = start_daemon(env, "--run-now")
    seen: list[dict[str, Any]] = []
    pending: list[float] = []
    run_over = threading.Event()

    def watch() -> None:  # scrapes as Prometheus would, only while the run has not ended
        wait_for_port(port)
        while not run_over.is_set():
            value = scrape(port).get('rc_archiver_recordings{status="pending"}')
            if value is not None and not run_over.is_set():
                pending.append(value)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        wait_for_event(lines, seen, "run_summary", timeout=120)
        run_over.set()
        watcher.join(timeout=10)
        assert stop_daemon(proc) == 0
    finally:
        run_over.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    summary = next(e for e in seen if e["event"] == "run_summary")
    assert summary["archived"] >= 100
    during = [v for v in pending if v > 0]
    assert during, f"no pending recordings seen during the run: {pending}"
    peak = during.index(max(during))
    assert any(v < max(during) for v in during[peak:]), f"pending never went down mid-run: {pending}"
