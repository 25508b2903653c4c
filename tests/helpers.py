"""Shared test helpers, in one place: plain functions and constants (fixtures live in conftest.py).

Test modules import from here (or use conftest's fixtures), never from one another.

Processes and ports      BIN, free_port, wait_for_port, run_subprocess, start_run
The emulator             FAST, make_config, slow_emulator, archiver_env, SINCE
A RingCentral client     emulator_client, RefusingTransport (a failing world, mounted on a session)
Logs and summaries       parse_events, events_of, summary_of, error_of
What was archived        folder_files, audio_by_recording, assert_matches_ground_truth, integrity
S3 (the moto server)     AWS_ENV, s3_objects, versioned_bucket, versions_per_key
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests
import requests.adapters

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, GroupLimit
from archiver.models import format_time
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.client import RingCentralClient
from archiver.ringcentral.pacer import RatePacer

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]  # the repository
SUBSET_SPEC = json.loads((ROOT / "tests" / "data" / "rc-archiver-subset.openapi.json").read_text())
MB = 1024 * 1024
FAST = GroupLimit(100_000, 60.0, 60.0)  # a raised-limit account: tests that are not about pacing
SINCE = format_time(datetime.now(UTC) - timedelta(days=6))  # the emulator's calls lie within 4 days
# DataOptions for a call log where every call has exactly one recording, on its record.
ONE_RECORDING_EACH = {
    "unrecorded_fraction": 0.0,
    "short_fraction": 0.0,
    "fax_fraction": 0.0,
    "transfer_fraction": 0.0,
    "internal_fraction": 0.0,
}
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
# `run_archiver`'s signature: (environment, *args) -> (exit code, log events).
Run = Callable[..., tuple[int, list[dict[str, Any]]]]


# -- processes and ports ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def run_subprocess(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`rc-archiver ARGS` as a real process, with only ENV and the AWS test variables."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    for name in ("AWS_ENDPOINT_URL", *AWS_ENV):
        if name in os.environ and name not in full_env:
            full_env[name] = os.environ[name]
    return subprocess.run(
        [str(BIN / "rc-archiver"), *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


def start_run(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[str]:
    """`rc-archiver run --since SINCE ARGS` started in the background (the caller waits, with a timeout)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        if name in os.environ:
            full_env[name] = os.environ[name]
    return subprocess.Popen(
        [str(BIN / "rc-archiver"), "run", "--since", SINCE, *args],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


# -- the emulator -----------------------------------------------------------------------------------
def make_config(**changes: Any) -> EmulatorConfig:
    """Fast defaults for tests: small recordings, no delays, raised limits.

    With RC_EMULATOR_PESSIMISTIC=1 every emulator takes the pessimistic reading of each point RingCentral
    leaves open (a test that needs one reading sets that option, which wins over the switch).
    """
    data = changes.pop("data", None) or DataOptions(seed=11, calls=60, days=3, bytes_per_second=40)
    pessimistic = os.environ.get("RC_EMULATOR_PESSIMISTIC") == "1"
    base = EmulatorConfig(
        data=data, heavy=FAST, auth=FAST, record_delay=0, recording_delay=0, pessimistic=pessimistic
    )
    return replace(base, **changes)


def slow_emulator(factory: Callable[..., Emulator], **data: Any) -> Emulator:
    """About 40 recordings a second: a full run takes a few seconds, so kills land mid-run."""
    options = {"seed": 31, "calls": 60, "days": 2, "bytes_per_second": 2000, **data}
    return factory(data=DataOptions(**options), heavy=GroupLimit(40, 1.0, 1.0))


def archiver_env(emulator: Emulator, tmp_path: Path, destination: str, **extra: str) -> dict[str, str]:
    """The environment of an archiver run against the emulator (values as operators would set them)."""
    cfg = emulator.config
    env = {
        "RC_SERVER_URL": emulator.url,
        "RC_CLIENT_ID": cfg.client_id,
        "RC_CLIENT_SECRET": cfg.client_secret,
        "RC_JWT": cfg.jwt,
        "RC_ARCHIVER_DESTINATION": destination,
        "RC_ARCHIVER_STATE_PATH": str(tmp_path / "state" / "state.db"),
        "RC_ARCHIVER_SPOOL_DIR": str(tmp_path / "spool"),
        "RC_ARCHIVER_RATE_HEAVY": f"{cfg.heavy.limit}/{cfg.heavy.window}s",
        "RC_ARCHIVER_RATE_AUTH": f"{cfg.auth.limit}/{cfg.auth.window}s",
        # The emulator's penalties are scaled down with its windows; RingCentral's is 60 s.
        "RC_ARCHIVER_RATE_PENALTY": f"{cfg.heavy.penalty}s",
        "RC_ARCHIVER_SETTLE_DELAY": "0s",
        "RC_ARCHIVER_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


# -- a RingCentral client ---------------------------------------------------------------------------
def emulator_client(
    emulator: Emulator,
    session: requests.Session,
    *,
    attempts: int = 3,
    cancel: threading.Event | None = None,
) -> RingCentralClient:
    """The archiver's own client and login against the emulator, at its limits; retries without sleeping."""
    cfg = emulator.config
    auth = Authenticator(
        emulator.url,
        cfg.client_id,
        cfg.client_secret,
        cfg.jwt,
        session,
        (5, 30),
        RatePacer("auth", cfg.auth.limit, cfg.auth.window),
    )
    return RingCentralClient(
        emulator.url,
        session,
        auth,
        RatePacer("heavy", cfg.heavy.limit, cfg.heavy.window),
        (5, 30),
        attempts=attempts,
        cancel=cancel or threading.Event(),
        sleep=lambda seconds: None,
    )


class RefusingTransport(requests.adapters.BaseAdapter):
    """A transport that refuses every connection: a failing world. Mount it on a session for a URL prefix
    (`session.mount(emulator.media_url, RefusingTransport())`); `sent` counts the requests it refused."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        raise requests.ConnectionError("[Errno 111] Connection refused")

    def close(self) -> None:
        pass


# -- logs and summaries -----------------------------------------------------------------------------
def parse_events(text: str) -> list[dict[str, Any]]:
    """The JSON log events in TEXT (lines that are not JSON objects are skipped, blanks around them too)."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def events_of(text: str) -> list[dict[str, Any]]:
    """The JSON log events of a process's output (each on a line of its own)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def summary_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "run_summary")


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The one error line of a run that failed (the run_summary after it is a warning)."""
    (error,) = [e for e in events if e["level"] == "error"]
    return error


# -- what was archived ------------------------------------------------------------------------------
def folder_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".rc-archiver-staging" not in p.parts
    }


def audio_by_recording(files: dict[str, bytes]) -> dict[str, bytes]:
    """recording id -> audio bytes, read through the sidecars (which name the audio's key)."""
    out = {}
    for key, data in files.items():
        if key.endswith(".json") and not key.startswith("_manifests/"):
            sidecar = json.loads(data)
            out[sidecar["recording_id"]] = files[sidecar["key"]]
    return out


def assert_matches_ground_truth(emulator: Emulator, audio: dict[str, bytes]) -> None:
    truth = {item["recordingId"]: item for item in emulator.ground_truth()}
    assert set(audio) == set(truth)
    for recording_id, data in audio.items():
        assert hashlib.sha256(data).hexdigest() == truth[recording_id]["sha256"]
        assert len(data) == truth[recording_id]["size"]


def integrity(state: Path) -> str:
    """SQLite's own check; a run killed before it created the file has nothing to corrupt."""
    if not state.exists():
        return "ok"
    return str(sqlite3.connect(state).execute("PRAGMA integrity_check").fetchone()[0])


# -- S3 (the moto server) ---------------------------------------------------------------------------
def s3_objects(bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = boto3.client("s3")
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def versioned_bucket(bucket: str) -> None:
    """Versioning makes every PUT visible: an object uploaded twice has two versions."""
    boto3.client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def versions_per_key(bucket: str) -> dict[str, int]:
    """Versions of each recording and sidecar (each run writes manifest parts of its own)."""
    counts: dict[str, int] = {}
    for page in boto3.client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            if "_manifests/" in version["Key"]:
                continue
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


# -- the daemon as a process ----------------------------------------------------------------------


def read_lines(proc: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line)


def wait_for_event(
    lines: queue.Queue[str], seen: list[dict[str, Any]], event: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == event:
                return
    raise AssertionError(f"no {event} event within {timeout} s; saw {[e['event'] for e in seen]}")


def start_daemon(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    proc = subprocess.Popen(
        [str(BIN / "rc-archiver"), "daemon", *args],
        env={"PATH": os.environ.get("PATH", ""), "HOME": "/tmp", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc, lines), daemon=True).start()
    return proc, lines


def stop_daemon(proc: subprocess.Popen[str]) -> int:
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
