"""The state file: a SQLite database (WAL) that lets a run stop anywhere and the next carry on.

One row per recording, with the call-log fields the archive needs as columns (the raw record is kept
only for the sidecar) and its deletion deadline at RingCentral. A recording moves
    pending -> archived (-> deleted at the source, opt in)
    pending -> failed (attempts and the last error; still retried) -> archived
    pending | failed -> lost (its deadline passed, or RingCentral deleted it, before it was archived)
and is `exhausted` (a view, not a status) once it has failed RC_ARCHIVER_MAX_ATTEMPTS times: it is then
retried only every RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL. The scanned day slices, the runs, the
watermark, the manifest chain's head and the journal of multipart uploads live here too. Every
transition is committed as it happens, so a kill between two statements loses at most the step in
flight, which the next run redoes. Schema changes are numbered migrations keyed on PRAGMA user_version.

One run at a time per state file: an exclusive OS lock (flock) on `<state>.lock`, held for the run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.errors import LockHeld, StateError
from archiver.models import format_time, parse_time
from archiver.ringcentral.calllog import FoundRecording, recording_from

PENDING, ARCHIVED, FAILED, LOST = "pending", "archived", "failed", "lost"
DEFAULT_RETENTION = timedelta(days=90)
_MOVE_ASIDE = (
    "move it aside (or restore a backup) and run again: a run with an empty state finds what is already "
    "archived in the destination by key, size and sha256, so it costs lookups, not re-uploads"
)


def _v3_columns(db: sqlite3.Connection) -> None:
    """Schema 3: the call-log fields as columns, deadlines, lost, deletions, manifests, uploads."""
    db.execute("ALTER TABLE recordings RENAME TO recordings_v2")
    db.execute(
        """
        CREATE TABLE recordings (
            recording_id TEXT PRIMARY KEY,
            call_id TEXT NOT NULL,
            session_id TEXT NOT NULL DEFAULT '',
            telephony_session_id TEXT NOT NULL DEFAULT '',
            start_time TEXT NOT NULL,
            duration INTEGER NOT NULL DEFAULT 0,
            direction TEXT NOT NULL DEFAULT '',
            from_number TEXT NOT NULL DEFAULT '',
            to_number TEXT NOT NULL DEFAULT '',
            from_name TEXT NOT NULL DEFAULT '',
            to_name TEXT NOT NULL DEFAULT '',
            extension_id TEXT NOT NULL DEFAULT '',
            recording_type TEXT NOT NULL DEFAULT '',
            on_leg_only INTEGER NOT NULL DEFAULT 0,
            content_uri TEXT NOT NULL,
            deadline TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'archived', 'failed', 'lost')),
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            next_attempt_at TEXT,
            key TEXT,
            content_type TEXT,
            size INTEGER,
            sha256 TEXT,
            first_seen TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            archived_at TEXT,
            deleted_at TEXT,
            last_seen_run TEXT,
            manifested INTEGER NOT NULL DEFAULT 1,
            force_upload INTEGER NOT NULL DEFAULT 0,
            source_json TEXT NOT NULL
        )
        """
    )
    rows = db.execute("SELECT * FROM recordings_v2").fetchall()
    for row in rows:
        source = json.loads(row["source_json"])
        found = recording_from(source["record"], source["leg"])
        db.execute(
            _INSERT,
            (
                *_columns(found, DEFAULT_RETENTION),
                row["status"],
                row["attempts"],
                row["last_error"],
                row["key"],
                row["content_type"],
                row["size"],
                row["sha256"],
                row["first_seen"],
                row["updated_at"],
                row["archived_at"],
                row["force_upload"],
                row["source_json"],
            ),
        )
    db.execute("DROP TABLE recordings_v2")
    db.execute("CREATE INDEX recordings_due ON recordings (status, deadline)")
    db.execute("CREATE INDEX recordings_seen ON recordings (last_seen_run)")
    db.execute("CREATE INDEX recordings_start ON recordings (start_time)")
    db.execute("ALTER TABLE runs ADD COLUMN exit_code INTEGER")
    db.execute(
        "CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, key TEXT NOT NULL, started_at TEXT NOT NULL)"
    )


_FIELDS = (
    "recording_id, call_id, session_id, telephony_session_id, start_time, duration, direction, "
    "from_number, to_number, from_name, to_name, extension_id, recording_type, on_leg_only, content_uri, "
    "deadline"
)
_INSERT = (
    f"INSERT INTO recordings ({_FIELDS}, status, attempts, last_error, key, content_type, size, sha256, "  # noqa: S608
    "first_seen, updated_at, archived_at, force_upload, source_json) "
    "VALUES (" + ", ".join("?" * 28) + ")"
)

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None]] = [
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
    _v3_columns,
]
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> str:
    return format_time(datetime.now(UTC))


def _columns(found: FoundRecording, retention: timedelta) -> tuple[object, ...]:
    return (
        found.recording_id,
        found.call_id,
        found.session_id,
        found.telephony_session_id,
        format_time(found.start),
        found.duration,
        found.direction,
        found.from_number,
        found.to_number,
        found.from_name,
        found.to_name,
        found.extension_id,
        found.recording_type,
        int(found.on_leg_only),
        found.content_uri,
        format_time(found.start + retention),
    )


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

    @property
    def recording_id(self) -> str:
        return self.recording.recording_id


@dataclass(frozen=True)
class Seen:
    """What one call-log page added to a pass: recordings seen for the first time in this pass, and how
    many of those were archived already."""

    new_in_run: int
    already_archived: int


class FileLock:
    """An exclusive flock on a file beside the state; released on close or when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait_seconds: float = 0.0) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _unusable(self.path, exc) from None
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
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def held_by_another(self) -> bool:
        """True while some process holds the lock (for `status`: a live run, not a killed one)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _unusable(path: Path, exc: OSError) -> StateError:
    if exc.errno == errno.EROFS:
        why = "is on a read-only file system"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        why = "has a parent that is not a folder"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "is not writable by this user"
    else:
        why = f"cannot be used ({exc.strerror})"
    return StateError(
        f"state file {path} {why}",
        hint="point RC_ARCHIVER_STATE_PATH at a writable file (under systemd: StateDirectory=)",
    )


def lock_for(path: Path) -> FileLock:
    return FileLock(path.with_name(path.name + ".lock"))


def prepare_folder(path: Path) -> None:
    """Create the state file's folder (a run does this; `check` never does)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _unusable(path, exc) from None


class StateStore:
    """Intention-revealing operations over the state database; safe to call from worker threads.

    Every SQLite failure surfaces as a StateError with the fix, never as a traceback.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        try:
            if not read_only and not path.exists():
                # Created 0600 before SQLite opens it: the call records it holds are personal data.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise _unusable(path, exc) from None
        try:
            target = f"file:{path}?mode=ro" if read_only else str(path)
            self._db = sqlite3.connect(
                target, uri=read_only, check_same_thread=False, isolation_level=None, timeout=30
            )
            self._db.row_factory = sqlite3.Row
            if not read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode keeps every committed transaction across a process kill; only an
                # OS crash can lose the last few, and those steps are redone idempotently.
                self._db.execute("PRAGMA synchronous=NORMAL")
            # A file whose header is intact but whose pages are not fails here, not mid-run.
            if self._db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            if not read_only:
                self._migrate()
        except sqlite3.OperationalError as exc:
            raise StateError(
                f"state file {path} cannot be opened: {exc}",
                hint="check the file's permissions and that its file system is writable",
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {path} is corrupt: {exc}", hint=_MOVE_ASIDE) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            raise StateError(
                f"state file {self.path}: {exc}", hint="check the disk and the file's permissions"
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {self.path} is corrupt: {exc}", hint=_MOVE_ASIDE) from None

    def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]:
        with self._lock, self._errors():
            return self._db.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[object] = ()) -> sqlite3.Row | None:
        rows = self._query(sql, params)
        return rows[0] if rows else None

    def _migrate(self) -> None:
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StateError(
                f"state file {self.path} has schema {version}; this version knows up to {SCHEMA_VERSION}",
                hint="upgrade rc-archiver, or point RC_ARCHIVER_STATE_PATH at another file",
            )
        for number in range(version, SCHEMA_VERSION):
            with self._tx() as db:
                step = MIGRATIONS[number]
                if callable(step):
                    step(db)
                else:
                    for statement in step.split(";"):
                        if statement.strip():
                            db.execute(statement)
                db.execute(f"PRAGMA user_version = {number + 1}")

    @property
    def schema_version(self) -> int:
        row = self._one("PRAGMA user_version")
        return int(row[0]) if row else 0

    def snapshot(self, path: Path) -> None:
        """A consistent copy of the whole database (SQLite's backup API), safe while others write."""
        with self._lock, self._errors():
            target = sqlite3.connect(path)
            try:
                self._db.backup(target)
            finally:
                target.close()

    def integrity_ok(self) -> bool:
        row = self._one("PRAGMA integrity_check")
        return bool(row and row[0] == "ok")

    # -- meta ---------------------------------------------------------------------------------------
    def _meta(self, name: str) -> str | None:
        row = self._one("SELECT value FROM meta WHERE name = ?", (name,))
        return str(row[0]) if row else None

    def _set_meta(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO meta (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, value),
            )

    def meta_json(self, name: str) -> Any:
        """A JSON value kept between runs (the manifest head, the measured pace), or None."""
        raw = self._meta(name)
        return json.loads(raw) if raw else None

    def set_meta_json(self, name: str, value: Any) -> None:
        self._set_meta(name, json.dumps(value, sort_keys=True))

    def apply_retention(self, retention: timedelta) -> None:
        """Recompute every deadline when RC_ARCHIVER_SOURCE_RETENTION changed since the last run."""
        seconds = int(retention.total_seconds())
        if self._meta("retention_seconds") == str(seconds):
            return
        with self._tx() as db:
            db.execute(
                "UPDATE recordings SET deadline = strftime('%Y-%m-%dT%H:%M:%fZ', start_time, ?)",
                (f"+{seconds} seconds",),
            )
            db.execute(
                "INSERT INTO meta (name, value) VALUES ('retention_seconds', ?) "
                "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (str(seconds),),
            )

    # -- runs ---------------------------------------------------------------------------------------
    def begin_run(self, run_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO runs (run_id, started_at) VALUES (?, ?)", (run_id, _now()))

    def finish_run(self, run_id: str, outcome: str, exit_code: int, summary: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, exit_code = ?, summary_json = ? WHERE run_id = ?",
                (_now(), outcome, exit_code, json.dumps(summary), run_id),
            )

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        return [
            {**dict(row), "summary_json": None, "summary": json.loads(row["summary_json"] or "null")}
            for row in rows
        ]

    def last_success(self) -> datetime | None:
        """When the last run that archived everything it found ended."""
        row = self._one("SELECT MAX(ended_at) FROM runs WHERE outcome IN ('ok', 'complete')")
        return parse_time(row[0]) if row and row[0] else None

    # -- watermark and windows ----------------------------------------------------------------------
    def watermark(self) -> datetime | None:
        value = self._meta("watermark")
        return parse_time(value) if value else None

    def advance_watermark(self, until: datetime) -> None:
        """Moves forward only: a backfill of an old range never pulls the nightly window back."""
        current = self.watermark()
        if current is None or current < until:
            self._set_meta("watermark", format_time(until))

    def window_done(self, start: datetime, end: datetime) -> bool:
        found = self._one(
            "SELECT 1 FROM windows WHERE start = ? AND end = ?", (format_time(start), format_time(end))
        )
        return found is not None

    def mark_window_done(self, start: datetime, end: datetime, run_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO windows (start, end, scanned_at, run_id) VALUES (?, ?, ?, ?)",
                (format_time(start), format_time(end), _now(), run_id),
            )

    # -- recordings seen in the call log ------------------------------------------------------------
    def note_found(
        self, found: Iterable[FoundRecording], run_id: str, retention: timedelta = DEFAULT_RETENTION
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
                        f"INSERT INTO recordings ({_FIELDS}, status, first_seen, updated_at, last_seen_run, "  # noqa: S608
                        "source_json) VALUES (" + ", ".join("?" * 21) + ")",
                        (
                            *_columns(item, retention),
                            PENDING,
                            now,
                            now,
                            run_id,
                            json.dumps({"record": item.record, "leg": item.leg}),
                        ),
                    )
                    new_in_run += 1
                    continue
                if row["last_seen_run"] != run_id:
                    new_in_run += 1
                    already += row["status"] == ARCHIVED
                    db.execute(
                        "UPDATE recordings SET last_seen_run = ? WHERE recording_id = ?",
                        (run_id, item.recording_id),
                    )
        return Seen(new_in_run, already)

    def _row(self, row: sqlite3.Row) -> RecordingRow:
        recording = FoundRecording(
            recording_id=row["recording_id"],
            content_uri=row["content_uri"],
            recording_type=row["recording_type"],
            call_id=row["call_id"],
            session_id=row["session_id"],
            telephony_session_id=row["telephony_session_id"],
            start=parse_time(row["start_time"]),
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
        )

    def _select(
        self, condition: str, params: Sequence[object] = (), order: str = "start_time"
    ) -> list[RecordingRow]:
        rows = self._query(
            f"SELECT * FROM recordings WHERE {condition} ORDER BY {order}",  # noqa: S608 - fixed text
            params,
        )
        return [self._row(r) for r in rows]

    def get(self, recording_id: str) -> RecordingRow | None:
        rows = self._select("recording_id = ?", (recording_id,))
        return rows[0] if rows else None

    def source_of(self, recording_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """The raw call-log record (and leg) a recording came from: for its sidecar only."""
        row = self._one("SELECT source_json FROM recordings WHERE recording_id = ?", (recording_id,))
        source = json.loads(row[0]) if row else {}
        return source.get("record") or {}, source.get("leg")

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
        """Every archived recording's id, in batches."""
        after = ""
        while True:
            rows = self._query(
                "SELECT recording_id FROM recordings WHERE status = 'archived' AND recording_id > ? "
                "ORDER BY recording_id LIMIT ?",
                (after, batch),
            )
            if not rows:
                return
            yield from (str(r[0]) for r in rows)
            after = str(rows[-1][0])

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
            cursor = ("", "")
            side = "deadline < ?" if past else "deadline >= ?"
            while True:
                rows = self._query(
                    f"SELECT * FROM recordings WHERE {self._DUE} AND {side} "  # noqa: S608 - fixed text
                    "AND (deadline, recording_id) > (?, ?) ORDER BY deadline, recording_id LIMIT ?",
                    (max_attempts, stamp, stamp, *cursor, batch),
                )
                if not rows:
                    break
                for row in rows:
                    yield self._row(row)
                cursor = (rows[-1]["deadline"], rows[-1]["recording_id"])

    def due_deadlines(self, max_attempts: int, now: datetime) -> Iterator[datetime]:
        """The deadlines of the backlog in archive order (for the forecast), without whole rows."""
        stamp = format_time(now)
        with self._lock, self._errors():
            cursor = self._db.execute(
                f"SELECT deadline FROM recordings WHERE {self._DUE} ORDER BY deadline",  # noqa: S608
                (max_attempts, stamp),
            )
            rows = cursor.fetchall()
        for row in rows:
            yield parse_time(row[0])

    def count_due(self, max_attempts: int, now: datetime) -> int:
        sql = f"SELECT COUNT(*) FROM recordings WHERE {self._DUE}"  # noqa: S608 - fixed text
        row = self._one(sql, (max_attempts, format_time(now)))
        return int(row[0]) if row else 0

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

    # -- reports ------------------------------------------------------------------------------------
    def counts(self, max_attempts: int = 5) -> dict[str, int]:
        """Recordings by status; `exhausted` counts the unarchived ones past max_attempts (they are
        also counted as pending or failed), `deleted` the archived ones deleted at the source."""
        row = self._one(
            "SELECT "
            "SUM(status = 'pending'), SUM(status = 'archived'), SUM(status = 'failed'), "
            "SUM(status = 'lost'), SUM(status IN ('pending', 'failed') AND attempts >= ?), "
            "SUM(deleted_at IS NOT NULL) FROM recordings",
            (max_attempts,),
        )
        names = ("pending", "archived", "failed", "lost", "exhausted", "deleted")
        return {name: int((row[i] if row else 0) or 0) for i, name in enumerate(names)}

    def exhausted(self, max_attempts: int) -> list[RecordingRow]:
        """Failed max_attempts times: reported in every run, retried every retry interval."""
        return self._select("status IN ('pending', 'failed') AND attempts >= ?", (max_attempts,))

    def failed_rows(self, max_attempts: int) -> list[RecordingRow]:
        return self._select("status = 'failed' AND attempts < ?", (max_attempts,))

    def lost_rows(self) -> list[RecordingRow]:
        return self._select("status = 'lost'")

    def at_risk(self, older_than: datetime) -> list[RecordingRow]:
        """Not archived, and the call started before `older_than`: close to RingCentral's deletion."""
        return self._select("status IN ('pending', 'failed') AND start_time < ?", (format_time(older_than),))

    def oldest_unarchived(self) -> datetime | None:
        """Start of the oldest call whose recording is not archived yet (lost ones excluded)."""
        row = self._one("SELECT MIN(start_time) FROM recordings WHERE status IN ('pending', 'failed')")
        return parse_time(row[0]) if row and row[0] else None

    def held_at_source(self, now: datetime) -> int:
        """Recordings RingCentral should still hold (not deleted by us, deadline not passed): what
        counts toward its per-account cap."""
        row = self._one(
            "SELECT COUNT(*) FROM recordings WHERE deleted_at IS NULL AND status != 'lost' AND deadline > ?",
            (format_time(now),),
        )
        return int(row[0]) if row else 0
