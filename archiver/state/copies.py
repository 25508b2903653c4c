"""Consistent, private copies of a state database: backups, pre-migration snapshots, restores.

Every copy goes through SQLite's online backup API in one step, which reads the whole database inside
one read transaction: a copy taken while a run writes is the state as of one commit, never a mix.
Copies are created 0600 (they hold the same personal data as the state) and written as a single,
self-contained file (rollback journal mode, no -wal beside it), so they can be moved, uploaded or
restored as one file.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

# The tables every rc-archiver state has had since schema 1: what tells a state from any SQLite file.
STATE_TABLES = frozenset({"recordings", "windows", "runs", "meta"})


def stamp(now: datetime | None = None) -> str:
    """A UTC time for file names: 20261128T020000Z (sorts by time, no characters a shell minds)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def beside(path: Path, label: str) -> Path:
    """`<path>.<label>-<stamp>`, next to the path, with -2, -3... when that name is taken."""
    base = path.with_name(f"{path.name}.{label}-{stamp()}")
    candidate, number = base, 1
    while candidate.exists() or Path(f"{candidate}-wal").exists():
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def read_only_uri(path: Path) -> str:
    """The URI that opens a state without writing anything, not even beside it.

    A read-only connection to a WAL database creates `-wal` and `-shm` files when they are missing (and,
    read-only, cannot remove them): owned by whoever ran the command (root under sudo), they would lock
    the service out of its own state. With no `-wal` (and no `-journal`) the database is at rest: no
    connection has it open and everything is in the main file, so it is read as immutable, touching
    nothing. A run starting meanwhile writes its WAL first and reaches the main file only at its first
    checkpoint (1,000 pages later), long after a report or a copy has been read.
    """
    uri = f"{path.resolve().as_uri()}?mode=ro"
    at_rest = not Path(f"{path}-wal").exists() and not Path(f"{path}-journal").exists()
    return uri + "&immutable=1" if at_rest else uri


def open_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write to the state or create anything beside it (any thread may use it)."""
    return sqlite3.connect(
        read_only_uri(path), uri=True, isolation_level=None, timeout=30, check_same_thread=False
    )


def copy_database(source: sqlite3.Connection, target: Path) -> None:
    """Write a consistent copy of `source` to `target` (which must not exist), mode 0600, fsynced."""
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    try:
        copy = sqlite3.connect(target, isolation_level=None)
        try:
            source.backup(copy)  # pages=-1: the whole database in one step, one read transaction
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            copy.close()
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def describe(db: sqlite3.Connection) -> tuple[str, int]:
    """(integrity verdict, schema version) of an open database; raises sqlite3.DatabaseError for a
    file that is no database. The verdict is "not an rc-archiver state" for a database without the
    state's tables."""
    verdict = str(db.execute("PRAGMA integrity_check").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tables = {str(row[0]) for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if verdict == "ok" and (version < 1 or not tables >= STATE_TABLES):
        verdict = "not an rc-archiver state (no schema version or tables of one)"
    return verdict, version
