"""Recordings seen in the call log, and what to archive next (earliest deletion deadline first)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from archiver.models import format_time, parse_time
from archiver.ringcentral.calllog import Found
from archiver.state.columns import RECORDING_COLUMNS, insert_sql, values
from archiver.state.party_tables import note_parties
from archiver.state.rows import ARCHIVED, PENDING, RecordingRow, Rows, Seen
from archiver.state.schema import DEFAULT_RETENTION, _now
from archiver.state.sources import note_source, source_of

EXACT_AHEAD = timedelta(hours=1)  # the forecast's histogram is exact this far ahead, by the minute beyond
# A new row: the recording's columns (state/columns.py), then the row's own; the raw call-log record
# goes to recording_sources (state/sources.py), out of the row every walk reads.
_NEW_ROW = insert_sql((*RECORDING_COLUMNS, "status", "first_seen", "updated_at", "last_seen_run"))


class Recordings(Rows):
    # -- recordings seen in the call log ------------------------------------------------------------
    def note_found(
        self, found: Iterable[Found], run_id: str, retention: timedelta = DEFAULT_RETENTION
    ) -> Seen:
        """Record recordings seen in the call log (one transaction) and mark them seen by `run_id`."""
        now = _now()
        new_in_run = already = 0
        with self._tx() as db:
            for item in found:
                row = db.execute(
                    "SELECT status, last_seen_run FROM recordings WHERE recording_id = ?",
                    (item.recording_id,),
                ).fetchone()
                if row is None:
                    db.execute(
                        _NEW_ROW,
                        (
                            *values(item.recording, retention),
                            PENDING,
                            now,
                            now,
                            run_id,
                        ),
                    )
                    note_source(db, item.recording_id, item.record, item.leg)
                    note_parties(db, item.recording_id, item.parties)  # issue 20: find by party
                    new_in_run += 1
                    continue
                note_parties(db, item.recording_id, item.parties)  # another record of the call may add some
                if row["last_seen_run"] != run_id:
                    new_in_run += 1
                    already += row["status"] == ARCHIVED
                    db.execute(
                        "UPDATE recordings SET last_seen_run = ? WHERE recording_id = ?",
                        (run_id, item.recording_id),
                    )
        return Seen(new_in_run, already)

    def get(self, recording_id: str) -> RecordingRow | None:
        rows = self._select("recording_id = ?", (recording_id,))
        return rows[0] if rows else None

    def source_of(self, recording_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The raw call-log record (and leg) a recording came from: for its sidecar only (({}, None)
        once `state compact` dropped it: the sidecar has it)."""
        with self._lock, self._errors():
            return source_of(self._db, recording_id)

    def seen_in(self, run_id: str, batch: int = 500) -> Iterator[RecordingRow]:
        """Every recording the pass `run_id` saw in the call log, in batches (flat memory)."""
        after = ""
        while True:
            rows = [
                self._row(r)
                for r in self._query(
                    "SELECT * FROM recordings WHERE last_seen_run = ? AND recording_id > ? "
                    "ORDER BY recording_id LIMIT ?",
                    (run_id, after, batch),
                )
            ]
            if not rows:
                return
            yield from rows
            after = rows[-1].recording_id

    def archived_ids(self, batch: int = 1000) -> Iterator[str]:
        """Every archived recording's id, in batches (a range of a partial index each)."""
        return self._ids_where("status = 'archived'", batch, index="recordings_archived")

    def archive_in(
        self, start: datetime, end: datetime, skip_run: str, batch: int = 500
    ) -> Iterator[RecordingRow]:
        """Recordings archived or deleted at the source whose call started in [start, end), except those
        the pass `skip_run` saw (verify checks those already): by keyset on (start_time, recording_id)."""
        low, high, cursor = format_time(start), format_time(end), ("", "")
        while True:
            rows = self._query(
                "SELECT * FROM recordings WHERE start_time >= ? AND start_time < ? "
                "AND NOT (start_time = ? AND recording_id <= ?) "
                "AND (status = 'archived' OR deleted_at IS NOT NULL) AND last_seen_run IS NOT ? "
                "ORDER BY start_time, recording_id LIMIT ?",
                (max(low, cursor[0]), high, *cursor, skip_run, batch),
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            cursor = (rows[-1]["start_time"], rows[-1]["recording_id"])

    def deleted_outside(
        self, start: datetime, end: datetime, skip_run: str, batch: int = 500
    ) -> Iterator[RecordingRow]:
        """Recordings deleted at the source whose call started outside [start, end), except those the
        pass `skip_run` saw: their archive is the only copy, so verify checks them whatever its range
        (by keyset on a partial index)."""
        low, high, after = format_time(start), format_time(end), ""
        while True:
            rows = self._query(
                "SELECT * FROM recordings WHERE deleted_at IS NOT NULL AND recording_id > ? "
                "AND (start_time < ? OR start_time >= ?) AND last_seen_run IS NOT ? "
                "ORDER BY recording_id LIMIT ?",
                (after, low, high, skip_run, batch),
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            after = rows[-1]["recording_id"]

    # -- what to archive ----------------------------------------------------------------------------
    _DUE = (
        "status IN ('pending', 'failed') AND deleted_at IS NULL "
        "AND (attempts < ? OR next_attempt_at IS NULL OR next_attempt_at <= ?)"
    )

    def due(self, max_attempts: int, now: datetime, batch: int = 500) -> Iterator[RecordingRow]:
        """Recordings to (re)try, earliest deletion deadline first; those whose deadline has already
        passed come last (RingCentral may still hold them, but they must not take a live one's turn).
        Read in batches by keyset, so memory stays flat however long the backlog is."""
        stamp = format_time(now)
        for past in (False, True):
            # The cursor is the index range's lower bound: (stamp, '') starts the live side at its
            # first deadline >= now (no id is empty); the past side starts at the beginning and ends
            # below now. Each batch is then one range of recordings_backlog, never a re-read.
            cursor, bound = (("", ""), (stamp,)) if past else ((stamp, ""), ())
            below = "AND deadline < ?" if past else ""
            while True:
                rows = self._query(
                    f"SELECT * FROM recordings INDEXED BY recordings_backlog WHERE {self._DUE} {below} "  # noqa: S608
                    "AND (deadline, recording_id) > (?, ?) ORDER BY deadline, recording_id LIMIT ?",
                    (max_attempts, stamp, *bound, *cursor, batch),
                )
                if not rows:
                    break
                for row in rows:
                    yield self._row(row)
                cursor = (rows[-1]["deadline"], rows[-1]["recording_id"])

    def due_deadlines(self, max_attempts: int, now: datetime) -> list[tuple[datetime, int]]:
        """The backlog's deadlines for the forecast as a histogram, earliest first: (a deadline, how
        many recordings have it). Exact for the next hour (where a second decides what is saved);
        beyond it by the minute, at each minute's earliest deadline (pessimistic by under a minute an
        hour or more ahead); every passed one in one bucket (all lost). Read from the covering
        recordings_backlog: its size is the minutes the backlog spans, not its million rows."""
        stamp = format_time(now)
        rows = self._query(
            "SELECT MIN(deadline), COUNT(*) FROM recordings INDEXED BY recordings_backlog "  # noqa: S608
            f"WHERE {self._DUE} GROUP BY CASE WHEN deadline <= ? THEN '' WHEN deadline < ? THEN deadline "
            "ELSE substr(deadline, 1, 16) END ORDER BY 1",
            (max_attempts, stamp, stamp, format_time(now + EXACT_AHEAD)),
        )
        return [(parse_time(row[0]), int(row[1])) for row in rows]

    def count_due(self, max_attempts: int, now: datetime) -> int:
        sql = f"SELECT COUNT(*) FROM recordings INDEXED BY recordings_backlog WHERE {self._DUE}"  # noqa: S608
        row = self._one(sql, (max_attempts, format_time(now)))
        return int(row[0]) if row else 0
