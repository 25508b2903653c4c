"""Deletion at the source in the state: which archived recordings may be deleted, the journal of
DELETEs in flight (intents) and RingCentral's word that they are gone (archive/deletion.py drives it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

from archiver.models import format_time
from archiver.state.rows import RecordingRow, Rows
from archiver.state.schema import _now


class SourceDeletions(Rows):
    def deletable(self, archived_before: datetime, batch: int = 500) -> Iterator[RecordingRow]:
        """Archived at least RC_ARCHIVER_DELETE_AFTER ago, still held by RingCentral as far as we know,
        with no DELETE in flight: oldest archive first, by keyset on a partial index (flat memory).
        Proven or not: the caller re-proves what is not (deletion.py)."""
        cursor = ("", "")
        stamp = format_time(archived_before)
        while True:
            # INDEXED BY: the planner may prefer (status, deadline) and sort every batch in a temp B-tree.
            rows = self._query(
                "SELECT * FROM recordings INDEXED BY recordings_deletable "
                "WHERE status = 'archived' AND deleted_at IS NULL AND archived_at >= ? AND archived_at <= ? "
                "AND NOT (archived_at = ? AND recording_id <= ?) ORDER BY archived_at, recording_id LIMIT ?",
                (cursor[0], stamp, *cursor, batch),
            )
            if not rows:
                return
            for row in rows:
                if row["delete_intent"] is None:
                    yield self._row(row)
            cursor = (rows[-1]["archived_at"], rows[-1]["recording_id"])

    def intend_deletion(self, recording_ids: Sequence[str], run_id: str) -> None:
        """Journal a DELETE before it is sent: a run that finds the intent unsettled settles it."""
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET delete_intent = ? WHERE recording_id = ?",
                [(run_id, r) for r in recording_ids],
            )

    def clear_intent(self, recording_ids: Sequence[str]) -> None:
        """RingCentral still holds these: the DELETE did not happen (it is tried again later)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET delete_intent = NULL WHERE recording_id = ?",
                [(r,) for r in recording_ids],
            )

    def undelete(self, recording_ids: Sequence[str]) -> None:
        """RingCentral still serves recordings an older version recorded as deleted: archived, held at
        the source (and deletable again once proven)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET deleted_at = NULL, deleted_by = NULL, delete_intent = NULL, "
                "updated_at = ? WHERE recording_id = ?",
                [(_now(), r) for r in recording_ids],
            )

    def unsettled_intents(self, batch: int = 500) -> Iterator[RecordingRow]:
        """Recordings whose DELETE was sent (or about to be) and never confirmed either way, by id in
        batches (a partial index): one batch per killed run, but all of an older version's deletions
        after schema 4's migration, which may be most of a large state."""
        after = ""
        while True:
            rows = self._query(
                "SELECT * FROM recordings INDEXED BY recordings_intents WHERE delete_intent IS NOT NULL "
                "AND recording_id > ? ORDER BY recording_id LIMIT ?",
                (after, batch),
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            after = rows[-1]["recording_id"]

    def count_unsettled_intents(self) -> int:
        row = self._one(
            "SELECT COUNT(*) FROM recordings INDEXED BY recordings_intents WHERE delete_intent IS NOT NULL"
        )
        return int(row[0]) if row else 0

    def mark_deleted(self, recording_ids: Sequence[str], when: datetime, by: str) -> None:
        """Deleted at the source, on RingCentral's word: its DELETE answered success for these ids
        (`by` BY_US), or its content answered 404 when asked (BY_SOURCE, or BY_US when our DELETE
        was in flight). Owed to the manifest until the writer lists the `deleted` line."""
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET deleted_at = ?, deleted_by = ?, delete_intent = NULL, manifested = 0, "
                "updated_at = ? WHERE recording_id = ?",
                [(format_time(when), by, _now(), r) for r in recording_ids],
            )

    def deleted_ids(self, batch: int = 1000) -> Iterator[str]:
        """Every recording deleted at the source, by id (a partial index), in batches."""
        return self._ids_where("deleted_at IS NOT NULL", batch, index="recordings_deleted")
