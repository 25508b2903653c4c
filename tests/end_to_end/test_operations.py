"""Operator tools against the emulator and the moto server: status, verify/repair, check, dry run,
progress, S3 storage options and the per-run manifest."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator
from archiver.models import format_time
from archiver.state import lock_for
from tests.helpers import (
    SINCE,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    events_of,
    folder_env,
    folder_files,
    run_subprocess,
    s3_objects,
    summary_of,
)
from tests.s3_servers import EACH_S3_SERVER

Run = Callable[..., tuple[int, list[dict[str, Any]]]]


def test_status_shows_runs_failures_and_recordings_at_risk(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=51, calls=40, days=80, bytes_per_second=20), recording_delay=1e9
    )
    env = folder_env(emu, tmp_path)
    since = format_time(datetime.now(UTC) - timedelta(days=81))
    assert run_subprocess(env, "run", "--since", since).returncode == 1  # nothing is ready at RingCentral
    result = run_subprocess(env, "status", "--json")
    assert result.returncode == 0, result.stdout
    report = json.loads(result.stdout)
    assert report["counts"]["pending"] > 0 and report["counts"]["archived"] == 0
    assert report["last_runs"][0]["outcome"] == "incomplete"
    old = [
        c
        for c in emu.state.data.calls
        if c.recording and c.start < datetime.now(UTC).timestamp() - 75 * 86400
    ]
    # At risk: deadline (start + 90d by default) within RC_ARCHIVER_RISK_WINDOW (15d), i.e. older than 75d.
    assert old and len(report["at_risk"]) >= len({c.recording.id for c in old if c.recording})
    assert report["risk_window"] == "15d"
    assert all(item["age_days"] > 75 and item["days_left"] <= 15 for item in report["at_risk"])
    table = run_subprocess(env, "status").stdout
    assert "at risk" in table and report["at_risk"][0]["recording_id"] in table
    assert "RingCentral deletes them within 15d" in table


def test_status_without_a_state_file_exits_2(tmp_path: Path) -> None:
    result = run_subprocess({"RC_ARCHIVER_STATE_PATH": str(tmp_path / "none.db")}, "status")
    assert result.returncode == 2 and "no state file" in result.stderr  # logs of report commands: stderr
    assert not (tmp_path / "none.db").exists()


@EACH_S3_SERVER  # a real S3-compatible store too (tests/s3_servers.py)
def test_verify_finds_deleted_and_altered_objects_and_repair_restores_them(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}/v")
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    clean = run_subprocess(env, "verify", "--since", SINCE, "--sample", "100")
    assert clean.returncode == 0, clean.stdout
    assert "missing 0, corrupt 0" in clean.stdout
    client = boto3.client("s3")
    audio = sorted(k for k in s3_objects(s3_bucket) if k.endswith((".mp3", ".wav")))
    deleted, altered = audio[0], audio[1]
    client.delete_object(Bucket=s3_bucket, Key=deleted)
    head = client.head_object(Bucket=s3_bucket, Key=altered)
    body = client.get_object(Bucket=s3_bucket, Key=altered)["Body"].read()
    flipped = bytes([body[0] ^ 0xFF]) + body[1:]  # same size, same metadata, different bytes
    client.put_object(Bucket=s3_bucket, Key=altered, Body=flipped, Metadata=head["Metadata"])

    found = run_subprocess(env, "verify", "--since", SINCE, "--sample", "100", "--repair")
    assert found.returncode == 1
    deleted_id = deleted.rsplit("/", 1)[-1].split(".")[0]
    altered_id = altered.rsplit("/", 1)[-1].split(".")[0]
    assert f"missing  {deleted_id}" in found.stdout and f"corrupt  {altered_id}" in found.stdout
    assert "missing 1, corrupt 1" in found.stdout

    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    objects = {k.removeprefix("v/"): v for k, v in s3_objects(s3_bucket).items()}
    assert_matches_ground_truth(emulator, audio_by_recording(objects))
    assert run_subprocess(env, "verify", "--since", SINCE, "--sample", "100").returncode == 0


def test_verify_catches_recordings_the_state_never_knew(emulator: Emulator, tmp_path: Path) -> None:
    env = folder_env(emulator, tmp_path)
    result = run_subprocess(env, "verify", "--since", SINCE)
    assert result.returncode == 1
    assert f"missing {len(emulator.ground_truth())}" in result.stdout


def test_check_passes_on_a_good_setup_with_one_line_per_check(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}/c")
    result = run_subprocess(env, "check")
    assert result.returncode == 0, result.stdout
    names = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok")]
    assert names == ["settings", "state", "login", "scope", "call", "recording", "destination"]
    assert s3_objects(s3_bucket) == {}  # the probe object is gone
    assert emulator.stats.snapshot()["revokes"] == 1


def test_check_reports_each_failure_with_its_fix(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}-absent", RC_JWT="wrong")
    result = run_subprocess(env, "check")
    assert result.returncode == 3  # the codes of `run`: the first failure, a refused login, is exit 3
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED")]
    assert [line.split()[1] for line in failed] == ["login", "call", "destination"]
    assert result.stdout.count("fix:") == 2 and "RC_JWT" in result.stdout
    bad = run_subprocess({"RC_ARCHIVER_LOOKBACK": "never"}, "check")
    assert (
        bad.returncode == 2
        and bad.stdout.startswith("FAILED  settings")
        and "RC_ARCHIVER_LOOKBACK" in bad.stdout
    )


def test_dry_run_lists_keys_and_changes_nothing(emulator: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    result = run_subprocess(env, "run", "--dry-run", "--since", SINCE)
    assert result.returncode == 0, result.stdout
    truth = emulator.ground_truth()
    assert f"{len(truth)} recording(s) would be archived" in result.stdout
    assert all(item["recordingId"] in result.stdout for item in truth)
    assert [p for p in dest.rglob("*") if p.is_file()] == []
    assert emulator.stats.snapshot()["downloads"] == {}
    import sqlite3

    db = sqlite3.connect(tmp_path / "state" / "state.db")
    assert db.execute("SELECT COUNT(*) FROM windows").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 0  # no watermark
    assert {r[0] for r in db.execute("SELECT status FROM recordings")} == {"pending"}  # the scan cache


def test_backfill_reports_progress_off_a_tty(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    from archiver.emulator import GroupLimit

    emu = emulator_factory(
        data=DataOptions(seed=52, calls=60, days=3, bytes_per_second=20), heavy=GroupLimit(30, 1.0, 1.0)
    )
    env = folder_env(emu, tmp_path, RC_ARCHIVER_PROGRESS_INTERVAL="0.5s")
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines() if '"progress"' in line]
    assert len(events) >= 2
    for event in events:
        assert {"done", "total", "bytes", "rate", "eta_seconds", "days_scanned", "days_total"} <= set(event)
    assert events[-1]["done"] >= events[0]["done"]
    first = events[0]
    assert first["done"] < first["total"] and first["eta_seconds"] > 0


def test_each_run_writes_a_manifest(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}/m")
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 0
    run_id = next(json.loads(line)["run_id"] for line in result.stdout.splitlines() if "run_summary" in line)
    objects = s3_objects(s3_bucket)
    parts = sorted(k for k in objects if k.startswith(f"m/_manifests/{run_id}-"))
    assert parts and parts[0].endswith("-00001.jsonl")
    lines = [json.loads(line) for key in parts for line in objects[key].decode().splitlines()]
    headers = [line for line in lines if "manifest" in line]
    assert len(headers) == len(parts) and headers[0]["previous"] is None  # the first run: a new chain
    manifest = [line for line in lines if "manifest" not in line]
    truth = {item["recordingId"]: item for item in emulator.ground_truth()}
    assert {entry["recording_id"] for entry in manifest} == set(truth)
    for entry in manifest:
        assert set(entry) == {"event", "recording_id", "key", "size", "sha256", "call_id", "start_time"}
        assert entry["event"] == "archived"
        assert entry["sha256"] == truth[entry["recording_id"]]["sha256"]
        assert f"m/{entry['key']}" in objects


def test_s3_storage_options_apply_to_audio_and_sidecar(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    client = boto3.client("s3")
    locked = f"{s3_bucket}-lock"
    client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    env = archiver_env(
        emulator,
        tmp_path,
        f"s3://{locked}/o",
        RC_ARCHIVER_S3_SSE="AES256",
        RC_ARCHIVER_S3_STORAGE_CLASS="STANDARD_IA",
        RC_ARCHIVER_S3_TAGS="team=legal,source=ringcentral",
        RC_ARCHIVER_S3_OBJECT_LOCK_MODE="GOVERNANCE",
        RC_ARCHIVER_S3_OBJECT_LOCK_DAYS="30",
    )
    assert run_subprocess(env, "check").returncode == 0
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 0, result.stdout[-2000:]
    keys = [k for k in s3_objects(locked) if not k.startswith("o/_manifests/")]
    for key in [
        next(k for k in keys if k.endswith((".mp3", ".wav"))),
        next(k for k in keys if k.endswith(".json")),
    ]:
        head = client.head_object(Bucket=locked, Key=key)
        assert head["ServerSideEncryption"] == "AES256"
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ObjectLockMode"] == "GOVERNANCE"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(days=29)
        tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=locked, Key=key)["TagSet"]}
        assert tags == {"team": "legal", "source": "ringcentral"}


@pytest.mark.parametrize("command", [("run", "--since", SINCE), ("check",)])
def test_object_lock_on_a_bucket_without_it_is_a_clear_error_before_any_upload(
    emulator: Emulator, tmp_path: Path, s3_bucket: str, command: tuple[str, ...]
) -> None:
    env = archiver_env(
        emulator,
        tmp_path,
        f"s3://{s3_bucket}",
        RC_ARCHIVER_S3_OBJECT_LOCK_MODE="COMPLIANCE",
        RC_ARCHIVER_S3_OBJECT_LOCK_DAYS="365",
    )
    result = run_subprocess(env, *command)
    assert result.returncode == 4  # `check` exits with the codes of `run`
    assert "Object Lock" in result.stdout + result.stderr
    assert s3_objects(s3_bucket) == {}
    if command[0] == "run":  # (check reads one byte of one recording to prove ReadCallRecording)
        assert emulator.stats.snapshot()["downloads"] == {}


def test_a_replaced_state_forgets_nothing_of_the_retention_window(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    """Issue 18 #3: five days of calls, the older ones archived, the state file deleted; a run with no
    --since on the new state scans the whole source retention window, adopts what the destination
    holds and downloads the rest: every recording of the five days is known, none forgotten."""
    emu = emulator_factory(data=DataOptions(seed=53, calls=80, days=5, bytes_per_second=20))
    dest = tmp_path / "archive"
    env = folder_env(emu, tmp_path, RC_ARCHIVER_SOURCE_RETENTION="30d")
    until = format_time(datetime.now(UTC) - timedelta(days=2))
    first = run_subprocess(env, "run", "--since", SINCE, "--until", until)
    assert first.returncode == 0, first.stdout[-2000:]
    archived_first = summary_of(events_of(first.stdout))["archived"]
    truth = {item["recordingId"] for item in emu.ground_truth()}
    assert 0 < archived_first < len(truth) - 10  # the last two days' recordings are not archived yet
    state = tmp_path / "state" / "state.db"
    for leftover in (state, Path(f"{state}-wal"), Path(f"{state}-shm")):
        leftover.unlink(missing_ok=True)

    second = run_subprocess(env, "run")  # no --since: a new state's first run
    assert second.returncode == 0, second.stdout[-2000:]
    events = events_of(second.stdout)
    (said,) = [e for e in events if e["event"] == "full_retention_scan"]
    assert said["level"] == "info" and "1,000 calls per day slice" in said["cost"]
    assert said["day_slices"] >= 30
    summary = summary_of(events)
    assert summary["skipped"] == archived_first  # adopted from the destination, not downloaded again
    assert summary["archived"] == len(truth) - archived_first
    db = sqlite3.connect(state)
    known = dict(db.execute("SELECT recording_id, status FROM recordings").fetchall())
    db.close()
    assert set(known) == truth and set(known.values()) == {"archived"}
    assert all(count == 1 for count in emu.stats.snapshot()["downloads"].values())
    assert_matches_ground_truth(emu, audio_by_recording(folder_files(dest)))


def test_status_is_strictly_read_only_and_never_waits_for_a_run(emulator: Emulator, tmp_path: Path) -> None:
    env = folder_env(emulator, tmp_path)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    state = tmp_path / "state" / "state.db"
    lock = lock_for(state)
    lock.acquire()  # a run holds the lock
    try:

        def files() -> dict[str, bytes | None]:
            """Every file beside the state, with the bytes of the state and its WAL (-shm: presence)."""
            return {
                p.name: None if p.name.endswith(("-shm", ".lock")) else p.read_bytes()
                for p in state.parent.iterdir()
            }

        at_rest = files()
        assert set(at_rest) == {"state.db", "state.db.lock"}
        started = time.monotonic()
        result = run_subprocess(env, "status", "--json", timeout=30)
        assert result.returncode == 0, result.stderr
        assert files() == at_rest  # no -wal or -shm created, no byte written
        # The run writing: a transaction open in WAL mode. The report reads the last commit at once.
        writer = sqlite3.connect(state, isolation_level=None)
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO runs (run_id, started_at) VALUES ('writing', '2026-01-01T00:00:00Z')")
        writing = files()
        assert {"state.db-wal", "state.db-shm"} <= set(writing)
        report = run_subprocess(env, "status", "--json", timeout=30)
        assert report.returncode == 0, report.stderr
        assert files() == writing
        assert "writing" not in report.stdout  # an uncommitted write is not shown
        writer.execute("ROLLBACK")
        writer.close()
        assert time.monotonic() - started < 20  # never the 30 s busy timeout
        assert json.loads(report.stdout)["last_runs"][0]["outcome"] == "ok"
    finally:
        lock.release()


def test_retry_accepts_the_wait_lock_its_hint_offers(tmp_path: Path) -> None:
    from archiver.cli import build_parser
    from archiver.state import StateStore

    state = tmp_path / "state.db"
    StateStore(state).close()
    env = {"RC_ARCHIVER_STATE_PATH": str(state), "RC_ARCHIVER_LOG_FORMAT": "json"}
    lock = lock_for(state)
    lock.acquire()
    try:
        held = run_subprocess(env, "retry", "--all", "--wait-lock", "1")
        assert held.returncode == 5
        (error,) = [e for e in events_of(held.stderr) if e["level"] == "error"]
        assert "--wait-lock SECONDS" in error["fix"]
        threading.Timer(1.0, lock.release).start()
        queued = run_subprocess(env, "retry", "--all", "--wait-lock", "30")
        assert queued.returncode == 0, queued.stderr
    finally:
        lock.release()
    # Every command that takes the lock (and so can print that hint) accepts the option.
    for command in (["run"], ["verify"], ["retry", "--all"], ["state", "restore", "x"], ["state", "migrate"]):
        assert build_parser().parse_args([*command, "--wait-lock", "5"]).wait_lock == 5.0


def test_no_hint_tells_an_operator_to_start_another_archiver() -> None:
    import archiver

    for source in Path(archiver.__file__).parent.rglob("*.py"):
        text = source.read_text()
        assert "`rc-archiver run` first" not in text, source
        assert "move it aside;" not in text, source  # moving the state aside comes after a backup
