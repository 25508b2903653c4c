"""Keep inside RingCentral's rate limits: one pacer per rate group (heavy, auth).

RingCentral counts requests per (user, app, group) over a sliding window and answers 429 past the
limit, then refuses, and restarts the penalty for, every further request in the group (NOTES.md,
"the 429 trap"). So the pacer
  * never lets more than `limit` requests be in the window, counting a request from the moment its
    reply arrived (never earlier than the server counted it) and in-flight requests as in the window;
  * learns the real limit and window from X-Rate-Limit-Limit/-Window, and trusts -Remaining when
    the server has counted more than we did (another process using the same service user);
  * after a 429 holds every request in the group until Retry-After has passed.
The arithmetic is in `next_slot`, a pure function with the time passed in.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from archiver.errors import Cancelled

DEFAULT_RETRY_AFTER = 30.0  # NOTES.md: when a 429 has no Retry-After, wait at least 30 s
SAFETY_MARGIN = 0.05  # seconds added after a window edge, for clock granularity


def next_slot(
    now: float, hits: list[float], in_flight: int, limit: int, window: float, penalty_until: float
) -> float:
    """The earliest time a new request may be sent (== now when it may go at once).

    `hits` are the times counted requests' replies arrived, oldest first.
    """
    earliest = max(now, penalty_until)
    live = [h for h in hits if h > earliest - window - SAFETY_MARGIN]
    excess = len(live) + in_flight - limit + 1
    if excess <= 0:
        return earliest
    if excess > len(live):
        return float("inf")  # only in-flight requests can free a slot: wait for one to finish
    return max(earliest, live[excess - 1] + window + SAFETY_MARGIN)


@dataclass(frozen=True)
class Ticket:
    group: str
    sent_at: float


class RatePacer:
    def __init__(
        self,
        group: str,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        self.group = group
        self.limit = limit
        self.window = window
        self._clock = clock
        self._on_wait = on_wait
        self._cond = threading.Condition()
        self._hits: deque[float] = deque()
        self._in_flight = 0
        self._penalty_until = 0.0
        self.waited = 0.0  # seconds spent waiting for a slot, for metrics
        self.penalties = 0

    def _prune(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.window - SAFETY_MARGIN:
            self._hits.popleft()

    def acquire(self, cancel: threading.Event | None = None) -> Ticket:
        """Block until a request may be sent without being refused; reserve its slot."""
        started = self._clock()
        with self._cond:
            while True:
                now = self._clock()
                self._prune(now)
                at = next_slot(
                    now, list(self._hits), self._in_flight, self.limit, self.window, self._penalty_until
                )
                if at <= now:
                    break
                if cancel is not None and cancel.is_set():
                    raise Cancelled
                # Wake at the slot, on a reply (which may free or reveal a slot), or to check cancel.
                self._cond.wait(timeout=min(at - now, 0.5))
            self._in_flight += 1
        waited = self._clock() - started
        if waited > 0:
            self.waited += waited
            if self._on_wait is not None:
                self._on_wait(self.group, waited)
        return Ticket(self.group, started)

    def release(self, ticket: Ticket, headers: Mapping[str, str] | None, *, counted: bool = True) -> None:
        """The reply arrived (or the request failed): count it and learn from the rate headers."""
        with self._cond:
            now = self._clock()
            self._in_flight = max(0, self._in_flight - 1)
            if counted:
                self._hits.append(now)
            if headers:
                self._learn(headers, now)
            self._cond.notify_all()

    def _learn(self, headers: Mapping[str, str], now: float) -> None:
        group = (headers.get("X-Rate-Limit-Group") or self.group).lower()
        if group != self.group:
            return
        try:
            limit = int(headers["X-Rate-Limit-Limit"])
            window = float(headers["X-Rate-Limit-Window"])
            if limit > 0 and window > 0:
                self.limit, self.window = limit, window
        except (KeyError, ValueError):
            pass
        try:
            remaining = int(headers["X-Rate-Limit-Remaining"])
        except (KeyError, ValueError):
            return
        self._prune(now)
        server_count = self.limit - remaining
        ours = len(self._hits) + self._in_flight
        for _ in range(max(0, server_count - ours)):
            self._hits.append(now)  # someone else is spending our budget: account for it

    def penalize(self, retry_after: float | None) -> None:
        """A 429 arrived: nothing in this group is sent until Retry-After has passed."""
        with self._cond:
            wait = DEFAULT_RETRY_AFTER if retry_after is None or retry_after <= 0 else retry_after
            self._penalty_until = max(self._penalty_until, self._clock() + wait + SAFETY_MARGIN)
            self.penalties += 1
            self._cond.notify_all()
