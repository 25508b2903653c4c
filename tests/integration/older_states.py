"""State files as older versions left them, built from a current one or from scratch, for the
migration tests (a migration is tested on the file an older version really wrote)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.state.schema import MIGRATIONS
from archiver.state.sources import unpack

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def call_record(number: int, rid: str | None = None) -> dict[str, Any]:
    """A call-log record with one recording on the record and a second on a leg every third call."""
    rid = rid or f"r{number:05d}"
    stamp = (T0 + timedelta(minutes=number)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rec = {
        "id": rid,
        "contentUri": f"http://media/{rid}/content",
        "type": "Automatic",
        "uri": f"http://p/{rid}",
    }
    legs: list[dict[str, Any]] = [{"startTime": stamp, "recording": rec, "legType": "Accept"}]
    if number % 3 == 0:
        other = {**rec, "id": f"{rid}b", "contentUri": f"http://media/{rid}b/content"}
        legs.append({"startTime": stamp, "recording": other, "legType": "Transfer"})
    return {
        "id": f"call-{rid}",
        "sessionId": f"s{number}",
        "startTime": stamp,
        "duration": 60 + number,
        "direction": "Inbound",
        "from": {"phoneNumber": f"+1415555{number:04d}", "name": f"Caller {number}"},
        "to": {"phoneNumber": "+14155550100", "name": "Queue", "extensionId": "101"},
        "recording": rec,
        "legs": legs,
    }


def schema_2_file(path: Path, calls: int, ids: Sequence[str] = ()) -> None:
    """A schema-2 state (the oldest that migrates) of `calls` recordings (every fourth pending, the
    rest archived; named `ids` if given), as that version stored them: a few columns and the raw
    record as JSON."""
    db = sqlite3.connect(path)
    for statement in ";".join(str(m) for m in MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    for number in range(calls):
        record = call_record(number, ids[number] if ids else None)
        rid = record["recording"]["id"]
        db.execute(
            "INSERT INTO recordings (recording_id, call_id, start_time, content_uri, status, attempts, key, "
            "content_type, size, sha256, first_seen, updated_at, archived_at, source_json) "
            "VALUES (?, ?, ?, ?, ?, 1, ?, 'audio/mpeg', 10, ?, 'x', 'x', ?, ?)",
            (
                rid,
                record["id"],
                record["startTime"],
                f"http://media/{rid}/content",
                "archived" if number % 4 else "pending",
                f"k/{rid}.mp3" if number % 4 else None,
                f"{number:064x}" if number % 4 else None,
                record["startTime"] if number % 4 else None,
                json.dumps({"record": record, "leg": None}),
            ),
        )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()


def back_to_schema_6(path: Path) -> None:
    """A current state rewritten as schema 6 left it: the raw record back in the row as JSON."""
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE recordings ADD COLUMN source_json TEXT NOT NULL DEFAULT ''")
    for recording_id, stored in db.execute("SELECT recording_id, source FROM recording_sources").fetchall():
        record, leg = unpack(stored)
        db.execute(
            "UPDATE recordings SET source_json = ? WHERE recording_id = ?",
            (json.dumps({"record": record, "leg": leg}), recording_id),
        )
    db.execute("DROP TABLE recording_sources")
    db.execute("DROP TABLE IF EXISTS migration_progress")
    db.execute("PRAGMA user_version = 6")
    db.commit()
    db.close()


def dump(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted (the raw records unpacked): what two migrations must agree on."""
    db = sqlite3.connect(path)
    tables = [
        str(name)
        for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        if name not in ("writer_marks", "migration_progress")  # the open's own marks; empty when done
    ]
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in tables:
        columns = sorted(str(r[1]) for r in db.execute(f"PRAGMA table_info({table})"))
        rows = db.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()  # noqa: S608
        if table == "recording_sources":
            rows = [(rid, unpack(stored)) for rid, stored in rows]
        out[table] = sorted(rows, key=repr)
    db.close()
    return out
