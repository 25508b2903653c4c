"""Recording rows as the state hands them out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from archiver.models import parse_time
from archiver.ringcentral.calllog import FoundRecording
from archiver.state.database import Database
from archiver.state.schema import PROVEN

PENDING, ARCHIVED, FAILED, LOST = "pending", "archived", "failed", "lost"


@dataclass(frozen=True)
class RecordingRow:
    """A recording as the state knows it; `recording` carries the call-log fields (no raw JSON)."""

    recording: FoundRecording
    status: str
    attempts: int
    last_error: str | None
    key: str | None
    content_type: str | None
    size: int | None
    sha256: str | None
    deadline: datetime
    archived_at: datetime | None = None
    deleted_at: datetime | None = None
    force_upload: bool = False
    last_seen_run: str | None = None
    provenance: str | None = None  # schema.DOWNLOADED, REPROVED, ADOPTED or MIGRATED once archived
    deleted_by: str | None = None  # schema.BY_US or BY_SOURCE once deleted at the source
    delete_intent: str | None = None  # the run that journaled a DELETE not yet settled

    @property
    def proven(self) -> bool:
        """Its sha256 comes from a download of ours (or was reproduced by one): deletable."""
        return self.provenance in PROVEN

    @property
    def recording_id(self) -> str:
        return self.recording.recording_id


@dataclass(frozen=True)
class Seen:
    """What one call-log page added to a pass: recordings seen for the first time in this pass, and how
    many of those were archived already."""

    new_in_run: int
    already_archived: int


class Rows(Database):
    def _row(self, row: sqlite3.Row) -> RecordingRow:
        recording = FoundRecording(
            recording_id=row["recording_id"],
            content_uri=row["content_uri"],
            recording_type=row["recording_type"],
            call_id=row["call_id"],
            session_id=row["session_id"],
            telephony_session_id=row["telephony_session_id"],
            start=parse_time(row["start_time"]),
            call_start=parse_time(row["retention_start"]),
            duration=row["duration"],
            direction=row["direction"],
            from_number=row["from_number"],
            to_number=row["to_number"],
            from_name=row["from_name"],
            to_name=row["to_name"],
            extension_id=row["extension_id"],
            on_leg_only=bool(row["on_leg_only"]),
        )
        return RecordingRow(
            recording=recording,
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            key=row["key"],
            content_type=row["content_type"],
            size=row["size"],
            sha256=row["sha256"],
            deadline=parse_time(row["deadline"]),
            archived_at=parse_time(row["archived_at"]) if row["archived_at"] else None,
            deleted_at=parse_time(row["deleted_at"]) if row["deleted_at"] else None,
            force_upload=bool(row["force_upload"]),
            last_seen_run=row["last_seen_run"],
            provenance=row["provenance"],
            deleted_by=row["deleted_by"],
            delete_intent=row["delete_intent"],
        )

    def _select(
        self,
        condition: str,
        params: Sequence[object] = (),
        order: str = "start_time",
        limit: int | None = None,
    ) -> list[RecordingRow]:
        rows = self._query(
            f"SELECT * FROM recordings WHERE {condition} ORDER BY {order} LIMIT ?",  # noqa: S608 - fixed text
            (*params, -1 if limit is None else limit),
        )
        return [self._row(r) for r in rows]

    def _ids_where(self, condition: str, batch: int, index: str) -> Iterator[str]:
        """The ids of the rows matching `condition` (fixed text), in batches by keyset on `index`, a
        partial index on recording_id whose condition it is: each batch a range, flat memory however
        many match (named: the planner may prefer a status index and sort every batch)."""
        after = ""
        while True:
            rows = self._query(
                f"SELECT recording_id FROM recordings INDEXED BY {index} WHERE {condition} "  # noqa: S608
                "AND recording_id > ? "
                "ORDER BY recording_id LIMIT ?",
                (after, batch),
            )
            if not rows:
                return
            yield from (str(r[0]) for r in rows)
            after = str(rows[-1][0])
