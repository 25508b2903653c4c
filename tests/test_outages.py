"""A failing world never costs a recording (issue 11), proven with real processes: `rc-archiver run`
as a subprocess, a TCP proxy cut mid-run in front of the moto server or the emulator, a spool on a
tiny tmpfs, a SIGKILL during a multipart upload. Each outage stops the run with its exit code and one
error line, charges no attempt; then a healthy run allowed no failure at all archives everything."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.models import format_time
from tests.conftest import AWS_ENV, BIN, archiver_env, run_subprocess, s3_objects
from tests.proxy import TcpProxy

MB = 1024 * 1024
SINCE = format_time(datetime.now(UTC) - timedelta(days=6))  # the emulator's calls lie within 4 days
WAIT = 90.0  # bound on every wait for a run to get somewhere or to end


def start_run(env: dict[str, str]) -> subprocess.Popen[str]:
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    for name in ("AWS_ENDPOINT_URL", *AWS_ENV):
        if name in os.environ and name not in full_env:
            full_env[name] = os.environ[name]
    return subprocess.Popen(
        [str(BIN / "rc-archiver"), "run", "--since", SINCE],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stored_files(bucket: str, prefix: str = "rec/") -> dict[str, bytes]:
    """The bucket's objects under PREFIX, keyed as the sidecars name them (relative to it)."""
    return {key.removeprefix(prefix): data for key, data in s3_objects(bucket, prefix).items()}


def audio_of(files: dict[str, bytes]) -> dict[str, bytes]:
    """recording id -> audio bytes, read through the sidecars (which name the audio's key)."""
    out = {}
    for key, data in files.items():
        if key.endswith(".json") and "_manifests/" not in key:
            sidecar = json.loads(data)
            out[sidecar["recording_id"]] = files[sidecar["key"]]
    return out


def assert_everything_archived(emulator: Emulator, files: dict[str, bytes]) -> None:
    truth = {item["recordingId"]: item for item in emulator.ground_truth()}
    audio = audio_of(files)
    assert set(audio) == set(truth)
    for recording_id, data in audio.items():
        assert hashlib.sha256(data).hexdigest() == truth[recording_id]["sha256"]


def attempts_charged(state: Path) -> int:
    with sqlite3.connect(state) as db:
        row = db.execute("SELECT COALESCE(MAX(attempts), 0), COUNT(*) FROM recordings").fetchone()
    assert row[1] > 0  # the scan did record the recordings
    return int(row[0])


def assert_one_clean_error(out: str, err: str, event: str, outcome: str, code: int) -> dict[str, Any]:
    assert "Traceback" not in out + err
    events = events_of(out)
    errors = [e for e in events if e["level"] == "error"]
    assert [e["event"] for e in errors] == [event], errors
    assert errors[0]["fix"] and errors[0]["exit_code"] == code
    summaries = [e for e in events if e["event"] == "run_summary"]
    assert len(summaries) == 1 and summaries[0]["outcome"] == outcome
    assert summaries[0]["exit_code"] == code and summaries[0]["failed"] == 0
    return errors[0]


def healthy_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A run that may not fail a single recording: it must archive everything the outage left."""
    result = run_subprocess({**env, "RC_ARCHIVER_MAX_ATTEMPTS": "1"}, "run", "--since", SINCE, timeout=WAIT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture
def paced_emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """About 108 small recordings at 25 downloads a second: a run lasts several seconds."""
    return emulator_factory(
        data=DataOptions(seed=31, calls=120, days=2, bytes_per_second=40), heavy=GroupLimit(25, 1.0, 1.0)
    )


@pytest.fixture
def s3_proxy(moto_server: str) -> Iterator[TcpProxy]:
    with TcpProxy.to_url(moto_server) as proxy:
        yield proxy


def test_outage_s3_cut_mid_run_stops_with_exit_4_and_charges_nothing(
    paced_emulator: Emulator, tmp_path: Path, s3_bucket: str, s3_proxy: TcpProxy
) -> None:
    emu = paced_emulator
    env = archiver_env(
        emu,
        tmp_path,
        f"s3://{s3_bucket}/rec",
        AWS_ENDPOINT_URL=s3_proxy.url,
        RC_ARCHIVER_S3_MAX_ATTEMPTS="2",  # each S3 request retried once: the breaker decides sooner
    )
    proc = start_run(env)
    try:
        wait_until(lambda: len(s3_objects(s3_bucket, "rec/")) >= 20, proc, "some recordings were archived")
        s3_proxy.cut()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 4, out[-3000:] + err[-3000:]
    error = assert_one_clean_error(out, err, "destination_error", "destination", 4)
    assert "destination" in error["error"]
    assert attempts_charged(tmp_path / "state" / "state.db") == 0
    stored = len(audio_of(stored_files(s3_bucket)))
    assert 0 < stored < len(emu.ground_truth())  # the cut landed mid-run
    s3_proxy.restore()
    healthy_run(env)
    assert_everything_archived(emu, stored_files(s3_bucket))
