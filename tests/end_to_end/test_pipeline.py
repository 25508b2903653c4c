"""The archive pass end to end: emulator over HTTP -> archiver -> moto S3 server or a folder."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.emulator import DataOptions, Emulator, FaultOptions
from tests.helpers import (
    SINCE,
    Run,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    error_of,
    folder_env,
    folder_files,
    run_subprocess,
    s3_objects,
    summary_of,
)
from tests.s3_servers import EACH_S3_SERVER


def test_archive_multi_day_window_to_folder_matches_ground_truth(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(data=DataOptions(seed=21, calls=120, days=4, bytes_per_second=30))
    dest = tmp_path / "archive"
    dest.mkdir()
    code, events = run_archiver(archiver_env(emu, tmp_path, dest.as_uri()), "run", "--since", SINCE)
    assert code == 0, events[-3:]
    files = folder_files(dest)
    audio = audio_by_recording(files)
    assert_matches_ground_truth(emu, audio)
    summary = summary_of(events)
    assert summary["archived"] == len(audio) and summary["failed"] == 0
    # Leg-only recordings of transferred calls and twice-logged internal calls are both in the archive.
    leg_only = {
        leg.recording.id for c in emu.state.data.calls for leg in c.legs[1:] if leg.recording is not None
    }
    assert leg_only and leg_only <= set(audio)
    twice = [rid for rid, calls in emu.state.data.calls_by_recording.items() if len(calls) > 1]
    assert twice and set(twice) <= set(audio)
    assert all(n == 1 for n in emu.stats.snapshot()["downloads"].values())  # duplicates fetched once
    assert (
        len([e for e in events if e["event"] == "window_scanned"]) >= 4
    )  # a multi-day window is scanned in day slices
    # Sidecars carry the call-log record and the audio's identity.
    sidecar = json.loads(next(v for k, v in files.items() if k.endswith(".json")))
    for field in (
        "recording_id",
        "call_id",
        "session_id",
        "content_type",
        "size",
        "sha256",
        "start_time",
        "duration",
        "direction",
        "from",
        "to",
        "archived_at",
        "archiver_version",
        "call_log_record",
    ):
        assert field in sidecar
    assert not (dest / ".rc-archiver-staging").exists() or not any((dest / ".rc-archiver-staging").iterdir())


@EACH_S3_SERVER  # a real S3-compatible store too (tests/s3_servers.py)
def test_archive_to_s3_is_byte_identical_with_metadata(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}/calls")
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0, events[-3:]
    objects = s3_objects(s3_bucket)
    assert all(key.startswith("calls/") for key in objects)
    audio = audio_by_recording({k.removeprefix("calls/"): v for k, v in objects.items()})
    assert_matches_ground_truth(emulator, audio)
    import boto3

    key = next(k for k in objects if k.endswith((".mp3", ".wav")))
    head = boto3.client("s3").head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentType"] in ("audio/mpeg", "audio/wav")
    assert head["Metadata"]["sha256"] == hashlib.sha256(objects[key]).hexdigest()
    assert head["Metadata"]["recording-id"] in key


def test_rerun_archives_nothing_twice(emulator: Emulator, tmp_path: Path, run_archiver: Run) -> None:
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    downloads = emulator.stats.snapshot()["downloads"]
    before = {k: (dest / k).stat().st_mtime_ns for k in folder_files(dest)}
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0
    summary = summary_of(events)
    # (found may be 0: the days scanned before are not read again, only the day still going on)
    assert summary["archived"] == 0 and summary["skipped"] == summary["found"]
    assert emulator.stats.snapshot()["downloads"] == downloads
    assert {k: (dest / k).stat().st_mtime_ns for k in folder_files(dest)} == before


def test_truncated_bodies_resume_and_are_never_stored_short(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    emu = emulator_factory(faults=FaultOptions(rates={"truncate": 0.3}, seed=3))
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}")
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert any(e["event"] == "recording_archived" and e["resumed"] > 0 for e in events)
    audio = audio_by_recording(s3_objects(s3_bucket))
    truth = {item["recordingId"]: item for item in emu.ground_truth()}
    for recording_id, data in audio.items():  # whatever got stored is whole
        assert hashlib.sha256(data).hexdigest() == truth[recording_id]["sha256"]
    if code != 0:  # anything still failing is retried by the next run, not stored short
        emu.set_faults(FaultOptions())
        assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    assert_matches_ground_truth(emu, audio_by_recording(s3_objects(s3_bucket)))


def test_a_body_that_is_always_cut_short_fails_and_uploads_nothing(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    emulator.set_faults(FaultOptions(rates={"truncate": 1.0}, routes=frozenset({"content"})))
    code, events = run_archiver(
        archiver_env(emulator, tmp_path, f"s3://{s3_bucket}"), "run", "--since", SINCE
    )
    assert code == 1
    assert s3_objects(s3_bucket) == {}
    summary = summary_of(events)
    assert summary["failed"] == summary["found"] > 0
    assert "cut short" in summary["failures"][0]["reason"]
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    statuses = {row[0] for row in db.execute("SELECT status FROM recordings")}
    assert statuses == {"failed"}
    assert list((tmp_path / "spool").rglob("*.part")) == []  # partial downloads are removed


def test_wrong_jwt_exits_3_with_one_clear_line(emulator: Emulator, tmp_path: Path) -> None:
    env = folder_env(emulator, tmp_path, RC_JWT="not-the-right-jwt")
    result = run_subprocess(env, "run")
    assert result.returncode == 3
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1
    assert errors[0]["event"] == "auth_error" and "RC_JWT" in errors[0]["fix"]
    assert "Traceback" not in result.stdout + result.stderr
    assert "not-the-right-jwt" not in result.stdout + result.stderr


def test_wrong_client_secret_exits_3(emulator: Emulator, tmp_path: Path, run_archiver: Run) -> None:
    dest = tmp_path / "archive"
    dest.mkdir()
    code, events = run_archiver(
        archiver_env(emulator, tmp_path, dest.as_uri(), RC_CLIENT_SECRET="wrong-secret"), "run"
    )
    assert code == 3
    assert "RC_CLIENT_SECRET" in events[-1]["fix"]


def test_missing_bucket_exits_4(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}-missing/x")
    result = run_subprocess(env, "run")
    assert result.returncode == 4
    errors = [json.loads(line) for line in result.stdout.splitlines() if '"level": "error"' in line]
    assert len(errors) == 1 and "does not exist" in errors[0]["error"]
    assert "Traceback" not in result.stdout + result.stderr


def test_missing_folder_exits_4(emulator: Emulator, tmp_path: Path, run_archiver: Run) -> None:
    code, events = run_archiver(archiver_env(emulator, tmp_path, (tmp_path / "nope").as_uri()), "run")
    assert code == 4
    assert error_of(events)["event"] == "destination_error"
    assert events[-1]["event"] == "run_summary" and events[-1]["outcome"] == "destination"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RC_ARCHIVER_LOOKBACK", "yesterday"),
        ("RC_ARCHIVER_DESTINATION", "ftp://x"),
        ("RC_ARCHIVER_KEY_TEMPLATE", "{start:%Y}/{call_id}.{ext}"),
        ("RC_ARCHIVER_RATE_HEAVY", "ten a minute"),
        ("RC_ARCHIVER_TIMEZONE", "Mars/Olympus"),
    ],
)
def test_invalid_setting_exits_2_naming_it(
    emulator: Emulator, tmp_path: Path, name: str, value: str, run_archiver: Run
) -> None:
    env = archiver_env(emulator, tmp_path, tmp_path.as_uri(), **{name: value})
    code, events = run_archiver(env, "run")
    assert code == 2
    error = error_of(events)
    assert error["event"] == "settings_error" and name in error["error"]
    assert events[-1]["event"] == "run_summary" and events[-1]["outcome"] == "settings"


def test_missing_credentials_exit_2_naming_each(tmp_path: Path, run_archiver: Run) -> None:
    code, events = run_archiver({"RC_ARCHIVER_DESTINATION": tmp_path.as_uri()}, "run")
    assert code == 2
    for name in ("RC_CLIENT_ID", "RC_CLIENT_SECRET", "RC_JWT"):
        assert name in error_of(events)["error"]


def test_hostile_call_log_values_never_escape_the_root(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=9, calls=40, days=2, bytes_per_second=20, hostile_fraction=1.0)
    )
    dest = tmp_path / "nested" / "archive"
    dest.mkdir(parents=True)
    template = "{from_name}/{to_number}/{direction}/{call_id}-{recording_id}-{from_number}.{ext}"
    env = archiver_env(emu, tmp_path, dest.as_uri(), RC_ARCHIVER_KEY_TEMPLATE=template)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0, events[-3:]
    outside = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and dest not in p.parents and "state" not in p.parts and "spool" not in p.parts
    ]
    assert outside == []
    for path in dest.rglob("*"):
        rel = path.relative_to(dest).as_posix()
        assert ".." not in rel.split("/") and "\\" not in rel
        assert all(ord(ch) >= 32 for ch in rel)
    assert_matches_ground_truth(emu, audio_by_recording(folder_files(dest)))


def test_no_secret_reaches_debug_logs(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str
) -> None:
    emu = emulator_factory(token_ttl=3600)
    env = archiver_env(
        emu,
        tmp_path,
        f"s3://{s3_bucket}",
        RC_ARCHIVER_LOG_LEVEL="debug",
        RC_JWT="eyJhbGciOiJSUzI1NiJ9.super-secret-jwt-body.signature",
        RC_CLIENT_SECRET="very-secret-client-secret",
    )
    emu.config.jwt = env["RC_JWT"]
    emu.config.client_secret = env["RC_CLIENT_SECRET"]
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 0, result.stdout[-2000:]
    logs = result.stdout + result.stderr
    assert '"level": "debug"' in logs  # the debug level really was on
    for secret in ("super-secret-jwt-body", "very-secret-client-secret", 'testing"', "Bearer ", "Basic "):
        assert secret not in logs
    tokens = [t for t in emu.state.tokens] + list(emu.state.refresh_tokens)
    assert all(t not in logs for t in tokens)


def test_second_run_on_a_held_lock_exits_5(emulator: Emulator, tmp_path: Path, run_archiver: Run) -> None:
    from archiver.state import FileLock

    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    held = FileLock(tmp_path / "state" / "state.db.lock")
    held.acquire()
    try:
        code, events = run_archiver(env, "run")
    finally:
        held.release()
    assert code == 5
    error = error_of(events)
    assert error["event"] == "lock_held" and "--wait-lock" in error["fix"]
    assert events[-1]["event"] == "run_summary" and events[-1]["outcome"] == "lock"
    assert folder_files(dest) == {}


def test_not_ready_recordings_stay_pending_for_the_next_run(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(recording_delay=10 * 86400)
    dest = tmp_path / "archive"
    env = folder_env(emu, tmp_path)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 1
    summary = summary_of(events)
    assert summary["pending"] == summary["found"] > 0 and summary["failed"] == 0
    emu.config.recording_delay = 0
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0
    assert_matches_ground_truth(emu, audio_by_recording(folder_files(dest)))
