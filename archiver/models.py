"""Plain data passed between the parts of a run. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MAX_REPORTED_FAILURES = 100  # failures a run summary lists by name (the count is always whole)


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


@dataclass(frozen=True)
class Failure:
    recording_id: str
    reason: str
    attempts: int


@dataclass
class RunSummary:
    """What a run did; logged once as `run_summary`, turned into the exit code by the lifecycle."""

    run_id: str
    found: int = 0  # recordings seen in the call log, plus leftovers of earlier runs taken up
    archived: int = 0
    skipped: int = 0  # already archived (in the state, or found in the destination)
    failed: int = 0  # failed in this run, will be retried
    pending: int = 0  # not available yet at RingCentral; retried next run
    exhausted: int = 0  # failed RC_ARCHIVER_MAX_ATTEMPTS times: reported, retried every retry interval
    # Of those, the ones that failed in this run (their last counted attempt, or a slow retry): only
    # these make the run incomplete; the others wait for an operator under their own alert.
    exhausted_in_run: int = 0
    lost: int = 0  # became lost in this run: deadline passed or deleted by RingCentral before archived
    deleted: int = 0  # deleted at the source after a verified archive (opt in)
    days_unreadable: int = 0  # call-log days that could not be read (scanned again next run)
    unreadable_days: list[str] = field(default_factory=list)  # those days, local dates (YYYY-MM-DD)
    bytes: int = 0
    seconds: float = 0.0
    stopped: bool = False  # ended early by a signal (SIGTERM/SIGINT, which is how time limits stop it)
    abandoned: int = 0  # in-flight recordings given up at the stop timeout (still pending)
    remaining: int = 0  # recordings still due when the run ended (not reached, or failed)
    rate_limited: int = 0  # 429s received (each held its whole rate group)
    # Wall time the run's work was held by the rate budget (run_pass.RateWait): never more than
    # `seconds`, unlike the sum of every thread's waits.
    rate_wait_seconds: float = 0.0
    outcome: str = ""  # ok, incomplete, stopped, settings, auth, destination, outage, lock
    exit_code: int = 0
    error: str = ""  # the error that ended the run early, with its fix
    fix: str = ""
    forecast: dict[str, Any] | None = None
    failures: list[Failure] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Nothing this run attempted failed, is owed or was lost, and every call-log day was read. A run
        stopped by a signal is complete if what it did succeeded: the recordings it did not reach are
        pending, not failed, and the next run takes them. Recordings exhausted by earlier runs and not
        attempted in this one do not count: nothing this run did could change them, and they have
        their own alert (RcArchiverRecordingsExhausted)."""
        return (
            not self.error
            and self.failed == 0
            and self.pending == 0
            and self.exhausted_in_run == 0
            and self.lost == 0
            and self.days_unreadable == 0
        )

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "failures"}
        out["seconds"] = round(self.seconds, 3)
        out["rate_wait_seconds"] = round(self.rate_wait_seconds, 3)
        out["failures"] = [f.__dict__ for f in self.failures[:MAX_REPORTED_FAILURES]]
        return out
