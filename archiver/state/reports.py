"""What `status`, the metrics and the forecast read from the state."""

from __future__ import annotations

from datetime import datetime

from archiver.models import format_time, parse_time
from archiver.state.rows import RecordingRow, Rows
from archiver.state.schema import PROVEN

# At risk: not archived, and its deletion deadline (call start + retention, kept per recording) falls
# before a time (now + RC_ARCHIVER_RISK_WINDOW). The condition is the index recordings_due
# (status, deadline): one range per status, never a scan of the whole table.
_AT_RISK = "status IN ('pending', 'failed') AND deadline < ?"


class Reports(Rows):
    # -- reports ------------------------------------------------------------------------------------
    def counts(self, max_attempts: int = 5) -> dict[str, int]:
        """Recordings by status, each counted once: `pending` and `failed` are those still within
        max_attempts, `exhausted` those past it; `deleted` counts the archived ones deleted at the source
        (they are archived too); `unproven` the archived ones still held at the source whose sha256 is
        not (yet) our own download's: adopted or migrated, re-proved before any deletion."""
        # From the tally the triggers keep (state/indexes.py): a few dozen rows, whatever the size.
        row = self._one(
            "SELECT "
            "SUM(n * (status = 'pending' AND attempts < ?1)), SUM(n * (status = 'archived')), "
            "SUM(n * (status = 'failed' AND attempts < ?1)), SUM(n * (status = 'lost')), "
            "SUM(n * (status IN ('pending', 'failed') AND attempts >= ?1)), SUM(n * deleted), "
            "SUM(n * (status = 'archived' AND NOT deleted AND provenance NOT IN (?2, ?3))) "
            "FROM recording_tally",
            (max_attempts, *PROVEN),
        )
        names = ("pending", "archived", "failed", "lost", "exhausted", "deleted", "unproven")
        return {name: int((row[i] if row else 0) or 0) for i, name in enumerate(names)}

    # The lists below take a `limit` (status shows the first few and how many more: counts() and
    # count_at_risk() say how many); None lists them all.
    def exhausted(self, max_attempts: int, limit: int | None = None) -> list[RecordingRow]:
        """Failed max_attempts times: reported in every run, retried every retry interval."""
        return self._select("status IN ('pending', 'failed') AND attempts >= ?", (max_attempts,), limit=limit)

    def failed_rows(self, max_attempts: int, limit: int | None = None) -> list[RecordingRow]:
        return self._select("status = 'failed' AND attempts < ?", (max_attempts,), limit=limit)

    def lost_rows(self, limit: int | None = None) -> list[RecordingRow]:
        return self._select("status = 'lost'", limit=limit)

    def at_risk(self, deadline_before: datetime, limit: int | None = None) -> list[RecordingRow]:
        """Not archived, and RingCentral deletes it before `deadline_before`: soonest deadline first."""
        return self._select(
            _AT_RISK, (format_time(deadline_before),), order="deadline, recording_id", limit=limit
        )

    def count_at_risk(self, deadline_before: datetime) -> int:
        row = self._one(
            f"SELECT COUNT(*) FROM recordings WHERE {_AT_RISK}",  # noqa: S608 - fixed text
            (format_time(deadline_before),),
        )
        return int(row[0]) if row else 0

    def oldest_unarchived(self) -> datetime | None:
        """Start of the oldest call whose recording is not archived yet (lost ones excluded): the
        backlog (never deleted at the source), from its covering index."""
        row = self._one(
            "SELECT MIN(start_time) FROM recordings INDEXED BY recordings_backlog "
            "WHERE status IN ('pending', 'failed') AND deleted_at IS NULL"
        )
        return parse_time(row[0]) if row and row[0] else None

    def held_at_source(self, now: datetime) -> int:
        """Recordings RingCentral should still hold (not deleted by us, deadline not passed): what
        counts toward its per-account cap."""
        row = self._one(  # a range of the covering recordings_held, never the rows
            "SELECT COUNT(*) FROM recordings INDEXED BY recordings_held "
            "WHERE deleted_at IS NULL AND status != 'lost' AND deadline > ?",
            (format_time(now),),
        )
        return int(row[0]) if row else 0
