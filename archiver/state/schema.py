"""The state file's schema: numbered migrations keyed on PRAGMA user_version, and the recording columns."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from archiver.models import Recording, format_time
from archiver.ringcentral.calllog import recording_from
from archiver.state.columns import insert_sql, values
from archiver.state.indexes import add_walk_indexes_and_tally
from archiver.state.migrating import Chunked
from archiver.state.party_tables import add_find_tables
from archiver.state.sources import add_sources_table, pack_json

DEFAULT_RETENTION = timedelta(days=90)


# The recordings table of schema 3 without its raw record (schema 7 keeps that in recording_sources).
_V3_COLUMNS = """
    recording_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    session_id TEXT NOT NULL DEFAULT '',
    telephony_session_id TEXT NOT NULL DEFAULT '',
    start_time TEXT NOT NULL,
    retention_start TEXT NOT NULL,
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
    force_upload INTEGER NOT NULL DEFAULT 0"""


def _v3_prepare(db: sqlite3.Connection) -> None:
    """Schema 3: the call-log fields as columns, deadlines, lost, deletions, manifests, uploads; built
    beside the schema-2 table (which stays as it was until the last batch is copied)."""
    db.execute(f"CREATE TABLE recordings_v3 ({_V3_COLUMNS}, source_json TEXT NOT NULL)")


def _v3_copy(db: sqlite3.Connection, low: int, high: int) -> None:
    """One batch of schema-2 rows, each under its own rowid (a batch copied again replaces itself)."""
    insert = _INSERT.replace("INTO recordings (", "INTO recordings_v3 (rowid, ")
    insert = insert.replace("VALUES (", "VALUES (?, ")
    db.execute("DELETE FROM recordings_v3 WHERE rowid > ? AND rowid <= ?", (low, high))
    batch = db.execute("SELECT rowid, * FROM recordings WHERE rowid > ? AND rowid <= ?", (low, high))
    for row in batch.fetchall():
        source = json.loads(row["source_json"])
        found = recording_from(source["record"], source["leg"])
        db.execute(
            insert,
            (
                row["rowid"],
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


def _v3_finish(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE recordings")
    db.execute("ALTER TABLE recordings_v3 RENAME TO recordings")
    db.execute("CREATE INDEX recordings_due ON recordings (status, deadline)")
    db.execute("CREATE INDEX recordings_seen ON recordings (last_seen_run)")
    db.execute("CREATE INDEX recordings_start ON recordings (start_time)")
    db.execute("ALTER TABLE runs ADD COLUMN exit_code INTEGER")
    db.execute(
        "CREATE TABLE uploads (upload_id TEXT PRIMARY KEY, key TEXT NOT NULL, started_at TEXT NOT NULL)"
    )


def _v7_prepare(db: sqlite3.Connection) -> None:
    """Schema 7 (issue 22): the raw record out of the recordings row, packed (sources.py), so the row
    every walk reads is about 0.6 KB instead of 3.5 KB (one recording a 4 KB page)."""
    db.execute(
        f"CREATE TABLE recordings_v7 ({_V3_COLUMNS}, provenance TEXT, deleted_by TEXT, delete_intent TEXT)"
    )
    add_sources_table(db)


def _v7_copy(db: sqlite3.Connection, low: int, high: int) -> None:
    """One batch: the row without its record (same rowid), and the record packed."""
    columns = ", ".join(["rowid"] + [str(r[1]) for r in db.execute("PRAGMA table_info(recordings_v7)")])
    window = (low, high)
    db.execute(
        "DELETE FROM recording_sources WHERE recording_id IN "
        "(SELECT recording_id FROM recordings_v7 WHERE rowid > ? AND rowid <= ?)",
        window,
    )
    db.execute("DELETE FROM recordings_v7 WHERE rowid > ? AND rowid <= ?", window)
    db.execute(
        f"INSERT INTO recordings_v7 ({columns}) SELECT {columns} FROM recordings "  # noqa: S608 - the table's own
        "WHERE rowid > ? AND rowid <= ?",
        window,
    )
    rows = db.execute(
        "SELECT recording_id, source_json FROM recordings WHERE rowid > ? AND rowid <= ?", window
    ).fetchall()
    db.executemany(
        "INSERT INTO recording_sources (recording_id, source) VALUES (?, ?)",
        [(recording_id, pack_json(source_json)) for recording_id, source_json in rows],
    )


def _v7_finish(db: sqlite3.Connection) -> None:
    """The new table in place of the old, with the old one's indexes and triggers as they were."""
    definitions = [
        str(sql)
        for (sql,) in db.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'recordings' AND type IN ('index', 'trigger') "
            "AND sql IS NOT NULL"
        )
    ]
    db.execute("DROP TABLE recordings")
    db.execute("ALTER TABLE recordings_v7 RENAME TO recordings")
    for sql in definitions:
        db.execute(sql)


_FIELDS = (
    "recording_id, call_id, session_id, telephony_session_id, start_time, retention_start, duration, "
    "direction, from_number, to_number, from_name, to_name, extension_id, recording_type, on_leg_only, "
    "content_uri, deadline"
)
_INSERT = insert_sql(
    f"{_FIELDS}, status, attempts, last_error, key, content_type, size, sha256, first_seen, updated_at, "
    "archived_at, force_upload, source_json".split(", ")
)

# How an archived object's sha256 was obtained. Only PROVEN ones may be deleted at the source.
DOWNLOADED = "downloaded"  # our own download path, every body check passed
REPROVED = "reproved"  # adopted or migrated, then a fresh download reproduced the same sha256
ADOPTED = "adopted"  # found in the destination (a lost state, or a run killed before marking it)
MIGRATED = "migrated"  # archived by an earlier version of the state
PROVEN = (DOWNLOADED, REPROVED)
# Who deleted a recording at the source.
BY_US, BY_SOURCE, BY_MIGRATED = "us", "source", "migrated"  # the last: an older version said so

MIGRATIONS: list[str | Callable[[sqlite3.Connection], None] | Chunked] = [
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
    Chunked("recordings", _v3_prepare, _v3_copy, _v3_finish),
    # 4: deletion at the source proven against RingCentral (issue 17): how each archived object's
    # sha256 was obtained (only `downloaded` and `reproved` may be deleted at the source), who deleted
    # it there (`us`: RingCentral confirmed our DELETE; `source`: RingCentral no longer had it), and
    # the intent journaled before a DELETE is sent (settled by the next run if the reply is lost).
    # Rows archived by an earlier version are `migrated`: their hashes are re-proved before deletion.
    # Its deletions are `migrated` too, with an intent: that version recorded some without RingCentral's
    # word, so the next run asks RingCentral about each (deletion.settle_intents).
    """
    ALTER TABLE recordings ADD COLUMN provenance TEXT;
    ALTER TABLE recordings ADD COLUMN deleted_by TEXT;
    ALTER TABLE recordings ADD COLUMN delete_intent TEXT;
    UPDATE recordings SET provenance = 'migrated' WHERE status = 'archived';
    UPDATE recordings SET deleted_by = 'migrated', delete_intent = 'migrated' WHERE deleted_at IS NOT NULL;
    CREATE INDEX recordings_unmanifested ON recordings (recording_id) WHERE manifested = 0;
    CREATE INDEX recordings_deletable ON recordings (archived_at, recording_id)
        WHERE status = 'archived' AND deleted_at IS NULL;
    CREATE INDEX recordings_intents ON recordings (recording_id) WHERE delete_intent IS NOT NULL;
    CREATE INDEX recordings_deleted ON recordings (recording_id) WHERE deleted_at IS NOT NULL;
    DROP INDEX recordings_start;
    CREATE INDEX recordings_start ON recordings (start_time, recording_id);
    """,
    # issue 22: an index that orders each walk (verify's, the manifests', the due loop's) and the
    # recordings counted by triggers (state/indexes.py): no whole-table pass per run, status or scrape
    add_walk_indexes_and_tally,
    # issue 20: the parties of each call (find by number, extension, name), filled from the stored
    # records; which recordings the archive's index lists; legal holds (state/party_tables.py)
    add_find_tables,
    # issue 22: the raw call-log record packed, in a table of its own (state/sources.py)
    Chunked("recordings", _v7_prepare, _v7_copy, _v7_finish),
]
SCHEMA_VERSION = len(MIGRATIONS)


def _now() -> str:
    return format_time(datetime.now(UTC))


def _columns(found: Recording, retention: timedelta) -> tuple[object, ...]:
    return values(found, retention, _FIELDS.split(", "))
