"""Is the daemon making progress? The answer the watchdog and /healthz both give.

A process that lives is not enough: a run stuck on one request for an hour is alive and useless.
The run touches the Liveness whenever it gets somewhere (a request completed, bytes moved, a
call-log slice scanned); while a run is active and nothing touched it within `stall_after` seconds,
it is stalled. Between runs the daemon is idle, which is healthy however long it lasts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_STALL_SECONDS = 600.0  # the shipped unit's WatchdogSec=10min, used when systemd sets none


class Liveness:
    """Thread-safe: touched from the run's worker threads, read by the watchdog and /healthz."""

    def __init__(self, stall_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_after = stall_after
        self._clock = clock
        self._lock = threading.Lock()
        self._active = False
        self._last = clock()
        self._run_id: str | None = None

    def run_started(self) -> None:
        with self._lock:
            self._active, self._last, self._run_id = True, self._clock(), None

    def name_run(self, run_id: str | None) -> None:
        """The active run's id, once known, so the watchdog's events name the run they are about."""
        with self._lock:
            if self._active:
                self._run_id = run_id

    def touch(self) -> None:
        """The run made progress (cheap enough to call for every chunk of bytes moved)."""
        now = self._clock()
        with self._lock:
            self._last = now

    def run_ended(self) -> None:
        with self._lock:
            self._active, self._last, self._run_id = False, self._clock(), None

    @property
    def active(self) -> bool:
        with self._lock:
            return self._active

    @property
    def run_id(self) -> str | None:
        """The active run's id (None between runs, or before the run made its first progress)."""
        with self._lock:
            return self._run_id

    def stalled(self, now: float | None = None) -> str | None:
        """None while idle or progressing; otherwise why the run counts as stalled."""
        now = self._clock() if now is None else now
        with self._lock:
            active, last = self._active, self._last
        quiet = now - last
        if not active or quiet <= self.stall_after:
            return None
        return f"the run made no progress for {quiet:.0f} s (limit {self.stall_after:.0f} s)"
