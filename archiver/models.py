"""Plain data passed between the parts of a run. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def parse_time(value: str) -> datetime:
    """A RingCentral timestamp (ISO 8601, 'Z' or offset) as an aware UTC datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """UTC with milliseconds and a 'Z': the form RingCentral accepts even when not URL-encoded."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


@dataclass
class Failure:
    recording_id: str
    reason: str
    attempts: int


@dataclass
class RunSummary:
    """What a run did; the CLI turns it into an exit code, the logs into one summary event."""

    run_id: str
    found: int = 0
    archived: int = 0
    skipped: int = 0  # already archived (in the state, or found in the destination)
    failed: int = 0  # failed in this run, will be retried
    pending: int = 0  # not available yet at RingCentral; retried next run
    exhausted: int = 0  # failed RC_ARCHIVER_MAX_ATTEMPTS times: needs an operator
    bytes: int = 0
    seconds: float = 0.0
    stopped: bool = False  # ended early by a signal
    abandoned: int = 0  # in-flight recordings given up at the stop timeout (still pending)
    rate_limited: int = 0  # 429s received (each held its whole rate group until Retry-After)
    rate_wait_seconds: float = 0.0  # time spent waiting for the rate budget
    failures: list[Failure] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing failed or is still owed. A run stopped by a signal is complete if what it did
        succeeded: the recordings it did not reach are pending, not failed, and the next run takes them."""
        return self.failed == 0 and self.pending == 0 and self.exhausted == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "found": self.found,
            "archived": self.archived,
            "skipped": self.skipped,
            "failed": self.failed,
            "pending": self.pending,
            "exhausted": self.exhausted,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "stopped": self.stopped,
            "abandoned": self.abandoned,
            "rate_limited": self.rate_limited,
            "rate_wait_seconds": round(self.rate_wait_seconds, 3),
            "failures": [f.__dict__ for f in self.failures[:100]],
        }
