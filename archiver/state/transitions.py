"""A recording's transitions: archived, failed (exhausted), lost, requeued; the multipart upload journal.
Deletion at the source has its own module (source_deletions.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from archiver.models import ArchivedObject, format_time
from archiver.state.rows import FAILED, PENDING, RecordingRow, Rows
from archiver.state.schema import DOWNLOADED, REPROVED, _now


class Transitions(Rows):
    # -- transitions --------------------------------------------------------------------------------
    def mark_archived(
        self, recording_id: str, archived: ArchivedObject, provenance: str = DOWNLOADED
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
                (
                    archived.key,
                    archived.content_type,
                    archived.size,
                    archived.sha256,
                    now,
                    now,
                    provenance,
                    recording_id,
                ),
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
