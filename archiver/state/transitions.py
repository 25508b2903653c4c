"""A recording's transitions: archived, failed (exhausted), lost, requeued, deleted at the source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from archiver.models import format_time
from archiver.state.rows import FAILED, PENDING, RecordingRow, Rows
from archiver.state.schema import _now


class Transitions(Rows):
    # -- transitions --------------------------------------------------------------------------------
    def mark_archived(self, recording_id: str, key: str, content_type: str, size: int, sha256: str) -> None:
        """Archived; not yet listed in a manifest (the manifest writer marks that)."""
        now = _now()
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = 'archived', key = ?, content_type = ?, size = ?, sha256 = ?, "
                "last_error = NULL, next_attempt_at = NULL, force_upload = 0, archived_at = ?, "
                "updated_at = ?, manifested = 0 WHERE recording_id = ?",
                (key, content_type, size, sha256, now, now, recording_id),
            )

    def mark_manifested(self, recording_ids: Sequence[str]) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET manifested = 1 WHERE recording_id = ?", [(r,) for r in recording_ids]
            )

    def unmanifested(self) -> list[RecordingRow]:
        """Archived by a run that was killed before its manifest part was written."""
        return self._select("status = 'archived' AND manifested = 0")

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
                "last_error = ?, force_upload = ?, deleted_at = NULL, updated_at = ? WHERE recording_id = ?",
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
    def deletable(self, archived_before: datetime) -> list[RecordingRow]:
        """Archived at least RC_ARCHIVER_DELETE_AFTER ago and still held by RingCentral."""
        return self._select(
            "status = 'archived' AND deleted_at IS NULL AND archived_at <= ?",
            (format_time(archived_before),),
            order="archived_at",
        )

    def mark_deleted(self, recording_ids: Sequence[str], when: datetime) -> None:
        with self._tx() as db:
            db.executemany(
                "UPDATE recordings SET deleted_at = ?, updated_at = ? WHERE recording_id = ?",
                [(format_time(when), _now(), r) for r in recording_ids],
            )


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
