"""A recording's transitions: archived, failed (exhausted), lost, requeued, deleted at the source."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

from archiver.models import format_time
from archiver.state.rows import FAILED, PENDING, RecordingRow, Rows
from archiver.state.schema import DOWNLOADED, REPROVED, _now


class Transitions(Rows):
    # -- transitions --------------------------------------------------------------------------------
    def mark_archived(
        self,
        recording_id: str,
        key: str,
        content_type: str,
        size: int,
        sha256: str,
        provenance: str = DOWNLOADED,
    ) -> None:
        """Archived; not yet listed in a manifest or an index part (their writers mark that).
        `provenance` says where the sha256 came from (schema.DOWNLOADED, ADOPTED...): only proven rows
        are deletable."""
        now = _now()
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = 'archived', key = ?, content_type = ?, size = ?, sha256 = ?, "
                "last_error = NULL, next_attempt_at = NULL, force_upload = 0, archived_at = ?, "
                "updated_at = ?, manifested = 0, provenance = ? WHERE recording_id = ?",
                (key, content_type, size, sha256, now, now, provenance, recording_id),
            )
            db.execute("INSERT OR IGNORE INTO index_owed (recording_id) VALUES (?)", (recording_id,))

    def mark_reproved(self, recording_id: str) -> None:
        """A fresh download reproduced the archived sha256 of an adopted or migrated row."""
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET provenance = ?, updated_at = ? WHERE recording_id = ?",
                (REPROVED, _now(), recording_id),
            )

    def mark_manifested(self, recording_ids: Sequence[str]) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET manifested = 1 WHERE recording_id = ?", [(r,) for r in recording_ids]
            )

    def unmanifested(self) -> list[RecordingRow]:
        """Archived by a run that was killed before its manifest part was written: at most that run's
        rows, read from their partial index (the planner would walk every archived row otherwise)."""
        rows = self._query(
            "SELECT * FROM recordings INDEXED BY recordings_unmanifested "
            "WHERE status = 'archived' AND manifested = 0 ORDER BY recording_id"
        )
        return [self._row(r) for r in rows]

    def record_failure(
        self,
        recording_id: str,
        reason: str,
        *,
        still_pending: bool = False,
        max_attempts: int = 5,
        retry_interval: timedelta = timedelta(hours=24),
    ) -> int:
        """Count a failed attempt with its reason; returns the attempts so far. Past max_attempts the
        recording is exhausted: still retried, but only every `retry_interval`."""
        later = format_time(datetime.now(UTC) + retry_interval)
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = ?, attempts = attempts + 1, last_error = ?, updated_at = ?, "
                "next_attempt_at = CASE WHEN attempts + 1 >= ? THEN ? ELSE NULL END WHERE recording_id = ?",
                (
                    PENDING if still_pending else FAILED,
                    reason[:1000],
                    _now(),
                    max_attempts,
                    later,
                    recording_id,
                ),
            )
            row = db.execute(
                "SELECT attempts FROM recordings WHERE recording_id = ?", (recording_id,)
            ).fetchone()
        return int(row["attempts"]) if row else 0

    def mark_lost(self, recording_id: str, reason: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = 'lost', last_error = ?, updated_at = ? "
                "WHERE recording_id = ?",
                (reason[:1000], _now(), recording_id),
            )

    def requeue(self, recording_id: str, reason: str, *, force_upload: bool = False) -> None:
        """Make a recording due again (operator repair): pending, attempts reset, reason kept."""
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = 'pending', attempts = 0, next_attempt_at = NULL, "
                "last_error = ?, force_upload = ?, deleted_at = NULL, deleted_by = NULL, "
                "delete_intent = NULL, provenance = NULL, updated_at = ? WHERE recording_id = ?",
                (reason[:1000], int(force_upload), _now(), recording_id),
            )

    def retry(self, recording_ids: Sequence[str] | None) -> int:
        """`rc-archiver retry`: reset the attempts of the given (or all) unarchived recordings."""
        condition = "status IN ('pending', 'failed', 'lost') AND deleted_at IS NULL"
        with self._tx() as db:
            if recording_ids is None:
                cursor = db.execute(
                    f"UPDATE recordings SET status = 'pending', attempts = 0, next_attempt_at = NULL "  # noqa: S608
                    f"WHERE {condition} AND (attempts > 0 OR status = 'lost')"
                )
                return cursor.rowcount
            changed = 0
            for recording_id in recording_ids:
                cursor = db.execute(
                    f"UPDATE recordings SET status = 'pending', attempts = 0, next_attempt_at = NULL "  # noqa: S608
                    f"WHERE {condition} AND recording_id = ?",
                    (recording_id,),
                )
                changed += cursor.rowcount
            return changed

    # -- deletion at the source ---------------------------------------------------------------------
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


class Uploads(Rows):
    # -- the multipart upload journal (destinations.base.UploadJournal) ------------------------------
    def upload_started(self, key: str, upload_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO uploads (upload_id, key, started_at) VALUES (?, ?, ?)",
                (upload_id, key, _now()),
            )

    def upload_ended(self, upload_id: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))

    def unended_uploads(self) -> list[tuple[str, str]]:
        return [(r["key"], r["upload_id"]) for r in self._query("SELECT key, upload_id FROM uploads")]
