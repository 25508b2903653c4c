"""Fixtures: real server processes (moto, SeaweedFS, the Pushgateway; thin wrappers over tests/harness,
which bench/ shares) and the RingCentral emulator, all spoken to over HTTP.

Plain helpers (functions and constants) live in tests/helpers.py; the names imported from there are
re-exported so `from tests.conftest import archiver_env` keeps working, but new code imports helpers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from archiver.emulator import Emulator, FaultOptions
from tests.harness import servers
from tests.helpers import (
    AWS_ENV,
    BIN,
    FAST,
    archiver_env,
    free_port,
    make_config,
    parse_events,
    run_subprocess,
    s3_objects,
    wait_for_port,
)
from tests.s3_servers import new_bucket

__all__ = [
    "AWS_ENV",
    "BIN",
    "FAST",
    "FaultOptions",
    "archiver_env",
    "free_port",
    "make_config",
    "parse_events",
    "run_subprocess",
    "s3_objects",
    "wait_for_port",
]


# -- tests that must run alone -----------------------------------------------------------------------
# A test marked `alone` measures time against a scaled-down budget (the cliff forecast): with the other
# xdist worker busy beside it, a 2-core machine cannot keep the pace the forecast is about. So the
# workers share a writer-preferring lock: every test holds it shared; an `alone` test takes the
# turnstile (no new test starts), waits for the running one to end, and holds it exclusively.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "serial")
_LOCKS = Path(tempfile.gettempdir()) / f"rc-archiver-tests-{_RUN}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    alone = item.get_closest_marker("alone") is not None
    with open(f"{_LOCKS}.turnstile", "a") as turnstile, open(f"{_LOCKS}.tests", "a") as tests:
        fcntl.flock(turnstile, fcntl.LOCK_EX)
        if not alone:
            fcntl.flock(turnstile, fcntl.LOCK_UN)
        fcntl.flock(tests, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(tests, fcntl.LOCK_UN)
            if alone:
                fcntl.flock(turnstile, fcntl.LOCK_UN)


def _serving(server: contextlib.AbstractContextManager[str]) -> Iterator[str]:
    """A harness server as a fixture's value; skipped where its program is not installed."""
    try:
        with server as url:
            yield url
    except servers.Unavailable as missing:
        pytest.skip(str(missing))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    yield from _serving(servers.moto_server())


@pytest.fixture(scope="session")
def seaweedfs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real S3-compatible server (SeaweedFS) per test worker; skipped where `weed` is missing."""
    yield from _serving(servers.seaweedfs_server(tmp_path_factory.mktemp("seaweedfs")))


@pytest.fixture
def s3_server(request: pytest.FixtureRequest) -> str:
    """The S3 endpoint s3_bucket uses: moto, unless a test is parametrized with EACH_S3_SERVER."""
    name = getattr(request, "param", "moto")
    return str(request.getfixturevalue(f"{name}_server"))


@pytest.fixture
def s3_bucket(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the S3 server (moto by default); AWS_* variables point boto3 at it."""
    return new_bucket(s3_server, monkeypatch)


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


@pytest.fixture
def report(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """Run `rc-archiver ARGS` in-process with exactly ENV (plus AWS_*); returns (exit code, stdout)."""
    from archiver.cli import main

    def run(env: dict[str, str], *args: str) -> tuple[int, str]:
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
        return code, capsys.readouterr().out

    return run


@pytest.fixture
def run_archiver(report: Callable[..., tuple[int, str]]) -> Callable[..., tuple[int, list[dict[str, Any]]]]:
    """Like `report`, with stdout's log lines parsed: (exit code, log events)."""

    def run(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
        code, out = report(env, *args)
        return code, parse_events(out)

    return run


@pytest.fixture(scope="session")
def pushgateway() -> Iterator[str]:
    """A real Prometheus Pushgateway process on a loopback port (Debian: prometheus-pushgateway)."""
    yield from _serving(servers.pushgateway_server())
