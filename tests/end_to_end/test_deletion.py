"""Delete at the source after a verified archive (issue 14), against the emulator over HTTP.

A recording is deleted at RingCentral only when its archived object has been read back and hashes to
the sha256 taken while downloading (and, with Object Lock, its retention is in place), in batches of at
most 100, opt in, and a refusal stops deletion, not archiving.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator
from archiver.models import format_time
from tests.helpers import ONE_RECORDING_EACH, archiver_env, folder_env, s3_objects

Run = Callable[..., tuple[int, list[dict[str, Any]]]]
SINCE = format_time(datetime.now(UTC) - timedelta(days=3))
CAN_DELETE = "ReadCallLog ReadCallRecording EditCallLog"
DELETE = {"RC_ARCHIVER_DELETE_FROM_SOURCE": "true", "RC_ARCHIVER_DELETE_AFTER": "0s"}


def backlog(start: Callable[..., Emulator], calls: int, scope: str = CAN_DELETE) -> Emulator:
    data = DataOptions(seed=21, calls=calls, days=2, fixed_size=512, **ONE_RECORDING_EACH)  # type: ignore[arg-type]
    return start(data=data, scope=scope)


def summary_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "run_summary")


def recordings_in(root: Path) -> dict[str, Path]:
    """recording id -> its archived audio file (the default key template names it by id)."""
    return {
        p.stem: p for p in root.rglob("*") if p.suffix in (".mp3", ".wav") and "_manifests" not in p.parts
    }


def manifest_lines(root: Path) -> list[dict[str, Any]]:
    lines = []
    for part in sorted((root / "_manifests").glob("*.jsonl")):
        lines += [json.loads(line) for line in part.read_text().splitlines()[1:]]
    return lines


def delete_requests(emulator: Emulator) -> dict[str, int]:
    requests = emulator.stats.snapshot()["requests"]
    return {k: n for k, n in requests.items() if k.startswith("delete-recordings")}


def test_deletion_deletes_exactly_the_verified_recordings_in_batches_of_100(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    report: Callable[..., tuple[int, str]],
) -> None:
    emulator = backlog(emulator_factory, 105)
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    code, events = run_archiver(env, "run", "--since", SINCE)  # deletion off: the default
    assert code == 0 and summary_of(events)["archived"] == 105 and summary_of(events)["deleted"] == 0
    assert emulator.stats.snapshot()["deleted"] == {} and delete_requests(emulator) == {}

    # Break three archived copies: one missing, one cut short, one with other bytes of the same size.
    files = recordings_in(dest)
    missing, short, altered = sorted(files)[:3]
    files[missing].unlink()
    files[short].write_bytes(files[short].read_bytes()[:100])
    files[altered].write_bytes(bytes(512))
    broken = {missing, short, altered}
    verified = set(files) - broken

    code, out = report({**env, **DELETE}, "run", "--dry-run", "--since", SINCE)
    assert code == 0
    would = {line.split()[-1] for line in out.splitlines() if line.startswith("would delete at the source ")}
    assert would == verified and f"{len(verified)} recording(s) would be deleted at RingCentral" in out
    assert emulator.stats.snapshot()["deleted"] == {} and delete_requests(emulator) == {}

    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == len(verified)
    assert set(emulator.stats.snapshot()["deleted"]) == verified
    assert delete_requests(emulator) == {"delete-recordings 204": 2}  # 102 ids: 100, then 2
    skipped = {e["recording_id"]: e["reason"] for e in events if e["event"] == "deletion_skipped"}
    assert set(skipped) == broken
    assert "is missing" in skipped[missing] and "has 100 bytes, expected 512" in skipped[short]
    assert "does not hash to the sha256" in skipped[altered]
    deleted_lines = [line for line in manifest_lines(dest) if line["event"] == "deleted"]
    assert sorted(line["recording_id"] for line in deleted_lines) == sorted(verified)

    # Later runs and verify know we deleted them: no download, no deletion again, not missing.
    downloads = emulator.stats.snapshot()["downloads"]
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert summary_of(events)["archived"] == 0 and summary_of(events)["deleted"] == 0
    assert emulator.stats.snapshot()["downloads"] == downloads
    assert delete_requests(emulator) == {"delete-recordings 204": 2}
    code, out = report(env, "verify", "--since", SINCE, "--sample", "100")
    problems = {line.split()[1] for line in out.splitlines() if line.startswith(("missing ", "corrupt "))}
    assert code == 1 and problems == broken
    assert emulator.stats.snapshot()["downloads"] == downloads


def test_deletion_refused_403_stops_deletion_with_one_error_while_archiving_goes_on(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emulator = backlog(emulator_factory, 20, scope="ReadCallLog ReadCallRecording")  # no EditCallLog
    dest = tmp_path / "archive"
    dest.mkdir()
    code, events = run_archiver(
        archiver_env(emulator, tmp_path, dest.as_uri(), **DELETE), "run", "--since", SINCE
    )
    summary = summary_of(events)
    assert summary["archived"] == 20 and len(recordings_in(dest)) == 20 and summary["deleted"] == 0
    errors = [e for e in events if e["level"] == "error"]
    assert [e["event"] for e in errors] == ["deletion_refused"]
    assert "EditCallLog" in errors[0]["error"] and "RC_ARCHIVER_DELETE_FROM_SOURCE=false" in errors[0]["fix"]
    assert delete_requests(emulator) == {"delete-recordings 403": 1}
    assert emulator.stats.snapshot()["deleted"] == {}
    assert code == 0


def locked_bucket(s3_bucket: str) -> str:
    bucket = f"{s3_bucket}-lock"
    boto3.client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    return bucket


LOCK = {"RC_ARCHIVER_S3_OBJECT_LOCK_MODE": "GOVERNANCE", "RC_ARCHIVER_S3_OBJECT_LOCK_DAYS": "1"}


def test_deletion_with_object_lock_deletes_once_retention_is_confirmed_and_lists_each_deletion(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    emulator = backlog(emulator_factory, 12)
    bucket = locked_bucket(s3_bucket)
    env = archiver_env(emulator, tmp_path, f"s3://{bucket}/o", **LOCK, **DELETE)
    code, events = run_archiver(env, "run", "--since", SINCE)
    truth = {item["recordingId"] for item in emulator.ground_truth()}
    assert code == 0 and summary_of(events)["deleted"] == 12
    assert set(emulator.stats.snapshot()["deleted"]) == truth
    objects = s3_objects(bucket, "o/_manifests/")
    lines = [json.loads(line) for body in objects.values() for line in body.decode().splitlines()]
    assert {line["recording_id"] for line in lines if line.get("event") == "deleted"} == truth
    client = boto3.client("s3")
    for key in objects:  # manifests are locked like recordings
        assert client.head_object(Bucket=bucket, Key=key)["ObjectLockMode"] == "GOVERNANCE"


def test_deletion_with_object_lock_skips_objects_without_retention(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    emulator = backlog(emulator_factory, 12)
    bucket = locked_bucket(s3_bucket)
    plain = archiver_env(emulator, tmp_path, f"s3://{bucket}/o")
    assert run_archiver(plain, "run", "--since", SINCE)[0] == 0  # archived without any retention
    code, events = run_archiver({**plain, **LOCK, **DELETE}, "run", "--since", SINCE)
    assert code == 0
    skipped = [e for e in events if e["event"] == "deletion_skipped"]
    assert len(skipped) == 12 and all("no Object Lock retention in place" in e["reason"] for e in skipped)
    assert summary_of(events)["deleted"] == 0 and emulator.stats.snapshot()["deleted"] == {}
    assert delete_requests(emulator) == {}


def test_deletion_verify_repair_of_a_copy_deleted_at_the_source_reports_the_only_copy(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    report: Callable[..., tuple[int, str]],
) -> None:
    emulator = backlog(emulator_factory, 5)
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path, **DELETE)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == 5
    gone = sorted(recordings_in(dest))[0]
    recordings_in(dest)[gone].unlink()  # the archive of a recording RingCentral no longer has
    code, out = report(env, "verify", "--repair")  # no range: every recording deleted at the source
    (line,) = [line for line in out.splitlines() if line.startswith("missing ")]
    (only,) = [line for line in out.splitlines() if line.startswith("ONLY COPY ")]
    assert code == 1 and gone in line and gone in only
    assert "only copy" in only and "object versions" in only
    # RingCentral was asked once (it answers 404): nothing is queued that could never be downloaded.
    looked = emulator.stats.snapshot()["requests"].get("content 404", 0)
    assert looked == 1
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert summary_of(events)["pending"] == 0 and summary_of(events)["failed"] == 0
    assert emulator.stats.snapshot()["requests"].get("content 404", 0) == looked


@pytest.mark.parametrize("unknown", ["ignore", "refuse"])
def test_deletion_records_as_deleted_only_what_ringcentral_no_longer_holds(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, unknown: str
) -> None:
    """One recording of the batch is gone already (another client). Reading A of U10: the batch
    answers 204; reading B: 404 for the batch, settled with one look per recording, then the rest
    sent again. Either way nothing RingCentral still holds is recorded as deleted."""
    data = DataOptions(seed=21, calls=8, days=2, fixed_size=512, **ONE_RECORDING_EACH)  # type: ignore[arg-type]
    emulator = emulator_factory(data=data, scope=CAN_DELETE, delete_unknown=unknown)
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    gone = sorted(recordings_in(dest))[3]
    emulator.state.deletions.delete([gone], time.time())
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0
    assert set(emulator.stats.snapshot()["deleted"]) == set(recordings_in(dest)) - {gone}
    (line,) = [
        line for line in manifest_lines(dest) if line["recording_id"] == gone and line["event"] == "deleted"
    ]
    if unknown == "refuse":
        assert summary_of(events)["deleted"] == 7 and line["by"] == "source"
        assert delete_requests(emulator) == {"delete-recordings 404": 1, "delete-recordings 204": 1}
    else:  # RingCentral's 204 is its word for every id it was sent
        assert summary_of(events)["deleted"] == 8 and line["by"] == "us"
        assert delete_requests(emulator) == {"delete-recordings 204": 1}
    sent = delete_requests(emulator)
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0 and delete_requests(emulator) == sent  # nothing left to delete, nothing resent


def test_deletion_leaves_recordings_past_their_deadline_alone_and_records_nothing(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emulator = backlog(emulator_factory, 6)
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    # A retention shorter than the calls' age (a wrong setting, or a clock ahead): their deadlines have
    # passed, but RingCentral still holds them. Nothing is sent and nothing is recorded as deleted.
    short = {**env, **DELETE, "RC_ARCHIVER_SOURCE_RETENTION": "1h"}
    code, events = run_archiver(short, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == 0 and delete_requests(emulator) == {}
    assert [line for line in manifest_lines(dest) if line["event"] == "deleted"] == []
    # With the right retention the next run deletes them: nothing was written off.
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == 6
    assert set(emulator.stats.snapshot()["deleted"]) == set(recordings_in(dest))
