"""Liveness and the watchdog: pings mean "making progress", not merely "the process lives"."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from archiver.liveness import Liveness
from archiver.notify import Watchdog, watchdog_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A real sd_notify datagram socket, as systemd provides with Type=notify."""
    path = tmp_path / "notify.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(path))
    listener.settimeout(0.05)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    yield listener
    listener.close()


def received(listener: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(listener.recv(4096).decode())
        except TimeoutError:
            return out


def test_liveness_idle_is_never_stalled() -> None:
    clock = Clock()
    liveness = Liveness(60, clock)
    clock.now += 10_000
    assert liveness.stalled() is None


def test_liveness_a_run_quiet_past_the_limit_is_stalled_with_the_reason() -> None:
    clock = Clock()
    liveness = Liveness(60, clock)
    liveness.run_started()
    clock.now += 60
    assert liveness.stalled() is None  # exactly at the limit still counts as progressing
    clock.now += 1
    assert liveness.stalled() == "the run made no progress for 61 s (limit 60 s)"


def test_liveness_touch_keeps_a_long_run_alive_and_run_ended_clears_a_stall() -> None:
    clock = Clock()
    liveness = Liveness(60, clock)
    liveness.run_started()
    for _ in range(10):  # ten minutes of steady progress
        clock.now += 59
        liveness.touch()
        assert liveness.stalled() is None
    clock.now += 120
    assert liveness.stalled() is not None
    liveness.run_ended()
    assert liveness.stalled() is None and liveness.active is False


def test_watchdog_interval_is_half_what_systemd_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "600000000")
    assert watchdog_seconds() == 600
    assert Watchdog(Liveness(600)).interval == 300
    monkeypatch.delenv("WATCHDOG_USEC")
    assert Watchdog(Liveness(600)).interval == 0  # no watchdog: no thread


def test_watchdog_pings_only_while_idle_or_progressing(notify_socket: socket.socket) -> None:
    clock = Clock()
    liveness = Liveness(60, clock)
    watchdog = Watchdog(liveness, clock)
    assert watchdog.tick() is True  # idle
    liveness.run_started()
    clock.now += 30
    assert watchdog.tick() is True  # progressing (within the limit)
    assert received(notify_socket) == ["WATCHDOG=1", "WATCHDOG=1"]
    clock.now += 43  # a stall on one request
    with capture_logs() as logs:
        assert watchdog.tick() is False
        assert watchdog.tick() is False
    assert received(notify_socket) == ["STATUS=stalled: the run made no progress for 73 s (limit 60 s)"]
    assert [e["event"] for e in logs] == ["watchdog_withheld"]  # once per stall, not per tick
    liveness.touch()
    assert watchdog.tick() is True
    assert received(notify_socket) == ["WATCHDOG=1"]
