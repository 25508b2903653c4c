"""systemd's sd_notify protocol, without a dependency: READY=1, STATUS=..., STOPPING=1, WATCHDOG=1.

Only active when systemd set NOTIFY_SOCKET (Type=notify); WATCHDOG_USEC tells the ping interval.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable

import structlog

from archiver.liveness import Liveness

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
            # Never block: a notify socket nobody drains must not stall a run (or the daemon's stop).
            sock.sendto(message.encode(), socket.MSG_DONTWAIT, address)
    except OSError as exc:
        log.warning("sd_notify_failed", error=exc.strerror)
        return False
    return True


class Watchdog:
    """Pings WATCHDOG=1 at half the interval systemd asked for, but only while the daemon makes
    progress (idle between runs, or a run that touched `liveness` lately): a stalled run stops the
    pings, so systemd restarts the service instead of trusting a thread that merely lives."""

    def __init__(self, liveness: Liveness, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = watchdog_seconds() / 2
        self._liveness = liveness
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="watchdog", daemon=True)
        self._withheld: str | None = None

    def start(self) -> None:
        if self.interval:
            self._thread.start()

    def tick(self) -> bool:
        """One check: ping when making progress; True if it pinged."""
        reason = self._liveness.stalled(self._clock())
        if reason is None:
            if self._withheld is not None:
                run_id = self._liveness.run_id  # None when the run ended: idle again
                log.info("watchdog_resumed", **({"run_id": run_id} if run_id else {}))
            self._withheld = None
            notify("WATCHDOG=1")
            return True
        if self._withheld is None:  # once per stall, not on every tick
            # This thread has no run bound to its log context: the run it is about is named here.
            log.error(
                "watchdog_withheld",
                run_id=self._liveness.run_id,
                reason=reason,
                fix="systemd restarts the service if it lasts",
            )
            notify(f"STATUS=stalled: {reason}"[:400])
        self._withheld = reason
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def stop(self) -> None:
        self._stop.set()


def watchdog_seconds() -> float:
    """The watchdog interval systemd set (WATCHDOG_USEC), 0 when none."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 1e6 if usec.isdigit() and int(usec) > 0 else 0.0
