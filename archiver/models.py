"""Plain data passed between the parts of a run. No I/O here."""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

MAX_REPORTED_FAILURES = 100  # failures a run summary lists by name (the count is always whole)


def parse_time(value: str) -> datetime:
    """A RingCentral timestamp (ISO 8601, 'Z' or offset) as an aware UTC datetime."""
    text = value.strip()
    if text.endswith("z"):  # Python 3.11's fromisoformat reads 'Z' itself, not 'z'
        text = text[:-1] + "Z"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    # Already UTC (every time the state stores): no conversion; the state reads them by the million.
    return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)


def format_time(value: datetime) -> str:
    """UTC with milliseconds and a 'Z': the form RingCentral accepts even when not URL-encoded."""
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# -- a recording's fields, declared once ---------------------------------------------------------------
# Every other list of them is derived from `Recording` below: the state's columns and row mapping
# (state/columns.py), the key template's placeholders (keys.py), the key's values and the sidecar's fields
# (archive/layout.py). A field's metadata says where it goes beyond its column; a field without any goes
# everywhere, under its own name.
STORED_AS = "stored_as"  # its state column and sidecar field, when not the field's own name
PLACEHOLDER = "placeholder"  # the key template may name it: {<field name>}
SIDECAR = "sidecar"  # the sidecar written beside the audio carries it


def roles(*, stored_as: str | None = None, placeholder: bool = True, sidecar: bool = True) -> dict[str, Any]:
    """The metadata of a `Recording` field stored under another name, or kept out of the key or the
    sidecar: `field(metadata=roles(...))`."""
    return {STORED_AS: stored_as, PLACEHOLDER: placeholder, SIDECAR: sidecar}


def stored_name(recording_field: Field[Any]) -> str:
    """The state column (and sidecar field) of a Recording field."""
    return str(recording_field.metadata.get(STORED_AS) or recording_field.name)


def placeholder_names(cls: type[Recording]) -> tuple[str, ...]:
    """The fields of `cls` the key template may name, by field name."""
    return tuple(f.name for f in fields(cls) if f.metadata.get(PLACEHOLDER, True))


def sidecar_fields(cls: type[Recording]) -> tuple[Field[Any], ...]:
    """The fields of `cls` the sidecar carries (under their stored names)."""
    return tuple(f for f in fields(cls) if f.metadata.get(SIDECAR, True))


@dataclass(frozen=True)
class Recording:
    """One recording as the call log describes it: what the archive keys, stores and remembers.

    Built only by ringcentral/calllog.py (from the call log) and by the state (from its row), so always
    whole. What only the call log has (the raw record and leg, every party) travels beside it
    (calllog.Found). Adding a call-log field: a field here (with `field(metadata=roles(...))` if it
    keeps out of the key or the sidecar, or is stored under another name) and a migration adding its column.
    Types a column can hold: str, int, bool, datetime (state/columns.py encodes them).
    """

    recording_id: str
    content_uri: str = field(metadata=roles(placeholder=False, sidecar=False))
    recording_type: str = field(metadata=roles(placeholder=False))
    call_id: str
    session_id: str
    telephony_session_id: str
    start: datetime = field(metadata=roles(stored_as="start_time"))  # {start:<strftime>} in the key
    duration: int = field(metadata=roles(placeholder=False))
    direction: str
    from_number: str = field(metadata=roles(sidecar=False))  # the sidecar has the raw `from` and `to`
    to_number: str = field(metadata=roles(sidecar=False))
    from_name: str = field(metadata=roles(sidecar=False))
    to_name: str = field(metadata=roles(sidecar=False))
    extension_id: str = field(metadata=roles(sidecar=False))
    # The record's own `recording` is another one (or absent): this one exists only on a leg.
    on_leg_only: bool = field(metadata=roles(placeholder=False, sidecar=False))
    # What the deletion deadline is counted from: the earlier of the call's and the recording's start
    # (a leg's recording may start later, and RingCentral counts retention from the call).
    retention_start: datetime = field(metadata=roles(placeholder=False, sidecar=False))


@dataclass(frozen=True)
class ArchivedObject:
    """A recording's audio as stored in the destination: what the download produced, what "already
    stored?" found, what the sidecar, the state and the manifest record."""

    key: str
    content_type: str
    size: int
    sha256: str


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
