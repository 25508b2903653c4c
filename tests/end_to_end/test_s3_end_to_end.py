"""Runs end to end on moto and on a real S3-compatible store (SeaweedFS), for the behaviours a mock could
get wrong: at most three requests per new recording (one LIST to learn it is not stored yet, the audio,
the sidecar), multipart uploads with their checksums, Object Lock retention and legal holds, and one
true line when a reachable server refuses what the settings ask for."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import boto3
import pytest

import archiver.destinations
from archiver.emulator import DataOptions, Emulator
from tests.helpers import (
    MB,
    ONE_RECORDING_EACH,
    SINCE,
    Run,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    error_of,
    s3_objects,
    summary_of,
)
from tests.s3_servers import EACH_S3_SERVER, new_bucket


@pytest.fixture
def s3_requests(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[tuple[str, str]]]:
    """Every S3 request the archiver's clients send, as (operation, key or list prefix), counted through
    botocore's events (the servers expose no request log)."""
    sent: Counter[tuple[str, str]] = Counter()
    real = archiver.destinations.s3.make_s3_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        client = real(*args, **kwargs)

        def count(request: Any, event_name: str, **_: Any) -> None:
            parts = urlsplit(request.url)
            key = unquote(parts.path.lstrip("/")).partition("/")[2]  # path style: /bucket/key
            prefix = parse_qs(parts.query).get("prefix", [""])[0]
            sent[(event_name.rsplit(".", 1)[-1], key or prefix)] += 1

        client.meta.events.register("before-send.s3", count)
        return client

    monkeypatch.setattr(archiver.destinations.s3, "make_s3_client", counted)
    yield sent


def is_recordings(target: str) -> bool:
    """A recording's key, sidecar or stem (not the probe, the manifests or the index, all under `_`)."""
    return bool(target) and not target.startswith(("_", "rec/_"))


@EACH_S3_SERVER
def test_s3_a_new_recording_costs_at_most_three_requests(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    s3_bucket: str,
    s3_requests: Counter[tuple[str, str]],
) -> None:
    emu = emulator_factory(data=DataOptions(seed=61, calls=12, days=1, **ONE_RECORDING_EACH))
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}/rec")
    code, events = run_archiver(env, "run", "--since", SINCE)
    recordings = len(emu.ground_truth())
    assert code == 0 and summary_of(events)["archived"] == recordings > 0
    operations: Counter[str] = Counter()
    for (operation, target), count in s3_requests.items():
        if is_recordings(target):
            operations[operation] += count
    assert operations == {"ListObjectsV2": recordings, "PutObject": 2 * recordings}, operations
    assert len(s3_objects(s3_bucket, "rec/2")) == 2 * recordings  # audio and sidecar each

    # A second run over a new state finds them all stored: no upload, one LIST each and a few reads.
    s3_requests.clear()
    again = {**env, "RC_ARCHIVER_STATE_PATH": str(tmp_path / "other-state.db")}
    code, events = run_archiver(again, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["skipped"] + summary_of(events)["archived"] == recordings
    assert not any(op == "PutObject" and is_recordings(key) for op, key in s3_requests)


def test_s3_server_refusing_the_encryption_setting_is_one_true_line_and_exit_4(
    emulator: Emulator,
    tmp_path: Path,
    run_archiver: Run,
    seaweedfs_server: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SeaweedFS answers a PUT with SSE 500 InternalError: reachable, refusing; the fix names the setting."""
    bucket = new_bucket(seaweedfs_server, monkeypatch)
    env = archiver_env(
        emulator,
        tmp_path,
        f"s3://{bucket}/rec",
        RC_ARCHIVER_S3_SSE="AES256",
        RC_ARCHIVER_S3_MAX_ATTEMPTS="2",  # a 500 is retried; the refusal stays a refusal
    )
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 4
    error = error_of(events)
    assert "refused by the destination: InternalError" in error["error"]
    assert "unreachable" not in error["error"]
    assert "RC_ARCHIVER_S3_SSE=AES256" in error["fix"]
    assert s3_objects(bucket) == {}


@EACH_S3_SERVER
def test_s3_multipart_recordings_arrive_whole_and_leave_no_upload(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=67, calls=3, days=1, fixed_size=11 * MB, **ONE_RECORDING_EACH)
    )
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}", RC_ARCHIVER_MULTIPART_THRESHOLD=str(5 * MB))
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0, events[-3:]
    assert_matches_ground_truth(emu, audio_by_recording(s3_objects(s3_bucket)))
    assert boto3.client("s3").list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


@EACH_S3_SERVER
def test_s3_object_lock_and_legal_hold_hold_every_object(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    client = boto3.client("s3")
    locked = f"{s3_bucket}-lock"
    client.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
    env = archiver_env(
        emulator,
        tmp_path,
        f"s3://{locked}/o",
        RC_ARCHIVER_S3_OBJECT_LOCK_MODE="GOVERNANCE",
        RC_ARCHIVER_S3_OBJECT_LOCK_DAYS="1",
        RC_ARCHIVER_S3_LEGAL_HOLD="true",
    )
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0, events[-3:]
    keys = [k for k in s3_objects(locked, "o/2")]
    assert keys
    for key in keys:
        head = client.head_object(Bucket=locked, Key=key)
        assert head["ObjectLockMode"] == "GOVERNANCE" and head["ObjectLockLegalHoldStatus"] == "ON"
        assert head["ObjectLockRetainUntilDate"] > datetime.now(UTC) + timedelta(hours=23)
