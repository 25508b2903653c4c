"""Heartbeat pings and Prometheus metrics, with a real ping receiver and real processes."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from archiver.emulator import Emulator
from tests.conftest import archiver_env, free_port, run_subprocess
from tests.test_pipeline import SINCE


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
    dest = tmp_path / "archive"
    dest.mkdir()
    env = archiver_env(emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_PING_URL=receiver.url)
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


def test_daemon_serves_metrics_and_health(emulator: Emulator, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess

    from tests.conftest import BIN

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
