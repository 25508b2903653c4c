"""RingCentral's rate limiting: a sliding window per (token owner, group) and the 429 penalty trap.

Every request in a group is counted in a sliding window. Past the limit the server answers 429 and
starts a penalty; every request in that group during the penalty is refused AND restarts it. That is
the trap the archiver must never fall into, so the emulator reproduces it exactly.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class GroupLimit:
    limit: int
    window: float  # seconds
    penalty: float  # seconds


@dataclass(frozen=True)
class Decision:
    allowed: bool
    group: str
    limit: int
    remaining: int
    window: float
    retry_after: float = 0.0


class RateLimiter:
    def __init__(
        self, groups: dict[str, GroupLimit], clock: Callable[[], float], enabled: bool = True
    ) -> None:
        self._groups = groups
        self._clock = clock
        self.enabled = enabled
        self._lock = threading.Lock()
        self._hits: dict[tuple[str, str], deque[float]] = {}
        self._penalty_until: dict[tuple[str, str], float] = {}

    def limits(self, group: str) -> GroupLimit:
        return self._groups[group]

    def peek(self, owner: str, group: str) -> Decision:
        """Where `owner` stands in `group` now, counting nothing (the headers of a reply refused
        before the rate check, e.g. a 401)."""
        cfg = self._groups[group]
        with self._lock:
            now = self._clock()
            hits = [h for h in self._hits.get((owner, group), ()) if h > now - cfg.window]
            penalized = now < self._penalty_until.get((owner, group), 0.0)
        remaining = 0 if penalized else max(0, cfg.limit - len(hits))
        return Decision(True, group, cfg.limit, remaining, cfg.window)

    def check(self, owner: str, group: str) -> Decision:
        """Count one request and say whether it may proceed."""
        cfg = self._groups[group]
        key = (owner, group)
        with self._lock:
            now = self._clock()
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - cfg.window:
                hits.popleft()
            if not self.enabled:
                return Decision(True, group, cfg.limit, cfg.limit, cfg.window)
            until = self._penalty_until.get(key, 0.0)
            if now < until:
                # The trap: a request during the penalty restarts it.
                self._penalty_until[key] = now + cfg.penalty
                return Decision(False, group, cfg.limit, 0, cfg.window, cfg.penalty)
            if len(hits) >= cfg.limit:
                self._penalty_until[key] = now + cfg.penalty
                return Decision(False, group, cfg.limit, 0, cfg.window, cfg.penalty)
            hits.append(now)
            return Decision(True, group, cfg.limit, cfg.limit - len(hits), cfg.window)
