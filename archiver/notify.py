"""systemd's sd_notify protocol, without a dependency: READY=1, STATUS=..., STOPPING=1, WATCHDOG=1.

Only active when systemd set NOTIFY_SOCKET (Type=notify); WATCHDOG_USEC tells the ping interval.
"""

from __future__ import annotations

import os
import socket
import threading

import structlog

log = structlog.get_logger(__name__)


def notify(message: str) -> bool:
    """Send one notification; False when not under systemd or the socket is gone (never raises)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify_failed", error=exc.strerror)
        return False
    return True


class Watchdog:
    """Pings WATCHDOG=1 at half the interval systemd asked for, until stopped."""

    def __init__(self) -> None:
        usec = os.environ.get("WATCHDOG_USEC", "")
        self.interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 else 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)

    def start(self) -> None:
        if self.interval:
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            notify("WATCHDOG=1")

    def stop(self) -> None:
        self._stop.set()
