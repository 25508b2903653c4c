"""Fixtures: a real moto S3 server process and the RingCentral emulator, both spoken to over HTTP."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, FaultOptions, GroupLimit

BIN = Path(sys.executable).parent
FAST = GroupLimit(100_000, 60.0, 60.0)  # a raised-limit account: tests that are not about pacing


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


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture
def s3_bucket(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; AWS_* variables point boto3 at it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"rec-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


def s3_objects(bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = boto3.client("s3")
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


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


@pytest.fixture
def emulator_factory() -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def start(**changes: Any) -> Emulator:
        emulator = Emulator(make_config(**changes)).start()
        started.append(emulator)
        return emulator

    yield start
    for emulator in started:
        emulator.stop()


@pytest.fixture
def emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    return emulator_factory()


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
        "RC_ARCHIVER_RATE_PENALTY": f"{max(cfg.heavy.penalty, cfg.auth.penalty)}s",
        "RC_ARCHIVER_SETTLE_DELAY": "0s",
        "RC_ARCHIVER_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


@pytest.fixture
def run_archiver(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, list[dict[str, Any]]]]:
    """Run `rc-archiver ARGS` in-process with exactly ENV (plus AWS_*); returns (exit code, log events)."""
    from archiver.cli import main

    def run(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
        for name in list(os.environ):
            if name.startswith(("RC_", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")):
                monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        try:
            code = main(list(args))
        finally:
            logging.getLogger().handlers.clear()  # the handler wrote to capsys' stream, which closes
        out = capsys.readouterr().out
        return code, parse_events(out)

    return run


def parse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def run_subprocess(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """`rc-archiver ARGS` as a real process, with only ENV and the AWS test variables."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    for name in ("AWS_ENDPOINT_URL", *AWS_ENV):
        if name in os.environ and name not in full_env:
            full_env[name] = os.environ[name]
    return subprocess.run(
        [str(BIN / "rc-archiver"), *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


__all__ = ["FaultOptions"]


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[str]:
    """A real Prometheus Pushgateway process on a loopback port (Debian: prometheus-pushgateway)."""
    program = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if program is None:
        pytest.skip("prometheus-pushgateway is not installed (.ci/run installs it from Debian)")
    port = free_port()
    proc = subprocess.Popen(
        [program, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
