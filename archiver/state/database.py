"""The SQLite connection under the state: transactions, error mapping, meta values (bringing an older
file to this schema is state/upgrade.py's job).

Every SQLite failure surfaces as a StateError with the fix, never as a traceback.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from archiver.errors import StateError
from archiver.models import format_time, parse_time
from archiver.state import upgrade
from archiver.state.copies import copy_database, open_read_only
from archiver.state.lock import _unusable

log = structlog.get_logger(__name__)

# writer_marks (not meta: a dry run leaves meta as it was): set while a writer has the state open (an
# unclean shutdown leaves it), and when the last quick_check passed.
OPEN_SINCE, CHECKED_AT = "writer_open_since", "quick_check_at"
QUICK_CHECK_EVERY = timedelta(days=7)


def _stamp() -> str:
    return format_time(datetime.now(UTC))


def _quick_check_when_due(db: sqlite3.Connection) -> bool:
    """PRAGMA quick_check reads the whole file (14.8 s cold at a million recordings), so a writer runs
    it only after an unclean shutdown (a kill, a crash: the writer's mark is still there) or when the
    last one is older than QUICK_CHECK_EVERY; `rc-archiver check` runs SQLite's full integrity_check.
    A file whose header is intact but whose pages are not then fails at the open, not mid-run; between
    checks, a damaged page fails the statement that reads it (exit 4, with the fix). Returns whether
    the file now counts as checked (a new file does)."""
    if int(db.execute("PRAGMA user_version").fetchone()[0]) == 0:
        return True  # a new file: nothing to check yet
    try:
        marks = dict(db.execute("SELECT name, value FROM writer_marks"))
    except sqlite3.OperationalError:  # a schema before issue 22: checked once, before migrating
        marks = {}
    last = marks.get(CHECKED_AT)
    due = OPEN_SINCE in marks or not last or parse_time(last) < datetime.now(UTC) - QUICK_CHECK_EVERY
    if not due:
        return False
    if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
        raise sqlite3.DatabaseError("quick_check failed")
    log.info("state_quick_check_ok", after="an unclean shutdown" if OPEN_SINCE in marks else "a week")
    return True


_MOVE_ASIDE = (
    "restore the last good backup (`rc-archiver state restore BACKUP`; it keeps the damaged file beside "
    "the state); with no backup, move the file aside and run again: a run on an empty state scans the "
    "whole source retention window and adopts what the destination already holds by key, size and sha256"
)


class Database:
    """Safe to call from worker threads: one connection, one lock."""

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        """Open (and create, and migrate) the state; `read_only` writes nothing at all: no file is
        created, no journal mode set, nothing migrated (an older schema is refused instead)."""
        self.path = path
        self._read_only = read_only
        self._lock = threading.RLock()
        self.pre_migration_snapshot: Path | None = None  # written before this open migrated the file
        try:
            if not read_only and not path.exists():
                # Created 0600 before SQLite opens it: the call records it holds are personal data.
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except OSError as exc:
            raise _unusable(path, exc) from None
        try:
            if read_only:
                self._db = open_read_only(path)
            else:
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            if not read_only:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL in WAL mode keeps every committed transaction across a process kill; only an
                # OS crash can lose the last few, and those steps are redone idempotently.
                self._db.execute("PRAGMA synchronous=NORMAL")
            if read_only:
                upgrade.require_current_schema(self._db, path)
            else:
                checked = _quick_check_when_due(self._db)
                self.pre_migration_snapshot = upgrade.migrate(self._db, path, self._tx, self._lock)
                if self.pre_migration_snapshot is not None:
                    upgrade.vacuum_when_mostly_free(self._db, self.vacuum)
                if checked:  # (or a new file: its first check is due in a week)
                    self._mark(CHECKED_AT, _stamp())
                self._mark(OPEN_SINCE, _stamp())  # cleared by close(): its absence is a clean shutdown
        except sqlite3.OperationalError as exc:
            raise StateError(
                f"state file {path} cannot be opened: {exc}",
                hint="check the file's permissions and that its file system is writable",
            ) from None
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {path} is corrupt: {exc}", hint=_MOVE_ASIDE) from None

    def close(self) -> None:
        with self._lock:
            self.mark_clean_shutdown()
            self._db.close()

    def mark_clean_shutdown(self) -> None:
        """This writer has written its last: a copy saved from here on (the S3-hosted state's final
        checkpoint) opens as a clean shutdown's, without the whole-file quick_check a crash's gets."""
        if not self._read_only:
            with self._lock, suppress(sqlite3.Error):  # a state already broken says so at its next open
                self._db.execute("DELETE FROM writer_marks WHERE name = ?", (OPEN_SINCE,))

    def _mark(self, name: str, value: str) -> None:
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO writer_marks (name, value) VALUES (?, ?)", (name, value))

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

    def vacuum(self) -> None:
        """Give the file's free pages back to the file system: SQLite rewrites the whole database (flat
        memory; free disk about its size; a kill during it loses nothing), then the WAL is emptied."""
        with self._lock, self._errors():
            free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
            self._db.execute("VACUUM")
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        log.info("state_vacuumed", freed_pages=free)

    @property
    def schema_version(self) -> int:
        row = self._one("PRAGMA user_version")
        return int(row[0]) if row else 0

    def snapshot(self, path: Path) -> None:
        """A consistent copy of the whole database (SQLite's backup API), safe while others write:
        one file, mode 0600, at a path that must not exist yet."""
        with self._lock, self._errors():
            copy_database(self._db, path)

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

    def apply_retention(self, retention: timedelta, batch: int = 20_000) -> None:
        """Recompute every deadline when RC_ARCHIVER_SOURCE_RETENTION changed since the last run: in
        transactions of `batch` rows by rowid (the journal and the lock stay small at a million rows);
        the new value is noted after the last, so a run killed midway recomputes them all again."""
        seconds = retention.total_seconds()  # fractional too: a dry run and a run must agree
        if self._meta("retention_seconds") == str(seconds):
            return
        after = 0
        while True:
            with self._tx() as db:
                row = db.execute(
                    "SELECT MAX(rowid) FROM "
                    "(SELECT rowid FROM recordings WHERE rowid > ? ORDER BY rowid LIMIT ?)",
                    (after, batch),
                ).fetchone()
                if row[0] is None:
                    break
                db.execute(
                    "UPDATE recordings SET deadline = strftime('%Y-%m-%dT%H:%M:%fZ', retention_start, ?) "
                    "WHERE rowid > ? AND rowid <= ?",
                    (f"+{seconds} seconds", after, row[0]),
                )
                after = int(row[0])
        self._set_meta("retention_seconds", str(seconds))
