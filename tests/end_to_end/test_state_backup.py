"""`rc-archiver state backup|restore|migrate` with real processes: a backup taken while a run writes,
restored after it; every refusal (a run holding the lock, a file that is no state, a newer schema); the
same for a state kept in S3 (moto server)."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

import boto3

from archiver.emulator import Emulator
from archiver.state import SCHEMA_VERSION
from archiver.state.copies import open_read_only
from tests.helpers import SINCE, archiver_env, events_of, run_subprocess, slow_emulator, start_run


def folder_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    dest = tmp_path / "archive"
    dest.mkdir(exist_ok=True)
    return archiver_env(emulator, tmp_path, dest.as_uri(), **extra)


def recordings_in(path: Path) -> dict[str, str]:
    """recording id -> status, read from a state or a backup file (creating nothing beside it)."""
    db = open_read_only(path)
    try:
        return dict(db.execute("SELECT recording_id, status FROM recordings").fetchall())
    finally:
        db.close()


def wait_for_rows(state: Path, timeout: float = 60.0) -> None:
    """Until a running run has committed some recordings (the backup must land mid-run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if state.exists() and Path(f"{state}-wal").exists():
            try:
                if recordings_in(state):
                    return
            except sqlite3.Error:
                pass
        time.sleep(0.1)
    raise AssertionError("the run never wrote a recording")


def test_backup_while_a_run_writes_then_restore_it(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = slow_emulator(emulator_factory, calls=400)  # about 10 s of downloads
    env = folder_env(emu, tmp_path)
    state = tmp_path / "state" / "state.db"
    backup = tmp_path / "backups" / "state-mid-run.db"
    backup.parent.mkdir()
    run = start_run(env)
    try:
        wait_for_rows(state)
        taken = run_subprocess(env, "state", "backup", str(backup), timeout=60)
        assert taken.returncode == 0, taken.stderr
        assert run.poll() is None, "the backup must be taken while the run writes"
        # A restore while the run holds the lock is refused, and changes nothing.
        refused = run_subprocess(env, "state", "restore", str(backup), timeout=60)
        assert run.poll() is None, "the restore must be tried while the run holds the lock"
        assert refused.returncode == 5 and "lock" in refused.stderr
        assert list(state.parent.glob("*.replaced-*")) == []
        out, _ = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == 0, out[-2000:]
    assert "backed up" in taken.stdout and str(backup) in taken.stdout
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    copy = sqlite3.connect(backup)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    copy.close()
    assert not Path(f"{backup}-wal").exists()  # one self-contained file
    mid_run, finished = recordings_in(backup), recordings_in(state)
    assert mid_run and set(mid_run) <= set(finished)
    assert list(mid_run.values()).count("archived") < list(finished.values()).count("archived")

    restored = run_subprocess(env, "state", "restore", str(backup), timeout=60)
    assert restored.returncode == 0, restored.stderr
    (kept,) = [p for p in state.parent.glob("state.db.replaced-*") if not p.name.endswith(("-wal", "-shm"))]
    assert recordings_in(kept) == finished  # the replaced state is kept whole, beside it
    assert recordings_in(state) == mid_run
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    assert "kept as" in restored.stdout and str(kept) in restored.stdout
    # The restored state carries on: what it had not recorded is adopted, nothing downloaded twice.
    downloads = sum(emu.stats.snapshot()["downloads"].values())
    again = run_subprocess(env, "run", "--since", SINCE, timeout=180)
    assert again.returncode == 0, again.stdout[-2000:]
    assert sum(emu.stats.snapshot()["downloads"].values()) == downloads
    assert recordings_in(state).keys() == finished.keys()


def test_restore_refuses_a_file_that_is_not_a_state(emulator: Emulator, tmp_path: Path) -> None:
    env = folder_env(emulator, tmp_path)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    state = tmp_path / "state" / "state.db"
    before = recordings_in(state)
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is no database" * 500)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE notes (text TEXT)").connection.commit()
    for path, why in [(garbage, "not a valid rc-archiver state"), (other, "not an rc-archiver state")]:
        result = run_subprocess(env, "state", "restore", str(path))
        assert result.returncode == 2, result.stderr
        (error,) = [e for e in events_of(result.stderr) if e["level"] == "error"]
        assert why in error["error"] and "was not changed" in error["fix"]
        assert "Traceback" not in result.stderr
    missing = run_subprocess(env, "state", "restore", str(tmp_path / "absent.db"))
    assert missing.returncode == 2
    assert recordings_in(state) == before
    assert list(state.parent.glob("*.replaced-*")) == [] and list(state.parent.glob(".*restoring*")) == []


def test_restore_refuses_a_newer_schema_with_exit_4(emulator: Emulator, tmp_path: Path) -> None:
    env = folder_env(emulator, tmp_path)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    backup = tmp_path / "newer.db"
    assert run_subprocess(env, "state", "backup", str(backup)).returncode == 0
    db = sqlite3.connect(backup)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    result = run_subprocess(env, "state", "restore", str(backup))
    assert result.returncode == 4 and "knows up to" in result.stderr
    assert list((tmp_path / "state").glob("*.replaced-*")) == []


def test_backup_refuses_to_overwrite_and_needs_a_state(tmp_path: Path) -> None:
    env = {"RC_ARCHIVER_STATE_PATH": str(tmp_path / "state.db"), "RC_ARCHIVER_LOG_FORMAT": "json"}
    none = run_subprocess(env, "state", "backup", str(tmp_path / "b.db"))
    assert none.returncode == 2 and "no state file" in none.stderr
    assert not (tmp_path / "state.db").exists()  # a backup never creates a state
    sqlite3.connect(tmp_path / "state.db").close()
    taken = tmp_path / "taken.db"
    taken.write_bytes(b"an earlier backup")
    result = run_subprocess(env, "state", "backup", str(taken))
    assert result.returncode == 2 and "already exists" in result.stderr
    assert taken.read_bytes() == b"an earlier backup"


def test_migrate_snapshots_first_and_is_idempotent(tmp_path: Path) -> None:
    import archiver.state.schema as state_module

    state = tmp_path / "state" / "state.db"
    state.parent.mkdir()
    db = sqlite3.connect(state)  # the state as a schema-2 version of rc-archiver left it
    for statement in ";".join(str(m) for m in state_module.MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    env = {"RC_ARCHIVER_STATE_PATH": str(state), "RC_ARCHIVER_LOG_FORMAT": "json"}
    status = run_subprocess(env, "status")
    assert status.returncode == 4 and "state migrate" in status.stderr  # status never migrates
    assert sorted(p.name for p in state.parent.iterdir()) == ["state.db"]
    migrated = run_subprocess(env, "state", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    (snapshot,) = state.parent.glob("state.db.pre-migration-v2-*")
    assert str(snapshot) in migrated.stdout and stat.S_IMODE(os.stat(snapshot).st_mode) == 0o600
    assert sqlite3.connect(snapshot).execute("PRAGMA user_version").fetchone()[0] == 2
    (line,) = [e for e in events_of(migrated.stderr) if e["event"] == "state_snapshot_before_migration"]
    assert "state restore" in line["rollback"]
    assert run_subprocess(env, "status").returncode == 0
    assert "(it was already)" in run_subprocess(env, "state", "migrate").stdout
    assert len(list(state.parent.glob("*pre-migration*"))) == 1


def s3_state_env(emulator: Emulator, tmp_path: Path, bucket: str) -> dict[str, str]:
    return folder_env(emulator, tmp_path, RC_ARCHIVER_STATE_PATH=f"s3://{bucket}/state/state.db")


def test_s3_state_backup_and_restore(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    env = s3_state_env(emulator, tmp_path, s3_bucket)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    client = boto3.client("s3")
    backup = tmp_path / "s3-state-backup.db"
    taken = run_subprocess(env, "state", "backup", str(backup))
    assert taken.returncode == 0, taken.stderr
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    archived = recordings_in(backup)
    assert archived and set(archived.values()) == {"archived"}

    lease = {"owner": "a-running-pod", "expires_at": time.time() + 600}
    client.put_object(Bucket=s3_bucket, Key="state/state.db.lease", Body=json.dumps(lease).encode())
    refused = run_subprocess(env, "state", "restore", str(backup))
    assert refused.returncode == 5 and "lease" in refused.stderr
    client.delete_object(Bucket=s3_bucket, Key="state/state.db.lease")

    current = client.get_object(Bucket=s3_bucket, Key="state/state.db")["Body"].read()
    restored = run_subprocess(env, "state", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    (kept,) = [k for k in keys if k.startswith("state/state.db.replaced-")]
    assert client.get_object(Bucket=s3_bucket, Key=kept)["Body"].read() == current
    assert "state/state.db.lease" not in keys  # the lease is released
    again = run_subprocess(env, "run", "--since", SINCE)
    assert again.returncode == 0 and any(e["event"] == "state_downloaded" for e in events_of(again.stdout))
