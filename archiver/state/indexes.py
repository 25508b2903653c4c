"""Issue 22's schema step: an index that gives each walk its order, and the recordings counted as they
change, so no run, `status` or metrics read passes over the whole table at a million recordings.

The counts live in `recording_tally`, one row per (status, attempts, deleted at the source, provenance),
kept by triggers on every insert, delete and change of those columns: `counts()` sums a few dozen
rows instead of scanning every recording, and the split by RC_ARCHIVER_MAX_ATTEMPTS stays a query
parameter (attempts is part of the key).
"""

from __future__ import annotations

import sqlite3


def _key(row: str) -> str:
    """The tally key of a trigger's OLD or NEW row (provenance '' for none: a key is never NULL)."""
    return f"{row}.status, {row}.attempts, ({row}.deleted_at IS NOT NULL), COALESCE({row}.provenance, '')"


_ADD = (
    "INSERT INTO recording_tally (status, attempts, deleted, provenance, n) VALUES ({key}, 1) "
    "ON CONFLICT (status, attempts, deleted, provenance) DO UPDATE SET n = n + 1"
)
_REMOVE = "UPDATE recording_tally SET n = n - 1 WHERE (status, attempts, deleted, provenance) = ({key})"

STATEMENTS = (
    # verify --manifests: every archived id in id order (a range of this partial index per batch).
    "CREATE INDEX recordings_archived ON recordings (recording_id) WHERE status = 'archived'",
    # verify's walk of a scan: the rows `last_seen_run` saw, by id (the old index ordered by rowid).
    "DROP INDEX recordings_seen",
    "CREATE INDEX recordings_seen ON recordings (last_seen_run, recording_id)",
    # The due loop and the forecast: the backlog in archive order, its row-value cursor a range of
    # this index; every column its filter reads is in it (SQLite 3.40 counts a partial index's own
    # condition columns as read), so the forecast's histogram, count_due and the oldest backlog
    # call's start read no row at all.
    "CREATE INDEX recordings_backlog ON recordings "
    "(deadline, recording_id, attempts, next_attempt_at, status, deleted_at, start_time) "
    "WHERE status IN ('pending', 'failed') AND deleted_at IS NULL",
    # held_at_source: a count over a range of this covering index, not over the table.
    "CREATE INDEX recordings_held ON recordings (deadline, status, deleted_at) "
    "WHERE deleted_at IS NULL AND status != 'lost'",
    """
    CREATE TABLE recording_tally (
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        deleted INTEGER NOT NULL,
        provenance TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (status, attempts, deleted, provenance)
    ) WITHOUT ROWID
    """,
    # The writer's marks: open (an unclean shutdown leaves it) and the last quick_check (database.py).
    "CREATE TABLE writer_marks (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    "INSERT INTO recording_tally (status, attempts, deleted, provenance, n) "  # noqa: S608 - fixed text
    f"SELECT {_key('recordings')}, COUNT(*) FROM recordings GROUP BY 1, 2, 3, 4",
    f"CREATE TRIGGER recordings_tally_insert AFTER INSERT ON recordings BEGIN "
    f"{_ADD.format(key=_key('NEW'))}; END",
    f"CREATE TRIGGER recordings_tally_delete AFTER DELETE ON recordings BEGIN "
    f"{_REMOVE.format(key=_key('OLD'))}; END",
    "CREATE TRIGGER recordings_tally_update AFTER UPDATE OF status, attempts, deleted_at, provenance "
    f"ON recordings WHEN ({_key('OLD')}) IS NOT ({_key('NEW')}) BEGIN "
    f"{_REMOVE.format(key=_key('OLD'))}; {_ADD.format(key=_key('NEW'))}; END",
)


def add_walk_indexes_and_tally(db: sqlite3.Connection) -> None:
    """Schema step for issue 22 (one pass over the table to seed the tally, then none ever again)."""
    for statement in STATEMENTS:
        db.execute(statement)
