"""The S3 multipart path on a real moto server: journaled before the first part, aborted on failure,
recovered after a kill, and carrying every storage option the single PUT carries."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError

from archiver.destinations import StorageOptions
from archiver.destinations.s3 import S3Destination, make_s3_client
from archiver.errors import TransientError
from tests.helpers import MemoryJournal

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
THRESHOLD = 8 * MiB


class FaultyClient:
    """The real client with a hook before chosen calls: faults injected into the multipart loop."""

    def __init__(self, real: S3Client, **hooks: Any) -> None:
        self._real = real
        self._hooks = hooks

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._real, name)
        hook = self._hooks.get(name)
        if hook is None:
            return method

        def call(**kwargs: Any) -> Any:
            hook(kwargs)
            return method(**kwargs)

        return call


def destination(bucket: str, client: Any = None, **kwargs: Any) -> S3Destination:
    return S3Destination(
        f"s3://{bucket}/p", cast("S3Client", client or make_s3_client(3)), THRESHOLD, **kwargs
    )


def uploads(bucket: str) -> list[dict[str, Any]]:
    return cast(
        list[dict[str, Any]], boto3.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    )


def big_file(tmp_path: Path, size: int = 20 * MiB) -> Path:
    path = tmp_path / "big.mp3"
    path.write_bytes(os.urandom(size))
    return path


def refuse(kwargs: dict[str, Any]) -> None:
    raise EndpointConnectionError(endpoint_url="http://s3.invalid")


def test_s3_multipart_failure_between_parts_aborts_and_ends_the_journal(
    s3_bucket: str, tmp_path: Path
) -> None:
    def fail_part_two(kwargs: dict[str, Any]) -> None:
        if kwargs["PartNumber"] == 2:
            refuse(kwargs)

    journal = MemoryJournal()
    dest = destination(s3_bucket, FaultyClient(make_s3_client(1), upload_part=fail_part_two), journal=journal)
    with pytest.raises(TransientError):
        dest.put("a.mp3", big_file(tmp_path), content_type="audio/mpeg")
    assert len([u for u in journal.started if not u.startswith("intent:")]) == 1
    assert journal.unended_uploads() == []
    assert uploads(s3_bucket) == []
    assert dest.stat("a.mp3") is None


def test_s3_multipart_upload_that_cannot_be_aborted_is_left_to_recover(
    s3_bucket: str, tmp_path: Path
) -> None:
    def fail_part_two(kwargs: dict[str, Any]) -> None:
        if kwargs["PartNumber"] == 2:
            refuse(kwargs)

    journal = MemoryJournal()
    broken = FaultyClient(make_s3_client(1), upload_part=fail_part_two, abort_multipart_upload=refuse)
    with pytest.raises(TransientError):
        destination(s3_bucket, broken, journal=journal).put(
            "a.mp3", big_file(tmp_path), content_type="audio/mpeg"
        )
    assert [u["Key"] for u in uploads(s3_bucket)] == ["p/a.mp3"]  # S3 is down: parts stay billed for now
    assert journal.unended_uploads() == [("p/a.mp3", uploads(s3_bucket)[0]["UploadId"])]

    assert destination(s3_bucket, journal=journal).recover(before=_now()) == 1
    assert uploads(s3_bucket) == []
    assert journal.unended_uploads() == []


def test_s3_recover_ends_recorded_uploads_that_are_already_gone(s3_bucket: str) -> None:
    journal = MemoryJournal()
    journal.upload_started("p/gone.mp3", "an-upload-a-lifecycle-rule-expired")
    assert destination(s3_bucket, journal=journal).recover(before=_now()) == 0
    assert journal.unended_uploads() == []


def test_s3_multipart_sends_at_most_two_parts_at_once_with_their_checksums(
    s3_bucket: str, tmp_path: Path
) -> None:
    real = make_s3_client(3)
    lock = threading.Lock()
    in_flight, peak, checksums = 0, 0, []

    class Counting:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def upload_part(self, **kwargs: Any) -> Any:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
                checksums.append((kwargs["PartNumber"], kwargs["ChecksumSHA256"]))
            try:
                time.sleep(0.05)  # widen the window in which a third concurrent part would show
                return real.upload_part(**kwargs)
            finally:
                with lock:
                    in_flight -= 1

    source = big_file(tmp_path, 5 * THRESHOLD + 123)
    destination(s3_bucket, Counting()).put("a.mp3", source, content_type="audio/mpeg")
    data = source.read_bytes()
    assert [checksum for _, checksum in sorted(checksums)] == [
        base64.b64encode(hashlib.sha256(data[i : i + THRESHOLD]).digest()).decode()
        for i in range(0, len(data), THRESHOLD)
    ]
    assert 1 <= peak <= 2  # never a third part in memory (two at once is likely, not guaranteed)
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key="p/a.mp3")["Body"].read()
    assert body == data


@pytest.mark.parametrize("size", [1000, 2 * THRESHOLD + 1], ids=["single-put", "multipart"])
def test_s3_storage_options_apply_on_both_upload_paths(s3_bucket: str, tmp_path: Path, size: int) -> None:
    client = boto3.client("s3")
    bucket = f"{s3_bucket}-locked"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    storage = StorageOptions(
        sse="AES256",
        storage_class="STANDARD_IA",
        tags={"team": "legal", "source": "ringcentral"},
        object_lock_mode="GOVERNANCE",
        object_lock_days=30,
        legal_hold=True,
    )
    requests: list[dict[str, Any]] = []
    recording = FaultyClient(
        make_s3_client(3), put_object=requests.append, create_multipart_upload=requests.append
    )
    dest = destination(bucket, recording, storage=storage)
    dest.put("a.mp3", big_file(tmp_path, size), content_type="audio/mpeg", metadata={"sha256": "ab"})

    head = client.head_object(Bucket=bucket, Key="p/a.mp3")
    assert head["ContentLength"] == size
    assert (head["ContentType"], head["Metadata"]) == ("audio/mpeg", {"sha256": "ab"})
    assert head["ServerSideEncryption"] == "AES256"
    assert head["StorageClass"] == "STANDARD_IA"
    tags = {t["Key"]: t["Value"] for t in client.get_object_tagging(Bucket=bucket, Key="p/a.mp3")["TagSet"]}
    assert tags == {"team": "legal", "source": "ringcentral"}
    # moto keeps no Object Lock settings from CreateMultipartUpload (S3 does): check the request itself.
    [request] = requests
    assert request["ObjectLockMode"] == "GOVERNANCE"
    assert request["ObjectLockRetainUntilDate"] > _now() + timedelta(days=29)
    assert request["ObjectLockLegalHoldStatus"] == "ON"
    if size < THRESHOLD:
        assert head["ObjectLockMode"] == "GOVERNANCE"
        stored = dest.stat("a.mp3")
        assert stored is not None and stored.legal_hold
        assert stored.retained_until == head["ObjectLockRetainUntilDate"]


UPLOADER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from archiver.destinations.s3 import S3Destination, make_s3_client

    class PrintingJournal:
        def upload_started(self, key, upload_id):
            print(key, upload_id, flush=True)
        def upload_ended(self, upload_id):
            pass
        def unended_uploads(self):
            return []

    real = make_s3_client(3)

    class Stalling:
        def __getattr__(self, name):
            return getattr(real, name)
        def upload_part(self, **kwargs):
            if kwargs["PartNumber"] > 1:
                time.sleep(3600)  # the network stalls on part 2: the process is killed meanwhile
            return real.upload_part(**kwargs)

    dest = S3Destination(sys.argv[1], Stalling(), 8 * 1024 * 1024, journal=PrintingJournal())
    dest.put("killed.mp3", Path(sys.argv[2]), content_type="audio/mpeg")
    """
)


def test_s3_multipart_upload_killed_mid_way_is_aborted_by_recover(s3_bucket: str, tmp_path: Path) -> None:
    client = boto3.client("s3")
    source = big_file(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-c", UPLOADER, f"s3://{s3_bucket}/p", str(source)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().split()[1].startswith("intent:")  # journaled before the create
        key, upload_id = proc.stdout.readline().split()  # journaled before any part was sent
        deadline = time.monotonic() + 60
        while not client.list_parts(Bucket=s3_bucket, Key=key, UploadId=upload_id).get("Parts"):
            assert time.monotonic() < deadline, "part 1 never arrived"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()
    assert [(u["Key"], u["UploadId"]) for u in uploads(s3_bucket)] == [(key, upload_id)]

    journal = MemoryJournal()
    journal.upload_started(key, upload_id)  # what the killed run's journal kept
    assert destination(s3_bucket, journal=journal).recover(before=_now()) == 1
    assert uploads(s3_bucket) == []
    assert journal.unended_uploads() == []
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


def _now() -> datetime:
    return datetime.now(UTC)
