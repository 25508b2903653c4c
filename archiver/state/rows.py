"""Recording rows as the state hands them out."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from archiver.models import ArchivedObject, Recording, parse_time
from archiver.state.columns import recording_of
from archiver.state.database import Database
from archiver.state.schema import PROVEN

PENDING, ARCHIVED, FAILED, LOST = "pending", "archived", "failed", "lost"


@dataclass(frozen=True)
class RecordingRow:
    """A recording as the state knows it: its call-log fields (no raw JSON: Recordings.source_of has
    it), where it stands, and once archived, its object."""

    recording: Recording
    status: str
    attempts: int
    last_error: str | None
    archived: ArchivedObject | None  # kept once deleted at the source: the archive is the only copy
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

    # The archived object's facts, None before it is archived: what most readers of a row ask.
    @property
    def key(self) -> str | None:
        return self.archived.key if self.archived else None

    @property
    def content_type(self) -> str | None:
        return self.archived.content_type if self.archived else None

    @property
    def size(self) -> int | None:
        return self.archived.size if self.archived else None

    @property
    def sha256(self) -> str | None:
        return self.archived.sha256 if self.archived else None


@dataclass(frozen=True)
class Seen:
    """What one call-log page added to a pass: recordings seen for the first time in this pass, and how
    many of those were archived already."""

    new_in_run: int
    already_archived: int


def _archived(row: sqlite3.Row) -> ArchivedObject | None:
    """The row's object: its four columns are written together (Transitions.mark_archived)."""
    if row["key"] is None or row["size"] is None or row["sha256"] is None:
        return None
    return ArchivedObject(row["key"], row["content_type"] or "", row["size"], row["sha256"])


class Rows(Database):
    def _row(self, row: sqlite3.Row) -> RecordingRow:
        return RecordingRow(
            recording=recording_of(row),
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            archived=_archived(row),
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
