"""Heartbeat pings and Prometheus metrics, with a real ping receiver and real processes."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from archiver.emulator import DataOptions, Emulator, FaultOptions
from archiver.metrics import Metrics, StateFacts, last_progress
from archiver.models import RunSummary, format_time
from archiver.ringcentral.calllog import recordings_in
from archiver.settings import load_settings
from archiver.state import StateStore
from archiver.state.reports import _AT_RISK as AT_RISK
from archiver.status import render, state_facts, status_report
from tests.helpers import BIN, SINCE, archiver_env, folder_env, free_port, run_subprocess


class PingReceiver:
    def __init__(self) -> None:
        self.pings: list[tuple[str, dict[str, Any]]] = []
        pings = self.pings

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                pings.append((self.path, json.loads(body or b"{}")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/ping/abc"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[PingReceiver]:
    ping = PingReceiver()
    yield ping
    ping.close()


def test_pings_start_and_success_with_the_summary(
    emulator: Emulator, tmp_path: Path, receiver: PingReceiver
) -> None:
    env = folder_env(emulator, tmp_path, RC_ARCHIVER_PING_URL=receiver.url)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    assert [path for path, _ in receiver.pings] == ["/ping/abc/start", "/ping/abc"]
    assert receiver.pings[1][1]["archived"] == len(emulator.ground_truth())


def test_pings_fail_on_every_path_out(emulator: Emulator, tmp_path: Path, receiver: PingReceiver) -> None:
    env = archiver_env(emulator, tmp_path, (tmp_path / "missing").as_uri(), RC_ARCHIVER_PING_URL=receiver.url)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 4
    assert [path for path, _ in receiver.pings] == ["/ping/abc/start", "/ping/abc/fail"]
    assert "does not exist" in receiver.pings[1][1]["error"]


def test_a_ping_that_fails_never_fails_the_run(emulator: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "archive"
    dest.mkdir()
    env = archiver_env(
        emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_PING_URL=f"http://127.0.0.1:{free_port()}/x"
    )
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 0
    assert result.stdout.count('"ping_failed"') == 2


def test_one_shot_run_writes_a_textfile_with_a_freshness_signal(emulator: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "archive"
    dest.mkdir()
    prom = tmp_path / "textfile" / "rc-archiver.prom"
    env = archiver_env(emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_METRICS_FILE=str(prom))
    before = time.time()
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    values = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in prom.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert values["rc_archiver_recordings_archived_total"] == len(emulator.ground_truth())
    assert values['rc_archiver_recordings{status="archived"}'] == len(emulator.ground_truth())
    assert values["rc_archiver_last_success_timestamp_seconds"] >= before - 1
    assert values["rc_archiver_oldest_pending_age_seconds"] == 0
    assert (
        "rc_archiver_rate_limited_total" in values and "rc_archiver_rate_limit_wait_seconds_total" in values
    )


def test_an_unreadable_call_log_day_fails_the_ping_and_the_metrics_and_names_the_day(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, receiver: PingReceiver
) -> None:
    """Every call-log request refused after its retries (a day RingCentral cannot serve): the run
    exits 1 as incomplete, its summary names the day, the ping says fail, the textfile counts it."""
    emulator = emulator_factory(
        data=DataOptions(seed=5, calls=10, days=1, bytes_per_second=10),
        faults=FaultOptions(rates={"reset": 1.0}, routes=frozenset({"call-log"})),
    )
    dest = tmp_path / "archive"
    dest.mkdir()
    prom = tmp_path / "textfile" / "rc-archiver.prom"
    env = archiver_env(
        emulator,
        tmp_path,
        dest.as_uri(),
        RC_ARCHIVER_PING_URL=receiver.url,
        RC_ARCHIVER_METRICS_FILE=str(prom),
    )
    since = datetime.now(UTC) - timedelta(minutes=30)  # one or two day slices: fewer than trip the breaker
    result = run_subprocess(env, "run", "--since", format_time(since))
    assert result.returncode == 1, result.stdout[-3000:]
    (summary,) = [json.loads(line) for line in result.stdout.splitlines() if '"run_summary"' in line]
    days = sorted({since.date().isoformat(), datetime.now(UTC).date().isoformat()})
    assert (summary["outcome"], summary["exit_code"]) == ("incomplete", 1)
    assert summary["unreadable_days"] == days and summary["days_unreadable"] == len(days)
    assert [path for path, _ in receiver.pings] == ["/ping/abc/start", "/ping/abc/fail"]
    values = samples(prom.read_text())
    assert values["rc_archiver_last_run_exit_code"] == 1
    assert values["rc_archiver_last_run_scan_failures"] == len(days)
    assert "rc_archiver_last_success_timestamp_seconds" not in values


def test_daemon_serves_metrics_and_health(emulator: Emulator, tmp_path: Path) -> None:
    import signal

    dest = tmp_path / "archive"
    dest.mkdir()
    port = free_port()
    env = archiver_env(emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_METRICS_ADDR=f"127.0.0.1:{port}")
    proc = subprocess.Popen(
        [str(BIN / "rc-archiver"), "daemon", "--run-now"],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
                if "rc_archiver_last_success_timestamp_seconds 1" in text:  # set: a run has completed
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert "rc_archiver_last_success_timestamp_seconds 1" in text
        assert "rc_archiver_up 1.0" in text
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
        assert health.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_daemon_restarted_on_a_state_serves_its_gauges_before_any_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    """After a restart (an upgrade) the gauges come from the state file at once: no false 'stale'
    alert, and 'at risk' can fire before the next scheduled run."""
    import signal

    dest = tmp_path / "archive"
    dest.mkdir()
    port = free_port()
    env = archiver_env(emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_METRICS_ADDR=f"127.0.0.1:{port}")
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    archived = len(emulator.ground_truth())
    requests_before = emulator.stats.snapshot()["requests"]
    proc = subprocess.Popen(  # no --run-now: the next run is the schedule's, hours away
        [str(BIN / "rc-archiver"), "daemon"],
        env={"PATH": os.environ["PATH"], **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline, text = time.monotonic() + 30, ""
        while time.monotonic() < deadline and "rc_archiver_recordings{" not in text:
            try:
                text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
        values = samples(text)
        assert values['rc_archiver_recordings{status="archived"}'] == archived
        assert values["rc_archiver_last_success_timestamp_seconds"] > time.time() - 600
        assert values["rc_archiver_last_run_exit_code"] == 0
        assert values['rc_archiver_last_run_outcome{outcome="ok"}'] == 1
        assert values["rc_archiver_backlog_recordings"] == 0
        assert emulator.stats.snapshot()["requests"] == requests_before  # served from the state alone
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


# -- Metrics from hand-built state facts (the caller reads them from the state) ----------------------
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def facts(**changes: Any) -> StateFacts:
    base = StateFacts(
        counts={"pending": 2, "archived": 40, "failed": 1, "exhausted": 1},
        last_success=NOW - timedelta(hours=3),
        last_run_end=NOW - timedelta(hours=1),
        last_run_outcome="incomplete",
        last_run_exit_code=1,
        oldest_pending=NOW - timedelta(days=2),
        at_risk=1,
        backlog=4,
        projected_loss=0,
        seconds_to_clear=120.0,
        source_recordings_seen=44,
    )
    return replace(base, **changes)


def samples(text: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }


def test_metrics_refresh_sets_every_gauge_from_the_state_facts() -> None:
    metrics = Metrics(version="9.9.9")
    metrics.refresh(facts(), NOW)
    values = samples(metrics.exposition().decode())
    assert values['rc_archiver_recordings{status="archived"}'] == 40
    assert values['rc_archiver_recordings{status="exhausted"}'] == 1
    assert values['rc_archiver_recordings{status="lost"}'] == 0  # every status has a series
    assert values["rc_archiver_last_success_timestamp_seconds"] == (NOW - timedelta(hours=3)).timestamp()
    assert values["rc_archiver_last_run_timestamp_seconds"] == (NOW - timedelta(hours=1)).timestamp()
    assert values["rc_archiver_last_run_exit_code"] == 1
    assert values['rc_archiver_last_run_outcome{outcome="incomplete"}'] == 1
    assert values['rc_archiver_last_run_outcome{outcome="ok"}'] == 0
    assert values["rc_archiver_oldest_pending_age_seconds"] == 2 * 86400
    assert values["rc_archiver_recordings_at_risk"] == 1
    assert values["rc_archiver_backlog_recordings"] == 4
    assert values["rc_archiver_projected_loss_recordings"] == 0
    assert values["rc_archiver_backlog_clear_seconds"] == 120
    assert values["rc_archiver_source_recordings_seen"] == 44
    assert values['rc_archiver_build_info{version="9.9.9"}'] == 1
    assert values["rc_archiver_up"] == 1


def test_metrics_leave_out_what_the_state_does_not_know_so_absent_can_alert() -> None:
    metrics = Metrics()
    metrics.refresh(
        facts(last_success=None, last_run_end=None, last_run_outcome=None, last_run_exit_code=None), NOW
    )
    names = {key.split("{")[0] for key in samples(metrics.exposition().decode())}
    assert "rc_archiver_last_success_timestamp_seconds" not in names
    assert "rc_archiver_last_run_outcome" not in names and "rc_archiver_last_run_exit_code" not in names
    assert "rc_archiver_recordings" in names


def test_metrics_record_run_adds_the_run_summary_to_the_counters() -> None:
    metrics = Metrics()
    counts = {"archived": 3, "failed": 1, "lost": 2, "deleted": 4, "bytes": 1000}
    metrics.record_run(RunSummary("run-1", **counts, rate_limited=2, rate_wait_seconds=1.5, seconds=9.0))
    metrics.record_run(RunSummary("run-2", archived=1, seconds=4.0, outcome="ok", exit_code=0))
    values = samples(metrics.exposition().decode())
    assert values["rc_archiver_recordings_archived_total"] == 4
    assert values["rc_archiver_recordings_failed_total"] == 1
    assert values["rc_archiver_recordings_lost_total"] == 2
    assert values["rc_archiver_recordings_deleted_total"] == 4
    assert values["rc_archiver_bytes_archived_total"] == 1000
    assert values["rc_archiver_rate_limited_total"] == 2
    assert values["rc_archiver_rate_limit_wait_seconds_total"] == 1.5
    assert values["rc_archiver_last_run_rate_limited"] == 0  # the last run had none
    assert values["rc_archiver_run_duration_seconds"] == 4


def test_metrics_last_run_gauges_hold_the_last_run_alone() -> None:
    """What the dashboard's per-run panels plot: the same meaning in a daemon (whose counters add up
    its runs) and in a one-shot textfile or push (whose counters hold one run)."""
    metrics = Metrics()
    metrics.record_run(
        RunSummary("run-1", archived=3, failed=1, bytes=1000, rate_wait_seconds=1.5, seconds=9.0)
    )
    metrics.record_run(RunSummary("run-2", archived=2, bytes=500, rate_wait_seconds=0.5, seconds=4.0))
    values = samples(metrics.exposition().decode())
    assert values["rc_archiver_recordings_archived_total"] == 5  # the counter adds up both runs
    assert values["rc_archiver_last_run_archived"] == 2
    assert values["rc_archiver_last_run_failed"] == 0
    assert values["rc_archiver_last_run_bytes"] == 500
    assert values["rc_archiver_last_run_rate_limit_wait_seconds"] == 0.5


def test_metrics_mark_failed_says_up_0() -> None:
    metrics = Metrics()
    metrics.mark_failed()
    assert samples(metrics.exposition().decode())["rc_archiver_up"] == 0


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian: prometheus) not installed")
def test_metrics_pass_promtool_check_metrics() -> None:
    metrics = Metrics()
    metrics.refresh(facts(), NOW)
    metrics.record_run(RunSummary("run-1", archived=1, bytes=5, seconds=1.0))
    result = subprocess.run(
        ["promtool", "check", "metrics"], input=metrics.exposition(), capture_output=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert not result.stdout.strip() and not result.stderr.strip()  # lint problems print, even at exit 0


def test_metrics_textfile_is_0644_whatever_the_umask_and_leaves_no_temporary(tmp_path: Path) -> None:
    metrics = Metrics()
    metrics.refresh(facts(), NOW)
    target = tmp_path / "textfile" / "rc-archiver.prom"
    old = os.umask(0o077)  # the shipped units' UMask=
    try:
        assert metrics.write_textfile(target) is True
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o755
    assert os.listdir(target.parent) == ["rc-archiver.prom"]
    assert samples(target.read_text())['rc_archiver_recordings{status="archived"}'] == 40


def test_metrics_textfile_that_cannot_be_written_is_a_warning_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with capture_logs() as logs:
        assert Metrics().write_textfile(blocker / "rc-archiver.prom") is False
    (warning,) = [e for e in logs if e["event"] == "metrics_file_not_written"]
    assert warning["log_level"] == "warning" and "ReadWritePaths" in warning["fix"]


def test_metrics_healthz_answers_503_with_the_reason() -> None:
    reason: list[str | None] = [None]
    server = Metrics().serve(f"127.0.0.1:{free_port()}", lambda: reason[0])
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        assert urllib.request.urlopen(url, timeout=5).read() == b"ok\n"
        reason[0] = "the run made no progress for 700 s (limit 600 s)"
        with pytest.raises(urllib.error.HTTPError) as answer:
            urllib.request.urlopen(url, timeout=5)
        assert answer.value.code == 503
        assert b"no progress for 700 s" in answer.value.read()
    finally:
        server.shutdown()
        server.server_close()


def test_metrics_a_run_without_state_facts_still_reports_how_it_ended() -> None:
    """The state could not be read (exit 4): the textfile still says so."""
    metrics = Metrics()
    metrics.record_run(RunSummary("run-1", outcome="destination", exit_code=4, seconds=0.2))
    metrics.mark_failed()
    values = samples(metrics.exposition().decode())
    assert values["rc_archiver_last_run_exit_code"] == 4
    assert values['rc_archiver_last_run_outcome{outcome="destination"}'] == 1
    assert values["rc_archiver_up"] == 0
    assert not any(key.startswith("rc_archiver_recordings{") for key in values)  # nothing invented


def test_metrics_the_newer_of_facts_and_run_summary_wins() -> None:
    metrics = Metrics()
    metrics.refresh(facts(), NOW)  # the state at daemon start: the last run was incomplete (exit 1)
    metrics.record_run(
        RunSummary("run-1", outcome="auth", exit_code=3)
    )  # then a run failed before reading it
    values = samples(metrics.exposition().decode())
    assert values["rc_archiver_last_run_exit_code"] == 3
    assert values['rc_archiver_last_run_outcome{outcome="auth"}'] == 1
    assert values['rc_archiver_last_run_outcome{outcome="incomplete"}'] == 0


# -- at risk: measured against each recording's deadline (issue 18 item 2) ------------------------------
def _call(recording_id: str, start: datetime) -> dict[str, Any]:
    rec = {"id": recording_id, "contentUri": f"http://media/{recording_id}/content", "type": "Automatic"}
    return {
        "id": f"call-{recording_id}",
        "sessionId": f"s-{recording_id}",
        "startTime": format_time(start),
        "duration": 60,
        "direction": "Inbound",
        "from": {"phoneNumber": "+1"},
        "to": {"phoneNumber": "+2"},
        "recording": rec,
    }


def test_at_risk_counts_unarchived_recordings_by_their_deadline_using_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    retention = timedelta(days=30)  # a HIPAA account: RC_ARCHIVER_SOURCE_RETENTION=30d alone
    days_ago = {"r-1d-left": 29, "r-14d-left": 16, "r-20d-left": 10, "r-passed": 31, "r-lost": 29.5}
    store = StateStore(tmp_path / "state.db")
    found = [recordings_in(_call(rid, now - timedelta(days=ago)))[0] for rid, ago in days_ago.items()]
    store.note_found(found, "run-1", retention)
    store.mark_lost("r-lost", "deleted by RingCentral")  # lost is its own status, never "at risk"

    window = now + timedelta(days=15)
    assert store.count_at_risk(window) == 3
    assert [row.recording_id for row in store.at_risk(window)] == ["r-passed", "r-1d-left", "r-14d-left"]
    assert store.count_at_risk(now) == 1  # a 0s window: only those past their deadline
    assert store.count_at_risk(now + timedelta(days=3650)) == 4  # a window past the retention: every one

    # The gauge and `status` read the same, with the window from the settings.
    for name in [n for n in os.environ if n.startswith("RC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", "30d")
    settings = load_settings()
    assert settings.risk_window == timedelta(days=15)
    assert state_facts(store, settings, now).at_risk == 3
    report = status_report(store, settings, now)
    assert report["risk_window"] == "15d" and report["risk_window_seconds"] == 15 * 86400
    assert [item["recording_id"] for item in report["at_risk"]] == ["r-passed", "r-1d-left", "r-14d-left"]
    assert [round(item["days_left"]) for item in report["at_risk"]] == [-1, 1, 14]
    assert "RingCentral deletes them within 15d" in render(report, as_json=False)
    monkeypatch.setenv("RC_ARCHIVER_RISK_WINDOW", "25d")
    assert state_facts(store, load_settings(), now).at_risk == 4
    store.close()

    # The condition is answered from the index on (status, deadline), never by scanning every recording.
    with sqlite3.connect(tmp_path / "state.db") as db:
        for query in (
            f"SELECT COUNT(*) FROM recordings WHERE {AT_RISK}",  # noqa: S608 - fixed text
            f"SELECT * FROM recordings WHERE {AT_RISK} ORDER BY deadline, recording_id",  # noqa: S608
        ):
            plan = [row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}", (format_time(window),))]
            assert any("INDEX recordings_due (status=? AND deadline<?)" in step for step in plan), plan
            assert not any(step.startswith("SCAN recordings") for step in plan), plan


def run_row(outcome: str, ended: datetime, archived: int = 0) -> dict[str, Any]:
    return {"outcome": outcome, "ended_at": format_time(ended), "summary": {"archived": archived}}


def test_metrics_last_progress_is_the_last_success_or_stopped_run_that_archived_some() -> None:
    success = NOW - timedelta(days=5)
    base = facts(last_success=success)
    stopped_with_work = run_row("stopped", NOW - timedelta(days=2), archived=40)
    newest_first = [
        run_row("stopped", NOW - timedelta(hours=1), archived=0),  # stuck: not progress
        run_row("incomplete", NOW - timedelta(days=1), archived=9),  # something failed: not progress
        stopped_with_work,
        run_row("ok", NOW - timedelta(days=3)),
    ]
    assert last_progress(base, newest_first).last_progress == NOW - timedelta(days=2)
    assert last_progress(base, newest_first[:2]).last_progress == success  # older runs: last_success
    assert last_progress(facts(last_success=None), newest_first[:2]).last_progress is None
    metrics = Metrics()
    metrics.refresh(last_progress(base, newest_first), NOW)
    values = samples(metrics.exposition().decode())
    assert values["rc_archiver_last_progress_timestamp_seconds"] == (NOW - timedelta(days=2)).timestamp()
    assert values["rc_archiver_state_read"] == 1
    metrics.state_unread()
    assert samples(metrics.exposition().decode())["rc_archiver_state_read"] == 0
