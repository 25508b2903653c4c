"""Seeded fault injection: each kind fires on its own share of the eligible requests."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from archiver.emulator.replies import API_ERRORS, TOKEN_ERRORS

# New kinds go at the end: a seeded draw over the old kinds then stays what it was.
# "empty" and "html" are bad 200 replies (0 bytes; a text/html page, as a proxy or portal serves it):
# a correct archiver never archives them.
FAULT_KINDS = ("429", "500", "503", "reset", "truncate", "slow", "empty", "html")

# Per-test options of EmulatorConfig (never drawn at random, never part of the pessimistic switch).
# How a content body is delimited: "length" with Content-Length, as RingCentral sends it; "close" by the
# connection closing (no Content-Length, no chunked), as some proxies pass it on: a body cut short is then
# indistinguishable, at the HTTP level, from a whole one.
CONTENT_FRAMINGS = ("length", "close")
# What happens to every DELETE of call recordings: "misroute" (a proxy answers 404 CMN-102, nothing is
# deleted), "partial" (207 Multi-Status, only the first half deleted), "lost" (deleted, then the
# connection is reset with no reply at all).
DELETE_FAULTS = ("misroute", "partial", "lost")


# The request each fault acts on (its route's module): tests/integration/test_emulator_faults.py makes
# that request with each value of each fault and checks the answer changes.
STAGES = ("token", "call-log", "content", "delete")


@dataclass(frozen=True)
class NamedFault:
    """One per-test fault option of EmulatorConfig: the request it acts on, the values it takes ("" is
    off) and what they do."""

    stage: str
    values: tuple[str, ...]
    what: str


# Every per-test fault, in one table: the option (an EmulatorConfig field, `rc-archiver emulator --<option>`)
# and its values. Never part of the pessimistic switch. The kinds drawn at random per request are
# FAULT_KINDS (FaultOptions.rates, `--fault-<kind>`).
FAULTS: dict[str, NamedFault] = {
    "content_framing": NamedFault(
        "content",
        CONTENT_FRAMINGS,
        "'close': content bodies end with the connection, no Content-Length (as some proxies send them;"
        " a truncated body then looks whole); 'length' is RingCentral's",
    ),
    "delete_fault": NamedFault(
        "delete",
        DELETE_FAULTS,
        "break every recordings DELETE: 'misroute' 404 and nothing deleted, 'partial' 207 with half"
        " deleted, 'lost' deleted but no reply",
    ),
    "content_error": NamedFault(
        "content", tuple(sorted(API_ERRORS)), "answer every content request with this error"
    ),
    "call_log_error": NamedFault(
        "call-log", tuple(sorted(API_ERRORS)), "answer every call-log request with this error"
    ),
    "token_error": NamedFault("token", tuple(sorted(TOKEN_ERRORS)), "answer every login with this error"),
}


def fault_problems(chosen: dict[str, str]) -> list[str]:
    """A line per fault option set to a value FAULTS does not name ("" is off, except for framing)."""
    return [
        f"{name} must be one of {', '.join(FAULTS[name].values)}"
        for name, value in chosen.items()
        if (value or name == "content_framing") and value not in FAULTS[name].values
    ]


@dataclass
class FaultOptions:
    rates: dict[str, float] = field(default_factory=dict)  # kind -> probability per request
    seed: int = 0
    slow_seconds: float = 1.0  # delay before the first byte for the "slow" kind
    retry_after: int = 1  # Retry-After of an injected 429 (it starts no penalty)
    routes: frozenset[str] = (
        frozenset()
    )  # limit faults to these routes (call-log, recording, content, delete-recordings); empty: all

    def validate(self) -> None:
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if sum(self.rates.values()) > 1.0:
            raise ValueError("fault rates add up to more than 1")


class FaultInjector:
    def __init__(self, options: FaultOptions) -> None:
        options.validate()
        self.options = options
        self._rng = random.Random(options.seed)
        self._lock = threading.Lock()

    def reconfigure(self, options: FaultOptions) -> None:
        options.validate()
        with self._lock:
            self.options = options
            self._rng = random.Random(options.seed)

    def draw(self) -> str | None:
        """The fault for the next eligible request, or None."""
        with self._lock:
            roll = self._rng.random()
            acc = 0.0
            for kind in FAULT_KINDS:
                acc += self.options.rates.get(kind, 0.0)
                if roll < acc:
                    return kind
            return None

    def truncate_point(self, length: int) -> int:
        with self._lock:
            return self._rng.randint(0, max(0, length - 1))
