"""Migrations in resumable chunks (issue 22): a migration killed part-way (SIGKILL, in a process of its
own) leaves the older schema readable and refused clearly, resumes where it stopped, and yields the same
state as one never interrupted; an older version writing in between is copied again, not lost.
Schema 7 moves the raw call-log record out of the recordings row into `recording_sources`, packed."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archiver.errors import StateError
from archiver.models import ArchivedObject
from archiver.state import SCHEMA_VERSION, StateStore
from archiver.state.migrating import in_progress
from archiver.state.sources import pack, unpack
from tests.integration.older_states import back_to_schema_6, call_record, dump, schema_2_file

CALLS = 45  # 60 recordings (every third call has a second on a leg); batches of 10: several of each

_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from archiver.state import migrating, schema
    from archiver.state.migrating import Chunked

    path, target, kill_after = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    migrating.BATCH = 10
    step = schema.MIGRATIONS[target - 1]
    done = []

    def copy(db, low, high):
        step.copy(db, low, high)
        done.append(high)
        if len(done) > kill_after:  # inside the batch's transaction: this batch is lost, as in a crash
            os.kill(os.getpid(), signal.SIGKILL)

    schema.MIGRATIONS[target - 1] = Chunked(step.table, step.prepare, copy, step.finish)
    from archiver.state import StateStore
    StateStore(path)
    """
)


def _kill_during(path: Path, target: int, kill_after: int) -> None:
    """Open (and migrate) `path` in a child killed by SIGKILL during the migration to `target`."""
    done = subprocess.run(
        [sys.executable, "-c", _KILLER, str(path), str(target), str(kill_after)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def _migrated(path: Path) -> None:
    StateStore(path).close()


def _snapshots(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.name}.pre-migration-*"))


def _v6_state(path: Path) -> None:
    """A schema-6 state with the run's mix of rows, written by this version's own methods."""
    from archiver.ringcentral.calllog import recordings_in

    store = StateStore(path)
    found = [item for number in range(CALLS) for item in recordings_in(call_record(number))]
    store.note_found(found, "run-1")
    for n, item in enumerate(found):
        if n % 4:
            stored = ArchivedObject(f"k/{item.recording_id}.mp3", "audio/mpeg", 10, "ab" * 32)
            store.mark_archived(item.recording_id, stored)
        elif n % 8 == 0:
            store.record_failure(item.recording_id, "HTTP 503", max_attempts=5)
    store.close()
    back_to_schema_6(path)


@pytest.mark.parametrize("target", [3, 6, 7], ids=["to schema 3", "to schema 6", "to schema 7"])
def test_migration_killed_part_way_resumes_to_the_same_state(tmp_path: Path, target: int) -> None:
    killed, whole = tmp_path / "killed.db", tmp_path / "whole.db"
    schema_2_file(killed, CALLS)
    shutil.copyfile(killed, whole)
    _kill_during(killed, target, kill_after=2)
    db = sqlite3.connect(killed)
    assert db.execute("PRAGMA user_version").fetchone()[0] == target - 1  # only advances when complete
    assert in_progress(db) == {target: 20}  # two batches of 10 committed, the third lost with the kill
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    with pytest.raises(StateError, match=rf"schema {target - 1}; this version reads schema {SCHEMA_VERSION}"):
        StateStore(killed, read_only=True)  # a reader refuses it, saying what to do
    first_snapshot = _snapshots(killed)
    assert len(first_snapshot) == 1
    resumed = StateStore(killed)
    assert resumed.pre_migration_snapshot == first_snapshot[0]  # what `state migrate` names, what to restore
    resumed.close()
    _migrated(whole)
    assert dump(killed) == dump(whole)
    assert _snapshots(killed) == first_snapshot  # the snapshot to roll back to is the untouched one
    assert sqlite3.connect(first_snapshot[0]).execute("PRAGMA user_version").fetchone()[0] == 2
    assert in_progress(sqlite3.connect(killed)) == {}


def test_rows_an_older_version_changed_between_attempts_are_copied_again(tmp_path: Path) -> None:
    killed, whole = tmp_path / "killed.db", tmp_path / "whole.db"
    _v6_state(killed)
    _kill_during(killed, 7, kill_after=3)
    # The version before schema 7 runs meanwhile (a rollback without the snapshot): it changes rows the
    # killed attempt had copied already, deletes one and adds one.
    changes = [
        "UPDATE recordings SET status = 'archived', key = 'k/again.mp3', provenance = 'downloaded' "
        "WHERE rowid = 2",
        "DELETE FROM recordings WHERE rowid = 5",
        "INSERT INTO recordings (recording_id, call_id, start_time, retention_start, content_uri, "
        "deadline, status, first_seen, updated_at, source_json) SELECT 'new', call_id, start_time, "
        "retention_start, content_uri, deadline, 'pending', first_seen, updated_at, source_json "
        "FROM recordings WHERE rowid = 1",
    ]
    db = sqlite3.connect(killed)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the committed batches into the file, to copy it
    db.close()
    shutil.copyfile(killed, whole)  # the same file; `whole` will drop the half-built tables first
    for path in (killed, whole):
        db = sqlite3.connect(path)
        for sql in changes:
            db.execute(sql)
        if path == whole:  # as if the migration had never begun
            db.execute("DROP TABLE recordings_v7")
            db.execute("DROP TABLE recording_sources")
            db.execute("DROP TABLE migration_progress")
            for event in ("insert", "update", "delete"):
                db.execute(f"DROP TRIGGER migration_7_{event}")
        db.commit()
        db.close()
    _migrated(killed)
    _migrated(whole)
    assert dump(killed) == dump(whole)
    moved = StateStore(killed, read_only=True)
    row = moved.get(
        next(r for (r,) in sqlite3.connect(killed).execute("SELECT recording_id FROM recordings"))
    )
    assert row is not None
    assert moved.get("new") is not None and moved.source_of("new")[0]
    moved.close()


def test_schema_7_moves_the_raw_record_out_of_the_row_and_packs_it(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _v6_state(path)
    db = sqlite3.connect(path)
    before = {rid: source for rid, source in db.execute("SELECT recording_id, source_json FROM recordings")}
    db.close()
    store = StateStore(path)
    assert store.schema_version == SCHEMA_VERSION
    columns = {str(r[1]) for r in store._db.execute("PRAGMA table_info(recordings)")}
    assert "source_json" not in columns
    import json

    for rid, source in before.items():
        expected = json.loads(source)
        assert store.source_of(rid) == (expected["record"], expected["leg"])
    store.close()


def test_a_packed_record_is_smaller_than_plain_zlib_and_reads_back_exactly() -> None:
    import json
    import zlib

    record = call_record(7)
    leg = record["legs"][0]
    stored = pack(record, leg)
    assert unpack(stored) == (record, leg)
    plain = zlib.compress(json.dumps({"record": record, "leg": leg}).encode(), 9)
    assert len(stored) < len(plain) * 0.8, (len(stored), len(plain))
