"""Long data migrations in resumable chunks: flat memory, small transactions, a kill costs one batch.

A migration that touches every recording (the call-log fields as columns, the parties of every call,
the raw records moved out of the row) is a `Chunked` step: `prepare` creates its new tables, `copy`
fills them from one range of the old table's rowids, `finish` swaps them in. Each is its own
transaction, and each batch commits with its progress (`migration_progress`), so a migration killed
part-way resumes after the last committed batch. The old tables stay as they were until `finish`,
which commits with the new schema version: until then the state is the older schema plus the
unfinished new tables, which this version resumes and a reader refuses ("schema N; migrate").

Should an older version write to the old table between two attempts (a rollback without restoring
the snapshot), triggers installed by `prepare` move the progress back to before the first row it
changed, so the resumed migration copies that row again: nothing is copied stale.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import structlog

log = structlog.get_logger(__name__)

BATCH = 5000  # rows a transaction: about 15 MB of raw records at most, and a second or two of work

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]


@dataclass(frozen=True)
class Chunked:
    """A migration over every row of `table` (walked by rowid), done in resumable batches."""

    table: str
    prepare: Callable[[sqlite3.Connection], None]  # create the new tables (runs once)
    copy: Callable[[sqlite3.Connection, int, int], None]  # fill them from the rows rowid in (low, high]
    finish: Callable[[sqlite3.Connection], None]  # swap them in, build the indexes (one transaction)


def _create_progress(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS migration_progress "
        "(schema INTEGER PRIMARY KEY, after_rowid INTEGER NOT NULL)"
    )


def in_progress(db: sqlite3.Connection) -> dict[int, int]:
    """The chunked migrations begun and not finished: {schema they lead to: last rowid copied}."""
    try:
        return {int(s): int(a) for s, a in db.execute("SELECT schema, after_rowid FROM migration_progress")}
    except sqlite3.OperationalError:  # no such table: no chunked migration ever began
        return {}


def _guard(db: sqlite3.Connection, number: int, table: str) -> None:
    """Triggers that move the progress back before any row written to the old table meanwhile."""
    for event, row in (("INSERT", "NEW"), ("UPDATE", "OLD"), ("DELETE", "OLD")):
        db.execute(
            f"CREATE TRIGGER migration_{number}_{event.lower()} AFTER {event} ON {table} BEGIN "  # noqa: S608
            f"UPDATE migration_progress SET after_rowid = MIN(after_rowid, {row}.rowid - 1) "
            f"WHERE schema = {number}; END"
        )


def _unguard(db: sqlite3.Connection, number: int) -> None:
    for event in ("insert", "update", "delete"):
        db.execute(f"DROP TRIGGER IF EXISTS migration_{number}_{event}")


def _batches(transaction: Transaction, number: int, step: Chunked, batch: int) -> Iterator[int]:
    """Copy batch after batch, each committed with its progress; yields the rows copied so far."""
    copied = 0
    while True:
        with transaction() as db:
            after = int(
                db.execute(
                    "SELECT after_rowid FROM migration_progress WHERE schema = ?", (number,)
                ).fetchone()[0]
            )
            high = db.execute(
                f"SELECT MAX(rowid), COUNT(*) FROM "  # noqa: S608 - fixed table names
                f"(SELECT rowid FROM {step.table} WHERE rowid > ? ORDER BY rowid LIMIT ?)",
                (after, batch),
            ).fetchone()
            if high[0] is None:
                return
            step.copy(db, after, int(high[0]))
            db.execute(
                "UPDATE migration_progress SET after_rowid = ? WHERE schema = ?", (int(high[0]), number)
            )
        copied += int(high[1])
        yield copied


def run_chunked(transaction: Transaction, number: int, step: Chunked, batch: int | None = None) -> None:
    """Migrate to schema `number` by `step`, resuming where an earlier attempt stopped; the schema
    version is set in `finish`'s transaction, so it only advances once every row is copied."""
    with transaction() as db:
        _create_progress(db)
        begun = db.execute("SELECT 1 FROM migration_progress WHERE schema = ?", (number,)).fetchone()
        if begun is None:
            step.prepare(db)
            _guard(db, number, step.table)
            db.execute("INSERT INTO migration_progress (schema, after_rowid) VALUES (?, 0)", (number,))
    batch = batch or BATCH
    for copied in _batches(transaction, number, step, batch):
        if copied % (batch * 40) == 0:
            log.info("state_migration_progress", schema_to=number, rows=copied)
    with transaction() as db:
        _unguard(db, number)
        step.finish(db)
        db.execute("DELETE FROM migration_progress WHERE schema = ?", (number,))
        db.execute(f"PRAGMA user_version = {number}")
