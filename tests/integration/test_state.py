"""The state store on a real SQLite file: transitions, migrations, permissions, the lock."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.errors import LockHeld, StateError
from archiver.models import ArchivedObject
from archiver.ringcentral.calllog import Found, recordings_in
from archiver.state import SCHEMA_VERSION, FileLock, StateStore


def record(recording_id: str, leg_recording: str | None = None) -> dict[str, object]:
    rec = {
        "id": recording_id,
        "contentUri": f"http://media/{recording_id}/content",
        "type": "Automatic",
        "uri": f"http://platform/{recording_id}",
    }
    out: dict[str, object] = {
        "id": f"call-{recording_id}",
        "sessionId": "s1",
        "startTime": "2026-11-27T10:00:00.000Z",
        "duration": 60,
        "direction": "Inbound",
        "from": {"phoneNumber": "+1", "name": "A"},
        "to": {"phoneNumber": "+2"},
        "recording": rec,
        "legs": [{"startTime": "2026-11-27T10:00:00.000Z", "recording": rec}],
    }
    if leg_recording:
        leg_rec = {**rec, "id": leg_recording, "contentUri": f"http://media/{leg_recording}/content"}
        out["legs"] = [*out["legs"], {"startTime": "2026-11-27T10:01:00.000Z", "recording": leg_rec}]  # type: ignore[list-item]
    return out


def ref(recording_id: str) -> Found:
    return recordings_in(record(recording_id))[0]


def test_state_recordings_in_takes_records_and_legs_deduplicated() -> None:
    refs = recordings_in(record("r1", leg_recording="r2"))
    assert [r.recording_id for r in refs] == ["r1", "r2"]
    assert refs[1].leg is not None and refs[0].leg is None


NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_state_transitions_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    seen = store.note_found([ref("r1"), ref("r1")], "run-1")  # seen twice, one row, counted once
    assert (seen.new_in_run, seen.already_archived) == (1, 0)
    assert store.record_failure("r1", "HTTP 503") == 1
    assert [r.recording_id for r in store.due(5, NOW)] == ["r1"]
    store.mark_archived("r1", ArchivedObject("k/r1.mp3", "audio/mpeg", 10, "ab" * 32))
    seen = store.note_found([ref("r1")], "run-2")
    assert (seen.new_in_run, seen.already_archived) == (1, 1)
    store.close()
    # A second connection (another process after a kill) sees every committed transition.
    again = StateStore(path)
    row = again.get("r1")
    assert row is not None and row.status == "archived" and row.key == "k/r1.mp3" and row.attempts == 1
    assert list(again.due(5, NOW)) == []
    assert again.integrity_ok()


def test_state_keeps_the_call_log_fields_as_columns_and_the_raw_record_for_the_sidecar(
    tmp_path: Path,
) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1")], "run-1")
    row = store.get("r1")
    assert row is not None
    assert row.recording.call_id == "call-r1" and row.recording.from_name == "A"
    assert row.recording.start == datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    assert row.deadline == datetime(2027, 2, 25, 10, 0, tzinfo=UTC)  # call start + 90 days
    record, leg = store.source_of("r1")
    assert record["id"] == "call-r1" and leg is None


def test_state_due_is_earliest_deadline_first_and_past_deadlines_last(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    for day, recording_id in [(20, "late"), (3, "past"), (10, "early"), (15, "middle")]:
        found = recordings_in(record(recording_id))[0]
        start = datetime(2026, 8, day, tzinfo=UTC)
        store.note_found(
            [replace(found, recording=replace(found.recording, start=start, retention_start=start))], "run-1"
        )
    now = datetime(2026, 11, 5, tzinfo=UTC)  # 3 August + 90 days has passed
    assert [r.recording_id for r in store.due(5, now, batch=1)] == ["early", "middle", "late", "past"]
    assert [(d.day, n) for d, n in store.due_deadlines(5, now)] == [(1, 1), (8, 1), (13, 1), (18, 1)]


def test_state_retention_change_recomputes_every_deadline(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1")], "run-1")
    store.apply_retention(timedelta(days=30))
    row = store.get("r1")
    assert row is not None and row.deadline == datetime(2026, 12, 27, 10, 0, tzinfo=UTC)


def test_state_exhausted_is_retried_at_the_slower_cadence(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1")], "run-1")
    for _ in range(3):
        store.record_failure("r1", "HTTP 403 from media", max_attempts=3, retry_interval=timedelta(hours=24))
    now = datetime.now(UTC)
    assert list(store.due(3, now)) == [] and [r.recording_id for r in store.exhausted(3)] == ["r1"]
    assert store.counts(3)["exhausted"] == 1 and store.counts(3)["failed"] == 0  # each counted once
    assert [r.recording_id for r in store.due(3, now + timedelta(hours=25))] == ["r1"]  # never given up
    assert store.retry(["r1"]) == 1
    assert [r.recording_id for r in store.due(3, now)] == ["r1"] and store.counts(3)["exhausted"] == 0


def test_state_lost_and_deleted_are_counted_and_never_due(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1"), ref("r2")], "run-1")
    store.mark_lost("r1", "deleted by RingCentral")
    store.mark_archived("r2", ArchivedObject("k/r2.mp3", "audio/mpeg", 10, "ab" * 32))
    assert [r.recording_id for r in store.deletable(datetime.now(UTC))] == ["r2"]
    store.mark_deleted(["r2"], datetime.now(UTC), "us")
    counts = store.counts(5)
    assert counts["lost"] == 1 and counts["deleted"] == 1 and counts["archived"] == 1
    assert list(store.due(5, NOW)) == [] and list(store.deletable(datetime.now(UTC))) == []
    assert [r.recording_id for r in store.lost_rows()] == ["r1"]


def test_state_upload_journal_lists_what_never_ended(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.upload_started("p/a.mp3", "u1")
    store.upload_started("p/b.mp3", "u2")
    store.upload_ended("u1")
    store.upload_ended("u1")  # ending twice is harmless
    assert store.unended_uploads() == [("p/b.mp3", "u2")]


def test_state_archived_but_unlisted_rows_are_owed_to_a_manifest(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1")], "run-1")
    store.mark_archived("r1", ArchivedObject("k/r1.mp3", "audio/mpeg", 10, "ab" * 32))
    assert [r.recording_id for r in store.unmanifested()] == ["r1"]
    store.mark_manifested(["r1"])
    assert store.unmanifested() == []


def test_state_windows_and_watermark(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    a, b = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert not store.window_done(a, b)
    store.mark_window_done(a, b, "run-1")
    assert store.window_done(a, b)
    store.advance_watermark(b)
    store.advance_watermark(a)  # never backwards
    assert store.watermark() == b


def test_state_file_is_private_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.parametrize("read_only", [False, True], ids=["writer", "reader"])
def test_state_newer_schema_is_refused(tmp_path: Path, read_only: bool) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="knows up to"):
        StateStore(path, read_only=read_only)


def test_state_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="corrupt") as raised:
        StateStore(path)
    assert "rc-archiver state restore" in raised.value.hint  # a backup first, then moving it aside


def test_state_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "s.lock"), FileLock(tmp_path / "s.lock")
    first.acquire()
    with pytest.raises(LockHeld):
        second.acquire()
    with pytest.raises(LockHeld):
        second.acquire(wait_seconds=0.3)
    first.release()
    second.acquire()
    second.release()


def test_state_migrates_forward_keeping_the_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import archiver.state.schema as state_module

    path = tmp_path / "state.db"
    store = StateStore(path)
    store.note_found([ref("r1")], "run-1")
    store.close()
    upgrade = "ALTER TABLE recordings ADD COLUMN retention_until TEXT"  # a future migration
    monkeypatch.setattr(state_module, "MIGRATIONS", [*state_module.MIGRATIONS, upgrade])
    monkeypatch.setattr(state_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = StateStore(path)
    assert upgraded.schema_version == SCHEMA_VERSION + 1
    assert upgraded.get("r1") is not None
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(recordings)")}
    assert "retention_until" in columns


def test_state_corrupt_pages_behind_an_intact_header_are_a_clear_error(tmp_path: Path) -> None:
    """At the open after an unclean shutdown (quick_check is due then: test_state_scale.py)."""
    from archiver.state.database import OPEN_SINCE

    path = tmp_path / "state.db"
    store = StateStore(path)
    store.note_found([ref(f"r{i}") for i in range(200)], "run-1")
    store.close()
    db = sqlite3.connect(path)
    db.execute("INSERT OR REPLACE INTO writer_marks VALUES (?, '2026-11-30T00:00:00.000Z')", (OPEN_SINCE,))
    db.commit()
    db.close()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 3] = b"\xff" * 4096  # a page in the middle, the 100-byte header intact
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="corrupt"):
        StateStore(path)


def test_state_unusable_paths_are_one_clear_error(tmp_path: Path) -> None:
    from archiver.state import prepare_folder

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StateError, match="parent that is not a folder"):
        prepare_folder(blocker / "state.db")


def test_state_migrates_a_schema_2_file_into_columns(tmp_path: Path) -> None:
    import json

    import archiver.state.schema as state_module

    path = tmp_path / "state.db"
    db = sqlite3.connect(path)
    for statement in ";".join(str(m) for m in state_module.MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    source = json.dumps({"record": record("r1", leg_recording="r2"), "leg": None})
    db.execute(
        "INSERT INTO recordings (recording_id, call_id, start_time, content_uri, status, attempts, key, "
        "content_type, size, sha256, first_seen, updated_at, source_json) VALUES ('r1', 'call-r1', "
        "'2026-11-27T10:00:00.000Z', 'http://media/r1/content', 'archived', 2, 'k/r1.mp3', 'audio/mpeg', 10, "
        "'ab', 'x', 'x', ?)",  # an archived row as every version wrote it: its object's four facts together
        (source,),
    )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    store = StateStore(path)
    row = store.get("r1")
    assert store.schema_version == SCHEMA_VERSION
    assert row is not None and row.status == "archived" and row.key == "k/r1.mp3" and row.attempts == 2
    assert row.recording.from_name == "A" and row.deadline == datetime(2027, 2, 25, 10, 0, tzinfo=UTC)
    assert row.provenance == "migrated" and not row.proven  # an older version's hash: re-proved first


def test_state_provenance_says_where_each_archived_sha256_came_from(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1"), ref("r2")], "run-1")
    store.mark_archived("r1", ArchivedObject("k/r1.mp3", "audio/mpeg", 10, "ab" * 32))
    store.mark_archived("r2", ArchivedObject("k/r2.mp3", "audio/mpeg", 10, "cd" * 32), "adopted")
    rows = {r.recording_id: r for r in store.deletable(datetime.now(UTC))}
    assert (rows["r1"].provenance, rows["r1"].proven) == ("downloaded", True)
    assert (rows["r2"].provenance, rows["r2"].proven) == ("adopted", False)
    store.mark_reproved("r2")
    assert store.get("r2").proven  # type: ignore[union-attr]
    store.requeue("r2", "verify: corrupt", force_upload=True)
    assert store.get("r2").provenance is None  # type: ignore[union-attr]


def test_state_deletion_intent_is_journaled_settled_and_never_deletable_meanwhile(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1"), ref("r2"), ref("r3")], "run-1")
    for rid in ("r1", "r2", "r3"):
        store.mark_archived(rid, ArchivedObject(f"k/{rid}.mp3", "audio/mpeg", 10, "ab" * 32))
    store.mark_manifested(["r1", "r2", "r3"])
    store.intend_deletion(["r1", "r2"], "run-2")
    assert [r.recording_id for r in store.unsettled_intents()] == ["r1", "r2"]
    assert [r.recording_id for r in store.deletable(datetime.now(UTC))] == ["r3"]
    store.clear_intent(["r2"])
    store.mark_deleted(["r1"], datetime.now(UTC), "us")
    assert list(store.unsettled_intents()) == [] and store.count_unsettled_intents() == 0
    row = store.get("r1")
    assert row is not None and row.deleted_by == "us" and row.delete_intent is None
    assert [r.recording_id for r in store.unmanifested()] == ["r1"]  # its `deleted` line is owed
    assert list(store.deleted_ids()) == ["r1"]
    assert sorted(r.recording_id for r in store.deletable(datetime.now(UTC))) == ["r2", "r3"]


@pytest.mark.parametrize("walk", ["deletable", "archive_in", "deleted_outside", "deleted_ids"])
def test_state_deletion_and_verify_walks_are_ordered_by_an_index(tmp_path: Path, walk: str) -> None:
    """The walks deletion.py and verify.py make, as the state really sends them (traced): each batch
    is a range of an index, never a whole-table sort (issue 22)."""
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref(f"r{n}") for n in range(5)], "run-1")
    for n in range(5):
        store.mark_archived(f"r{n}", ArchivedObject(f"k/r{n}.mp3", "audio/mpeg", 10, "ab" * 32))
    store.mark_deleted(["r1", "r3"], datetime.now(UTC), "us")
    sent: list[str] = []
    store._db.set_trace_callback(sent.append)
    later, earlier = datetime.now(UTC) + timedelta(days=1), datetime(2026, 1, 1, tzinfo=UTC)
    calls = {
        "deletable": lambda: store.deletable(later, batch=2),
        "archive_in": lambda: store.archive_in(earlier, later, "verify-x", batch=2),
        "deleted_outside": lambda: store.deleted_outside(later, later, "verify-x", batch=1),
        "deleted_ids": lambda: store.deleted_ids(batch=1),
    }
    assert len(list(calls[walk]())) >= 2
    store._db.set_trace_callback(None)
    selects = [sql for sql in sent if sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 2  # batched: a keyset walk, not one read of everything
    for sql in selects:
        plan = " ".join(str(r[3]) for r in store._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


def schema_2_file(path: Path) -> None:
    """A state as schema 2 left it (one archived recording), as an older version wrote it."""
    import json

    import archiver.state.schema as state_module

    db = sqlite3.connect(path)
    for statement in ";".join(str(m) for m in state_module.MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    source = json.dumps({"record": record("r1"), "leg": None})
    db.execute(
        "INSERT INTO recordings (recording_id, call_id, start_time, content_uri, status, attempts, key, "
        "first_seen, updated_at, source_json) VALUES ('r1', 'call-r1', '2026-11-27T10:00:00.000Z', "
        "'http://media/r1/content', 'archived', 1, 'k/r1.mp3', 'x', 'x', ?)",
        (source,),
    )
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()


def test_state_migration_leaves_a_snapshot_of_the_old_schema_first(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    schema_2_file(path)
    store = StateStore(path)
    assert store.schema_version == SCHEMA_VERSION
    (snapshot,) = tmp_path.glob("state.db.pre-migration-v2-*")
    assert store.pre_migration_snapshot == snapshot
    assert stat.S_IMODE(os.stat(snapshot).st_mode) == 0o600
    copy = sqlite3.connect(snapshot)
    assert copy.execute("PRAGMA user_version").fetchone()[0] == 2  # the old schema, what a rollback needs
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT recording_id, key FROM recordings").fetchall() == [("r1", "k/r1.mp3")]
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    copy.close()
    store.close()
    StateStore(path).close()  # a state already current is not snapshotted again
    assert len(list(tmp_path.glob("state.db.pre-migration-*"))) == 1


def test_state_a_new_state_needs_no_snapshot(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    assert store.pre_migration_snapshot is None
    assert list(tmp_path.glob("*pre-migration*")) == []


def test_state_read_only_never_migrates_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    schema_2_file(path)
    before = path.read_bytes()
    with pytest.raises(StateError, match="never migrates") as raised:
        StateStore(path, read_only=True)
    assert "state migrate" in raised.value.hint and "rc-archiver run" not in raised.value.hint
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]  # no -wal, -shm or snapshot


def test_state_read_only_creates_nothing_beside_a_state_at_rest(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.note_found([ref("r1")], "run-1")
    store.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"]
    before = path.read_bytes()
    reader = StateStore(path, read_only=True)
    assert reader.get("r1") is not None
    reader.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.db"] and path.read_bytes() == before


def test_state_schema_4_takes_an_older_versions_records_as_unproven(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Archived rows become `migrated` (re-proved before deletion); deletions become `migrated` with an
    intent, so the next run asks RingCentral about each before anything relies on them."""
    import archiver.state.schema as state_module

    path = tmp_path / "state.db"
    from archiver.state.database import Database
    from tests.integration.older_states import schema_2_file

    monkeypatch.setattr(state_module, "MIGRATIONS", state_module.MIGRATIONS[:3])
    monkeypatch.setattr(state_module, "SCHEMA_VERSION", 3)
    monkeypatch.setattr(Database, "_mark", lambda *args: None)  # no writer marks before issue 22
    schema_2_file(path, 3, ids=("r3", "r1", "r2"))  # as that version wrote it; migrated to schema 3
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(
        "UPDATE recordings SET status = 'archived', key = 'k', size = 10, sha256 = 'ab', content_type = "
        "'audio/mpeg', archived_at = '2026-11-28T00:00:00.000Z' WHERE recording_id IN ('r1', 'r2')"
    )
    db.execute("UPDATE recordings SET deleted_at = '2026-11-29T00:00:00.000Z' WHERE recording_id = 'r2'")
    db.commit()
    db.close()
    monkeypatch.undo()
    store = StateStore(path)
    rows = {rid: store.get(rid) for rid in ("r1", "r2", "r3")}
    assert rows["r1"] is not None and (rows["r1"].provenance, rows["r1"].proven) == ("migrated", False)
    assert rows["r2"] is not None and (rows["r2"].deleted_by, rows["r2"].delete_intent) == (
        "migrated",
        "migrated",
    )
    assert rows["r3"] is not None and rows["r3"].provenance is None
    assert [r.recording_id for r in store.unsettled_intents()] == ["r2"]
    store.undelete(["r2"])  # RingCentral still serves it: archived and held at the source again
    assert [r.recording_id for r in store.deletable(datetime.now(UTC))] == ["r1", "r2"]


def test_verify_calls_a_recording_late_only_where_the_next_run_rescans_and_no_run_reached_it(
    tmp_path: Path,
) -> None:
    """A call logged only once it ended appears after the run that scanned its start: the next run's
    lookback rescans it, so verify says `late`, not `missing`. Older than that, or already attempted
    by a run, it is verify's to report."""
    from archiver.verify import _late_record

    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1")], "verify-1")
    row = store.get("r1")
    assert row is not None and row.status == "pending" and row.attempts == 0
    start = row.recording.start
    assert _late_record(row, start - timedelta(hours=1)) is True
    assert _late_record(row, start + timedelta(seconds=1)) is False  # before what the next run rescans
    assert _late_record(row, None) is False  # no run has ever scanned: nothing is late
    store.record_failure("r1", "503", still_pending=True, max_attempts=5, retry_interval=timedelta(hours=1))
    attempted = store.get("r1")
    assert attempted is not None and _late_record(attempted, start - timedelta(hours=1)) is False
    store.close()
