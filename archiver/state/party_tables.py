"""The tables of issue 20 (find, the archive's index, legal holds) and the migration that adds them.

Kept apart from the queries (parties.py) so that schema.py can list the migration without importing the
state's classes. See parties.py for what the parties table holds and why numbers are kept reversed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from archiver.ringcentral.calllog import Party, call_parties
from archiver.state.migrating import Chunked


def _prepare(db: sqlite3.Connection) -> None:
    db.execute(
        "CREATE TABLE parties (recording_id TEXT NOT NULL, number_rev TEXT NOT NULL, "
        "extension TEXT NOT NULL, name TEXT NOT NULL, "
        "PRIMARY KEY (recording_id, number_rev, extension, name)) WITHOUT ROWID"
    )


def _copy(db: sqlite3.Connection, low: int, high: int) -> None:
    """The parties of one batch of rows, from their stored records (a batch re-copied only adds)."""
    rows = db.execute(
        "SELECT recording_id, source_json FROM recordings WHERE rowid > ? AND rowid <= ?", (low, high)
    ).fetchall()
    for recording_id, source_json in rows:
        record = json.loads(source_json).get("record") or {}
        note_parties(db, recording_id, call_parties(record))


def _finish(db: sqlite3.Connection) -> None:
    db.execute("CREATE INDEX parties_number ON parties (number_rev, recording_id)")
    db.execute("CREATE INDEX parties_extension ON parties (extension, recording_id)")
    # find by call start (--since/--until alone, export of a day): a keyset walk, never a sort of all rows
    db.execute("CREATE INDEX recordings_call_start ON recordings (retention_start, recording_id)")
    db.execute("CREATE TABLE index_listed (recording_id TEXT PRIMARY KEY, part TEXT NOT NULL) WITHOUT ROWID")
    # Archived and not yet in an index part (a run killed before its flush): filled by mark_archived,
    # emptied by mark_indexed, so a run start reads only what is owed, never every archived row.
    db.execute("CREATE TABLE index_owed (recording_id TEXT PRIMARY KEY) WITHOUT ROWID")
    # What an older version archived is in no index part: `index rebuild` lists it from the sidecars.
    # Marked here (part '') so that runs list only what they archive themselves, never a backlog.
    db.execute(
        "INSERT INTO index_listed (recording_id, part) "
        "SELECT recording_id, '' FROM recordings WHERE status = 'archived'"
    )
    db.execute(
        "CREATE TABLE holds (hold_id INTEGER PRIMARY KEY, reason TEXT NOT NULL, query_json TEXT NOT NULL, "
        "placed_at TEXT NOT NULL, released_at TEXT, release_reason TEXT)"
    )
    db.execute(
        "CREATE TABLE held_objects (hold_id INTEGER NOT NULL, key TEXT NOT NULL, recording_id TEXT NOT NULL, "
        "PRIMARY KEY (hold_id, key)) WITHOUT ROWID"
    )
    db.execute("CREATE INDEX held_objects_key ON held_objects (key)")


# Migration (issue 20): the parties table and its indexes, filled from every row's stored record, in
# resumable batches (migrating.py); the index's bookkeeping (which recordings an index part lists);
# legal holds and their objects.
add_find_tables = Chunked("recordings", _prepare, _copy, _finish)


def note_parties(db: sqlite3.Connection, recording_id: str, parties: Iterable[Party]) -> None:
    """The parties of a recording's call, added to what the state knows (nothing is ever removed)."""
    db.executemany(
        "INSERT OR IGNORE INTO parties (recording_id, number_rev, extension, name) VALUES (?, ?, ?, ?)",
        [(recording_id, p.number[::-1], p.extension, p.name) for p in parties],
    )
