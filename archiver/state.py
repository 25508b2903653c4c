"""The state file: a SQLite database (WAL) that lets a run stop anywhere and the next carry on.

One row per recording (pending -> archived, or failed with attempts and the last error), the
scanned day slices, the runs and the watermark. Every transition is committed as it happens, so a
kill between two statements loses at most the step in flight, which the next run redoes. Schema
changes are numbered migrations keyed on PRAGMA user_version.

One run at a time per state file: an exclusive OS lock (flock) on `<state>.lock`, held for the run.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archiver.errors import LockHeld, StateError
from archiver.models import format_time, parse_time
from archiver.ringcentral.calllog import FoundRecording, recording_from

PENDING, ARCHIVED, FAILED = "pending", "archived", "failed"

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE recordings (
        recording_id TEXT PRIMARY KEY,
        call_id TEXT NOT NULL,
        start_time TEXT NOT NULL,
        content_uri TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'archived', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        key TEXT,
        content_type TEXT,
        size INTEGER,
        sha256 TEXT,
        first_seen TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        archived_at TEXT,
        source_json TEXT NOT NULL
    );
    CREATE INDEX recordings_status ON recordings (status, start_time);
    CREATE TABLE windows (
        start TEXT NOT NULL,
        end TEXT NOT NULL,
        scanned_at TEXT NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (start, end)
    );
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        ended_at TEXT,
        outcome TEXT,
        summary_json TEXT
    );
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    # 2: `verify --repair` forces a new upload even where an object (found corrupt) exists
    """
    ALTER TABLE recordings ADD COLUMN force_upload INTEGER NOT NULL DEFAULT 0;
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> str:
    return format_time(datetime.now(UTC))


@dataclass(frozen=True)
class RecordingRow:
    recording_id: str
    status: str
    attempts: int
    last_error: str | None
    key: str | None
    content_type: str | None
    size: int | None
    sha256: str | None
    start_time: str
    ref: FoundRecording
    force_upload: bool = False


class FileLock:
    """An exclusive flock on a file beside the state; released on close or when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait_seconds: float = 0.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeld(
                        f"another run holds the lock on {self.path}",
                        hint="wait for it to finish, or pass --wait-lock SECONDS to wait for it",
                    ) from None
                sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class StateStore:
    """Intention-revealing operations over the state database; safe to call from worker threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Created 0600 before SQLite opens it: the call records it holds are personal data.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode keeps every committed transaction across a process kill; only an
            # OS crash can lose the last few, and those steps are redone idempotently.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StateError(
                f"state file {path} is unusable: {exc}",
                hint="restore it from a backup or move it aside; a run with an empty state re-finds archived "
                "recordings in the destination without uploading them again",
            ) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state file {self.path} has schema {version}; this version knows up to {SCHEMA_VERSION}",
                hint="upgrade rc-archiver, or point RC_ARCHIVER_STATE_PATH at another file",
            )
        for number in range(version, SCHEMA_VERSION):
            with self._tx() as db:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def snapshot(self, path: Path) -> None:
        """A consistent copy of the whole database (SQLite's backup API), safe while others write."""
        with self._lock:
            target = sqlite3.connect(path)
            try:
                self._db.backup(target)
            finally:
                target.close()

    def integrity_ok(self) -> bool:
        with self._lock:
            return bool(self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")

    # -- runs ---------------------------------------------------------------------------------------
    def begin_run(self, run_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO runs (run_id, started_at) VALUES (?, ?)", (run_id, _now()))

    def finish_run(self, run_id: str, outcome: str, summary: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, summary_json = ? WHERE run_id = ?",
                (_now(), outcome, json.dumps(summary), run_id),
            )

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [
            {**dict(row), "summary_json": None, "summary": json.loads(row["summary_json"] or "null")}
            for row in rows
        ]

    # -- watermark and windows ----------------------------------------------------------------------
    def watermark(self) -> datetime | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE name = 'watermark'").fetchone()
        return parse_time(row[0]) if row else None

    def advance_watermark(self, until: datetime) -> None:
        """Moves forward only: a backfill of an old range never pulls the nightly window back."""
        current = self.watermark()
        if current is not None and current >= until:
            return
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('watermark', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (format_time(until),),
            )

    def window_done(self, start: datetime, end: datetime) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM windows WHERE start = ? AND end = ?", (format_time(start), format_time(end))
            ).fetchone()
        return row is not None

    def mark_window_done(self, start: datetime, end: datetime, run_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO windows (start, end, scanned_at, run_id) VALUES (?, ?, ?, ?)",
                (format_time(start), format_time(end), _now(), run_id),
            )

    # -- recordings ---------------------------------------------------------------------------------
    def note_found(self, refs: list[FoundRecording]) -> dict[str, str]:
        """Record recordings seen in the call log (one transaction); returns each one's status."""
        now = _now()
        statuses: dict[str, str] = {}
        with self._tx() as db:
            for ref in refs:
                row = db.execute(
                    "SELECT status FROM recordings WHERE recording_id = ?", (ref.recording_id,)
                ).fetchone()
                if row is not None:
                    statuses[ref.recording_id] = str(row["status"])
                    continue
                db.execute(
                    "INSERT INTO recordings (recording_id, call_id, start_time, content_uri, status, "
                    "first_seen, updated_at, source_json) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
                    (
                        ref.recording_id,
                        ref.call_id,
                        format_time(ref.start),
                        ref.content_uri,
                        now,
                        now,
                        json.dumps({"record": ref.record, "leg": ref.leg}),
                    ),
                )
                statuses[ref.recording_id] = PENDING
        return statuses

    def _row(self, row: sqlite3.Row) -> RecordingRow:
        source = json.loads(row["source_json"])
        return RecordingRow(
            recording_id=row["recording_id"],
            status=row["status"],
            attempts=row["attempts"],
            last_error=row["last_error"],
            key=row["key"],
            content_type=row["content_type"],
            size=row["size"],
            sha256=row["sha256"],
            start_time=row["start_time"],
            ref=recording_from(source["record"], source["leg"]),
            force_upload=bool(row["force_upload"]),
        )

    def _select(self, condition: str, params: tuple[object, ...] = ()) -> list[RecordingRow]:
        """Recordings matching an SQL condition, oldest call first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT * FROM recordings WHERE {condition} ORDER BY start_time",  # noqa: S608 - fixed text
                params,
            ).fetchall()
        return [self._row(r) for r in rows]

    def get(self, recording_id: str) -> RecordingRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT * FROM recordings WHERE recording_id = ?", (recording_id,)
            ).fetchone()
        return self._row(row) if row else None

    def due(
        self, max_attempts: int, start: datetime | None = None, end: datetime | None = None
    ) -> list[RecordingRow]:
        """Recordings to (re)try: pending, or failed fewer than max_attempts times; oldest first.
        With start/end, only those whose call started in [start, end) (one day slice)."""
        if start is not None and end is not None:
            return self._select(
                "status != 'archived' AND attempts < ? AND start_time >= ? AND start_time < ?",
                (max_attempts, format_time(start), format_time(end)),
            )
        return self._select("status != 'archived' AND attempts < ?", (max_attempts,))

    def exhausted(self, max_attempts: int) -> list[RecordingRow]:
        """Recordings that failed max_attempts times: reported in every run until fixed or cleared."""
        return self._select("status != 'archived' AND attempts >= ?", (max_attempts,))

    def mark_archived(self, recording_id: str, key: str, content_type: str, size: int, sha256: str) -> None:
        now = _now()
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = 'archived', key = ?, content_type = ?, size = ?, sha256 = ?, "
                "last_error = NULL, force_upload = 0, archived_at = ?, updated_at = ? WHERE recording_id = ?",
                (key, content_type, size, sha256, now, now, recording_id),
            )

    def record_failure(self, recording_id: str, reason: str, *, still_pending: bool = False) -> int:
        """Count a failed attempt with its reason; returns the attempts so far."""
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = ?, attempts = attempts + 1, last_error = ?, updated_at = ? "
                "WHERE recording_id = ?",
                (PENDING if still_pending else FAILED, reason[:1000], _now(), recording_id),
            )
            row = db.execute(
                "SELECT attempts FROM recordings WHERE recording_id = ?", (recording_id,)
            ).fetchone()
        return int(row["attempts"]) if row else 0

    def requeue(self, recording_id: str, reason: str, *, force_upload: bool = False) -> None:
        """Make a recording due again (operator repair): pending, attempts reset, reason kept."""
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET status = 'pending', attempts = 0, last_error = ?, force_upload = ?, "
                "updated_at = ? WHERE recording_id = ?",
                (reason[:1000], int(force_upload), _now(), recording_id),
            )

    def at_risk(self, older_than: datetime) -> list[RecordingRow]:
        """Not archived, and the call started before `older_than`: close to RingCentral's deletion."""
        return self._select("status != 'archived' AND start_time < ?", (format_time(older_than),))

    def last_success(self) -> datetime | None:
        """When the last run that archived everything it found ended."""
        with self._lock:
            row = self._db.execute(
                "SELECT ended_at FROM runs WHERE outcome = 'complete' ORDER BY ended_at DESC LIMIT 1"
            ).fetchone()
        return parse_time(row[0]) if row else None

    def oldest_unarchived(self) -> datetime | None:
        """Start of the oldest call whose recording is not archived yet."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(start_time) FROM recordings WHERE status != 'archived'"
            ).fetchone()
        return parse_time(row[0]) if row and row[0] else None

    def failed_rows(self) -> list[RecordingRow]:
        return self._select("status = 'failed'")

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM recordings GROUP BY status").fetchall()
        out = {PENDING: 0, ARCHIVED: 0, FAILED: 0}
        out.update({r["status"]: int(r["n"]) for r in rows})
        return out
