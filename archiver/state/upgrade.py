"""Bringing a state file written by an older version to this version's schema, and refusing one this
version cannot read: a snapshot first (what a rollback restores), then the migrations in order, long ones
in resumable batches (state/migrating.py); the schema version advances only with each finished step.

A reader never migrates: it refuses a state of another schema and says what to do.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from archiver.errors import StateError
from archiver.state import schema
from archiver.state.copies import beside, copy_database
from archiver.state.migrating import Chunked, Transaction, in_progress, run_chunked

log = structlog.get_logger(__name__)

MOSTLY_FREE = 0.25  # a migration that leaves more of the file free than this gives it back (VACUUM)


def _version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(path: Path, version: int) -> None:
    known = schema.SCHEMA_VERSION
    if version > known:
        raise StateError(
            f"state file {path} has schema {version}; this version knows up to {known}",
            hint="run the rc-archiver version that wrote it (or a newer one); to go back to this "
            "version, restore the snapshot the upgrade left beside the state: `rc-archiver state "
            f"restore {path}.pre-migration-v{known}-...`",
        )


def require_current_schema(db: sqlite3.Connection, path: Path) -> None:
    """For a reader: a state of another schema is refused, with what to do."""
    version = _version(db)
    refuse_newer(path, version)
    if version < schema.SCHEMA_VERSION:
        raise StateError(
            f"state file {path} has schema {version}; this version reads schema "
            f"{schema.SCHEMA_VERSION} only, and this command never migrates",
            hint="the next scheduled run of this version migrates it (after a snapshot beside it); to "
            "migrate now, `rc-archiver state migrate --wait-lock 600` (it queues behind a running run); "
            "or use the version that wrote it",
        )


def migrate(db: sqlite3.Connection, path: Path, tx: Transaction, lock: threading.RLock) -> Path | None:
    """Migrate the open state to this version's schema. Returns the snapshot taken before (or, when an
    interrupted migration resumes, the one its first attempt took), None when nothing was migrated."""
    version = _version(db)
    refuse_newer(path, version)
    snapshot = None
    resuming = in_progress(db)
    if resuming:  # the snapshot the first attempt took (beside the state) is the one to roll back to
        snapshot = _earlier_snapshot(path)
        log.info("state_migration_resuming", schema_from=version, rows_done=resuming, snapshot=str(snapshot))
    elif 0 < version < schema.SCHEMA_VERSION:  # 0 is a new, empty file: nothing to keep
        snapshot = _snapshot_before_migration(db, path, lock, version)
    for number in range(version, schema.SCHEMA_VERSION):
        step = schema.MIGRATIONS[number]
        if isinstance(step, Chunked):
            run_chunked(tx, number + 1, step)
            continue
        with tx() as conn:
            if callable(step):
                step(conn)
            else:
                for statement in step.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number + 1}")
    return snapshot


def vacuum_when_mostly_free(db: sqlite3.Connection, vacuum: Callable[[], None]) -> None:
    """A migration that rebuilt the recordings table leaves the old one's pages free (4 GB at a
    million recordings before schema 7): VACUUM gives them back to the file system. Flat memory;
    it needs free disk about the state's new size, and a kill during it loses nothing."""
    pages = int(db.execute("PRAGMA page_count").fetchone()[0])
    free = int(db.execute("PRAGMA freelist_count").fetchone()[0])
    if pages and free / pages > MOSTLY_FREE:
        vacuum()


def _earlier_snapshot(path: Path) -> Path | None:
    """The newest snapshot an interrupted migration took beside the state (None if moved away)."""
    taken = list(path.parent.glob(f"{path.name}.pre-migration-v*"))
    return max(taken, key=lambda p: p.stat().st_mtime) if taken else None


def _snapshot_before_migration(
    db: sqlite3.Connection, path: Path, lock: threading.RLock, version: int
) -> Path:
    """The state as the older version left it, beside it: what a rollback restores."""
    target = beside(path, f"pre-migration-v{version}")
    try:
        with lock:
            copy_database(db, target)
    except OSError as exc:
        raise StateError(
            f"state file {path}: cannot write the snapshot {target} before migrating: {exc.strerror}",
            hint="free space in the state's folder (the snapshot is about the state's size); nothing "
            "was migrated",
        ) from None
    log.info(
        "state_snapshot_before_migration",
        snapshot=str(target),
        schema_from=version,
        schema_to=schema.SCHEMA_VERSION,
        rollback=f"stop rc-archiver, install the older version, `rc-archiver state restore {target}`",
    )
    return target
