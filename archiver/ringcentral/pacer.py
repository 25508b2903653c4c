"""Keep inside RingCentral's rate limits: one pacer per rate group, the groups learned at run time.

RingCentral counts requests per (user, app, group) over a sliding window and answers 429 past the
limit, then refuses, and restarts the penalty for, every further request in the group
(docs/ringcentral-api.md#rate-limits, "the 429 trap"). So each RatePacer
  * never lets more than `limit` requests be in the window, counting a request from the moment its
    reply arrived (never earlier than the server counted it) and in-flight requests as in the window;
  * learns the real limit and window from X-Rate-Limit-Limit/-Window, and trusts -Remaining when
    the server has counted more than we did (another process using the same service user);
  * after a 429 holds every request in the group for `penalty_seconds`: Retry-After when the reply
    has a usable one, else long enough to outlast any penalty (max(window, 60 s)), so that no
    request sent during the penalty can restart it.
RateGroups keeps one pacer per group RingCentral names in X-Rate-Limit-Group: each kind of request
(call-log, content, delete) starts in its default group (heavy) and moves to the group its replies
name (a media host reporting its own "media" group gets its own budget, used fully).
The arithmetic is in `next_slot` and `penalty_seconds`, pure functions with the time passed in.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping

from archiver.errors import Cancelled
from archiver.ringcentral.retry import header

MIN_PENALTY = 60.0  # RingCentral's default penalty; a hold without Retry-After is never shorter
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


def penalty_seconds(retry_after: float | None, window: float | None, floor: float = MIN_PENALTY) -> float:
    """How long a 429 holds its group: Retry-After when usable, else max(window, the penalty)."""
    if retry_after is not None and retry_after > 0:
        return retry_after
    return max(window or 0.0, floor)


class RatePacer:
    def __init__(
        self,
        group: str,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
        penalty: float = MIN_PENALTY,
    ) -> None:
        self.group = group
        self.limit = limit
        self.window = window
        self.clock = clock
        self.penalty = penalty  # RingCentral's penalty: the hold of a 429 without a usable Retry-After
        self._cond = threading.Condition()
        self._hits: deque[float] = deque()
        self._in_flight = 0
        self._penalty_until = 0.0
        self.waited = 0.0  # seconds spent waiting for a slot, for metrics
        self.penalties = 0

    def _prune(self, now: float) -> None:
        while self._hits and self._hits[0] <= now - self.window - SAFETY_MARGIN:
            self._hits.popleft()

    def acquire(self, cancel: threading.Event | None = None) -> None:
        """Block until a request may be sent without being refused; reserve its slot."""
        started = self.clock()
        with self._cond:
            while True:
                now = self.clock()
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
            self.waited += max(0.0, self.clock() - started)

    def release(self, headers: Mapping[str, str] | None) -> None:
        """The reply arrived (or the request failed): count it and learn from the rate headers."""
        with self._cond:
            now = self.clock()
            self._in_flight = max(0, self._in_flight - 1)
            self._hits.append(now)
            if headers:
                self._learn(headers, now)
            self._cond.notify_all()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def reserve(self, requests: int) -> None:
        """Count `requests` sent now under another pacer that RingCentral counts in this group (sent
        before it named the group): they hold a slot for one window, so their replies, counted again
        as they come (count), can only make the pace slower, never trip the limit."""
        with self._cond:
            now = self.clock()
            self._hits.extend([now] * requests)

    def count(self, headers: Mapping[str, str]) -> None:
        """Count a reply whose request went out under another group's pacer (before RingCentral
        named this group), and learn from its rate headers."""
        with self._cond:
            now = self.clock()
            self._hits.append(now)
            self._learn(headers, now)
            self._cond.notify_all()

    def _learn(self, headers: Mapping[str, str], now: float) -> None:
        group = (header(headers, "X-Rate-Limit-Group") or self.group).lower()
        if group != self.group:
            return
        try:
            limit = int(header(headers, "X-Rate-Limit-Limit") or "")
            window = float(header(headers, "X-Rate-Limit-Window") or "")
            if limit > 0 and window > 0:
                self.limit, self.window = limit, window
        except ValueError:
            pass
        try:
            remaining = int(header(headers, "X-Rate-Limit-Remaining") or "")
        except ValueError:
            return
        self._prune(now)
        server_count = self.limit - remaining
        ours = len(self._hits) + self._in_flight
        for _ in range(max(0, server_count - ours)):
            self._hits.append(now)  # someone else is spending our budget: account for it

    def penalize(self, retry_after: float | None, window: float | None = None) -> float:
        """A 429 arrived: nothing in this group is sent for `penalty_seconds`. Returns the hold."""
        with self._cond:
            hold = penalty_seconds(retry_after, max(window or 0.0, self.window), self.penalty)
            self._penalty_until = max(self._penalty_until, self.clock() + hold + SAFETY_MARGIN)
            self.penalties += 1
            self._cond.notify_all()
            return hold


class RateGroups:
    """One RatePacer per rate group, created as RingCentral names groups, and the group each kind of
    request currently belongs to."""

    DEFAULT_ROUTES: Mapping[str, str] = {"call-log": "heavy", "content": "heavy", "delete": "heavy"}

    def __init__(self, pacers: Mapping[str, RatePacer]) -> None:
        if "heavy" not in pacers:
            raise ValueError("RateGroups needs a heavy pacer: the default group of every data call")
        self._pacers = dict(pacers)
        self._routes = dict(self.DEFAULT_ROUTES)
        self._clock = pacers["heavy"].clock  # groups learned later keep the same time
        self._lock = threading.Lock()

    @property
    def pacers(self) -> dict[str, RatePacer]:
        with self._lock:
            return dict(self._pacers)

    def pacer_for(self, kind: str) -> RatePacer:
        with self._lock:
            return self._pacers[self._routes.get(kind, "heavy")]

    def settle(self, kind: str, used: RatePacer, headers: Mapping[str, str] | None) -> RatePacer:
        """A reply to a `kind` request sent under `used` arrived: count it, and when it names another
        group, move `kind` to that group's pacer (made from the reply's own limit and window). Returns
        the pacer of the group the reply was counted in."""
        used.release(headers)
        named = (header(headers, "X-Rate-Limit-Group") or "").strip().lower()
        if not named or named == used.group:
            return used
        with self._lock:
            pacer = self._pacers.get(named)
            if pacer is None:
                heavy = self._pacers["heavy"]
                # Until it says otherwise, a new group is paced like heavy.
                pacer = RatePacer(named, heavy.limit, heavy.window, self._clock, heavy.penalty)
                self._pacers[named] = pacer
            moved = self._routes.get(kind) != named
            self._routes[kind] = named
        if moved:
            # Other `kind` requests may still be in flight under `used` (downloads side by side), and
            # RingCentral counts them in this group: a new pacer that did not know would send its whole
            # budget on top of them and draw a 429 (seen at 4 downloads, 10 a second).
            pacer.reserve(used.in_flight)
        pacer.count(headers or {})
        return pacer


__all__ = ["Cancelled", "RateGroups", "RatePacer", "next_slot", "penalty_seconds"]
