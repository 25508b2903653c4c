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


@dataclass(frozen=True)
class RecordingRef:
    """One recording found in the call log, with the record (and leg) it came from."""

    recording_id: str
    content_uri: str
    recording_type: str
    call_id: str
    session_id: str
    telephony_session_id: str
    start: datetime
    duration: int
    direction: str
    from_number: str
    to_number: str
    from_name: str
    to_name: str
    extension_id: str
    record: dict[str, Any]
    leg: dict[str, Any] | None = None

    def key_values(self, ext: str) -> dict[str, object]:
        return {
            "recording_id": self.recording_id,
            "call_id": self.call_id,
            "session_id": self.session_id,
            "telephony_session_id": self.telephony_session_id,
            "direction": self.direction,
            "from_number": self.from_number,
            "to_number": self.to_number,
            "from_name": self.from_name,
            "to_name": self.to_name,
            "extension_id": self.extension_id,
            "ext": ext,
        }

    @classmethod
    def from_call_log(cls, record: dict[str, Any], leg: dict[str, Any] | None) -> RecordingRef:
        """Build from a call-log record; the recording is the leg's when a leg is given."""
        source = leg if leg is not None else record
        recording = source["recording"]
        party_from = source.get("from") or record.get("from") or {}
        party_to = source.get("to") or record.get("to") or {}
        extension = source.get("extension") or record.get("extension") or {}
        return cls(
            recording_id=str(recording["id"]),
            content_uri=str(recording["contentUri"]),
            recording_type=str(recording.get("type", "")),
            call_id=str(record.get("id", "")),
            session_id=str(record.get("sessionId", "")),
            telephony_session_id=str(
                source.get("telephonySessionId") or record.get("telephonySessionId") or ""
            ),
            start=parse_time(str(source.get("startTime") or record["startTime"])),
            duration=int(source.get("duration") or record.get("duration") or 0),
            direction=str(source.get("direction") or record.get("direction") or ""),
            from_number=str(party_from.get("phoneNumber") or party_from.get("extensionNumber") or ""),
            to_number=str(party_to.get("phoneNumber") or party_to.get("extensionNumber") or ""),
            from_name=str(party_from.get("name") or ""),
            to_name=str(party_to.get("name") or ""),
            extension_id=str(extension.get("id") or ""),
            record=record,
            leg=leg,
        )


def recordings_in(record: dict[str, Any]) -> list[RecordingRef]:
    """Every recording of a call-log record: on the record itself and on each leg, deduplicated."""
    found: dict[str, RecordingRef] = {}
    if isinstance(record.get("recording"), dict):
        ref = RecordingRef.from_call_log(record, None)
        found[ref.recording_id] = ref
    for leg in record.get("legs") or []:
        if isinstance(leg, dict) and isinstance(leg.get("recording"), dict):
            ref = RecordingRef.from_call_log(record, leg)
            found.setdefault(ref.recording_id, ref)
    return list(found.values())


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
