"""The state store on a real SQLite file: transitions, migrations, permissions, the lock."""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver.errors import LockHeld, StateError
from archiver.ringcentral.calllog import FoundRecording, recordings_in
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


def ref(recording_id: str) -> FoundRecording:
    return recordings_in(record(recording_id))[0]


def test_state_recordings_in_takes_records_and_legs_deduplicated() -> None:
    refs = recordings_in(record("r1", leg_recording="r2"))
    assert [r.recording_id for r in refs] == ["r1", "r2"]
    assert refs[1].leg is not None and refs[0].leg is None


def test_state_transitions_are_committed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    assert store.note_found([ref("r1"), ref("r1")]) == {"r1": "pending"}  # seen twice, one row
    assert store.record_failure("r1", "HTTP 503") == 1
    assert [r.recording_id for r in store.due(max_attempts=5)] == ["r1"]
    store.mark_archived("r1", "k/r1.mp3", "audio/mpeg", 10, "ab" * 32)
    assert store.note_found([ref("r1")]) == {"r1": "archived"}
    store.close()
    # A second connection (another process after a kill) sees every committed transition.
    again = StateStore(path)
    row = again.get("r1")
    assert row is not None and row.status == "archived" and row.key == "k/r1.mp3" and row.attempts == 1
    assert again.due(5) == []
    assert again.integrity_ok()


def test_state_exhausted_after_max_attempts(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.note_found([ref("r1")])
    for _ in range(3):
        store.record_failure("r1", "HTTP 403 from media")
    assert store.due(3) == [] and [r.recording_id for r in store.exhausted(3)] == ["r1"]
    store.requeue("r1", "operator")
    assert [r.recording_id for r in store.due(3)] == ["r1"]


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


def test_state_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    StateStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StateError, match="knows up to"):
        StateStore(path)


def test_state_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="unusable"):
        StateStore(path)


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
    import archiver.state as state_module

    path = tmp_path / "state.db"
    store = StateStore(path)
    store.note_found([ref("r1")])
    store.close()
    upgrade = "ALTER TABLE recordings ADD COLUMN retention_until TEXT"  # a future migration
    monkeypatch.setattr(state_module, "MIGRATIONS", [*state_module.MIGRATIONS, upgrade])
    monkeypatch.setattr(state_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    upgraded = StateStore(path)
    assert upgraded.schema_version == SCHEMA_VERSION + 1
    assert upgraded.get("r1") is not None
    columns = {row[1] for row in sqlite3.connect(path).execute("PRAGMA table_info(recordings)")}
    assert "retention_until" in columns
