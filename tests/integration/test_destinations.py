"""One contract suite for every destination: the folder backend (xattr metadata and its metadata-file
fallback) and the S3 backend on a real moto server and on a real S3-compatible store (SeaweedFS), held
to the same promises (as Litestream's RunWithReplicaClient and restic's backend Suite do).
Backend-specific checks follow the contract, the S3 ones against both servers."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.destinations import Destination, StorageOptions, open_destination
from archiver.destinations.folder_metadata import META_DIR, XATTR
from archiver.destinations.local import STAGING, LocalDestination
from archiver.destinations.s3 import S3Timeouts
from archiver.errors import DestinationError, SettingsError, TransientError
from tests.helpers import AWS_ENV, MemoryJournal
from tests.proxy import TcpProxy
from tests.s3_servers import EACH_S3_SERVER, S3_SERVERS, new_bucket

MiB = 1024 * 1024
LARGE = 20 * MiB  # above the S3 threshold used here: three 8 MiB parts


@dataclass
class Backend:
    """A destination under test, with what the suite must see behind its back."""

    name: str
    destination: Destination
    make_leftover: Callable[[datetime], None]  # what a writer killed at that time leaves behind
    leftovers: Callable[[], int]  # staging files / incomplete multipart uploads
    outside: Callable[[], list[str]]  # anything written outside the root / prefix


def _folder(tmp_path: Path, *, xattrs: bool) -> Backend:
    world = tmp_path / "world"
    root, neighbour = world / "archive", world / "neighbour"  # a sibling an escaping key could reach
    root.mkdir(parents=True)
    neighbour.mkdir()
    staging = root / STAGING

    def make_leftover(when: datetime) -> None:
        staging.mkdir(exist_ok=True)
        leftover = staging / f".part-killed-{when.timestamp()}"
        leftover.write_bytes(b"half an upload")
        os.utime(leftover, (when.timestamp(), when.timestamp()))

    def outside() -> list[str]:
        return [str(p) for p in world.rglob("*") if not p.is_relative_to(root) and p != neighbour]

    return Backend(
        "folder" if xattrs else "folder-metadata-files",
        LocalDestination(root.as_uri(), xattrs=xattrs),
        make_leftover,
        lambda: len(list(staging.iterdir())) if staging.exists() else 0,
        outside,
    )


def _s3(bucket: str, journal: MemoryJournal) -> Backend:
    client = boto3.client("s3")
    destination = open_destination(f"s3://{bucket}/p", multipart_threshold=8 * MiB, journal=journal)

    def make_leftover(when: datetime) -> None:
        upload = client.create_multipart_upload(Bucket=bucket, Key="p/killed.mp3")
        client.upload_part(
            Bucket=bucket, Key="p/killed.mp3", UploadId=upload["UploadId"], PartNumber=1, Body=b"x" * 1024
        )
        journal.upload_started("p/killed.mp3", upload["UploadId"])  # journaled, then the writer died

    def outside() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        keys = [item["Key"] for page in pages for item in page.get("Contents", [])]
        return [key for key in keys if not key.startswith("p/")]

    return Backend(
        "s3",
        destination,
        make_leftover,
        lambda: len(client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])),
        outside,
    )


@pytest.fixture(params=["folder", "folder-metadata-files", *(f"s3-{name}" for name in S3_SERVERS)])
def backend(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Backend:
    if request.param.startswith("s3-"):  # s3-moto, s3-seaweedfs: a fresh bucket on that server
        server: str = request.getfixturevalue(request.param.removeprefix("s3-") + "_server")
        return _s3(new_bucket(server, monkeypatch), MemoryJournal())
    return _folder(tmp_path, xattrs=request.param == "folder")


def read(destination: Destination, key: str) -> bytes:
    with destination.open(key) as stream:
        return stream.read()


def payload(size: int, seed: str) -> bytes:
    block = hashlib.sha256(seed.encode()).digest() * 2048  # 64 KiB, distinct per seed
    return (block * (size // len(block) + 1))[:size]


class Gate:
    """A source whose read stops half-way until released: holds a put in flight, deterministically."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.started = threading.Event()
        self.release = threading.Event()

    def path(self, tmp_path: Path) -> Path:
        gate = self

        class GatedPath(type(tmp_path)):  # type: ignore[misc]
            def open(self, *args: Any, **kwargs: Any) -> Any:
                return _GatedStream(gate)

        return GatedPath(tmp_path / "gated-source")


class _GatedStream(io.BytesIO):
    def __init__(self, gate: Gate) -> None:
        super().__init__(gate.data)
        self._gate = gate

    def read(self, size: int | None = -1) -> bytes:
        if self.tell() > 0:
            self._gate.started.set()
            assert self._gate.release.wait(60)
        return super().read(size)


@pytest.fixture
def in_flight(backend: Backend, tmp_path: Path) -> Iterator[Callable[[str, bytes], Gate]]:
    """Start a put in a thread and hold it half-way; at the end, let it finish and require it succeeded."""
    threads: list[tuple[threading.Thread, Gate, list[BaseException]]] = []

    def start(key: str, data: bytes) -> Gate:
        gate = Gate(data)
        errors: list[BaseException] = []

        def put() -> None:
            try:
                backend.destination.put(
                    key, gate.path(tmp_path), content_type="audio/mpeg", metadata={"v": "gated"}
                )
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=put)
        thread.start()
        assert gate.started.wait(60), "the put never started reading its source"
        threads.append((thread, gate, errors))
        return gate

    yield start
    for thread, gate, errors in threads:
        gate.release.set()
        thread.join(60)
        assert errors == []


# ---- the contract -------------------------------------------------------------------------------------


def test_destination_put_stat_open_delete_round_trip(backend: Backend, tmp_path: Path) -> None:
    dest = backend.destination
    source = tmp_path / "source.mp3"
    source.write_bytes(payload(3000, "file"))
    dest.put("2024/01/a.mp3", source, content_type="audio/mpeg")
    dest.put("2024/01/a.json", b'{"k": 1}', content_type="application/json")

    stored = dest.stat("2024/01/a.mp3")
    assert stored is not None
    assert (stored.key, stored.size) == ("2024/01/a.mp3", 3000)
    assert read(dest, "2024/01/a.mp3") == source.read_bytes()
    assert read(dest, "2024/01/a.json") == b'{"k": 1}'

    dest.delete("2024/01/a.mp3")
    assert dest.stat("2024/01/a.mp3") is None
    assert dest.stat("2024/01/a.json") is not None


def test_destination_existing_names_exactly_the_keys_that_hold_an_object(backend: Backend) -> None:
    dest = backend.destination
    for key in ("d/1.mp3", "d/1.json", "d/12.mp3", "d/1.mp3x"):
        dest.put(key, b"x", content_type="audio/mpeg")
    asked = ["d/1.mp3", "d/1.wav", "d/1.bin", "d/1.json"]
    assert dest.existing(asked) == {"d/1.mp3", "d/1.json"}  # not d/12.mp3 or d/1.mp3x beside them
    assert dest.existing(["d/1.wav"]) == set() and dest.existing([]) == set()
    dest.delete("d/1.mp3")
    assert dest.existing(asked) == {"d/1.json"}


def test_destination_missing_objects(backend: Backend) -> None:
    dest = backend.destination
    assert dest.stat("never/written.mp3") is None
    with pytest.raises(DestinationError, match="no object"):
        read(dest, "never/written.mp3")
    dest.delete("never/written.mp3")  # no error


def test_destination_unreadable_source_is_the_callers_error_and_writes_nothing(
    backend: Backend, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError):  # the spool's problem, not a failing destination
        backend.destination.put("a.mp3", tmp_path / "vanished", content_type="audio/mpeg")
    assert backend.destination.stat("a.mp3") is None
    assert backend.leftovers() == 0


def test_destination_metadata_and_content_type_round_trip(backend: Backend, tmp_path: Path) -> None:
    dest = backend.destination
    metadata = {"Recording-Id": "123", "call-id": "abc", "sha256": "0" * 64}
    dest.put("m/a.wav", b"RIFF....", content_type="audio/wav", metadata=metadata)
    source = tmp_path / "s"
    source.write_bytes(b"x" * 10)
    dest.put("m/b.mp3", source, content_type="audio/mpeg", metadata={"sha256": "1" * 64})
    dest.put("m/c.json", b"{}", content_type="application/json")

    a, b, c = dest.stat("m/a.wav"), dest.stat("m/b.mp3"), dest.stat("m/c.json")
    assert a is not None and b is not None and c is not None
    assert a.metadata == {"recording-id": "123", "call-id": "abc", "sha256": "0" * 64}
    assert a.content_type == "audio/wav"
    assert (b.metadata, b.content_type) == ({"sha256": "1" * 64}, "audio/mpeg")
    assert (c.metadata, c.content_type) == ({}, "application/json")
    assert (a.retained_until, a.legal_hold) == (None, False)


def test_destination_refuses_metadata_it_could_not_keep(backend: Backend) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        backend.destination.put("x.mp3", b"x", content_type="audio/mpeg", metadata={"name": "Zoë"})
    with pytest.raises(ValueError, match="token"):
        backend.destination.put("x.mp3", b"x", content_type="audio/mpeg", metadata={"a b": "1"})
    assert backend.destination.stat("x.mp3") is None


def test_destination_overwrite_replaces_bytes_and_metadata(backend: Backend) -> None:
    dest = backend.destination
    dest.put("o.mp3", b"first version", content_type="audio/mpeg", metadata={"v": "1", "old": "yes"})
    dest.put("o.mp3", b"second", content_type="audio/wav", metadata={"v": "2"})
    stored = dest.stat("o.mp3")
    assert stored is not None
    assert (stored.size, stored.content_type, stored.metadata) == (6, "audio/wav", {"v": "2"})
    assert read(dest, "o.mp3") == b"second"


def test_destination_reader_never_sees_a_partial_object(backend: Backend, tmp_path: Path) -> None:
    dest = backend.destination
    old, new = b"old version", payload(LARGE, "new")
    dest.put("big.mp3", old, content_type="audio/mpeg")
    source = tmp_path / "big"
    source.write_bytes(new)
    writer = threading.Thread(
        target=dest.put, args=("big.mp3", source), kwargs={"content_type": "audio/mpeg"}
    )
    seen: set[int] = set()
    writer.start()
    while writer.is_alive() or not seen:
        stored = dest.stat("big.mp3")
        assert stored is not None and stored.size in (len(old), len(new))
        body = read(dest, "big.mp3")
        assert body in (old, new), f"a reader saw {len(body)} bytes"
        seen.add(len(body))
    writer.join()
    assert read(dest, "big.mp3") == new


def test_destination_new_key_is_absent_until_complete(
    backend: Backend, in_flight: Callable[[str, bytes], Gate]
) -> None:
    gate = in_flight("fresh.mp3", payload(LARGE, "fresh"))
    assert backend.destination.stat("fresh.mp3") is None
    gate.release.set()


@pytest.mark.parametrize(
    "key",
    [
        "../x.mp3",
        "a/../../x.mp3",
        "/abs.mp3",
        "a//b.mp3",
        "a/./b.mp3",
        "a\\..\\b.mp3",
        "ctl\x00.mp3",
        "new\nline.mp3",
        "del\x7f.mp3",
        "",
        "x" * 2000,
    ],
)
def test_destination_refuses_hostile_keys(backend: Backend, key: str) -> None:
    dest = backend.destination
    with pytest.raises((SettingsError, DestinationError)):
        dest.put(key, b"escaped", content_type="audio/mpeg")
    with pytest.raises((SettingsError, DestinationError)):
        dest.stat(key)
    with pytest.raises((SettingsError, DestinationError)):
        dest.delete(key)
    assert backend.outside() == []


def test_destination_concurrent_writers_leave_every_object_whole(backend: Backend) -> None:
    dest = backend.destination
    versions = {f"w{n}": payload(200_000 + n, f"w{n}") for n in range(6)}
    errors: list[BaseException] = []

    def write(key: str, name: str) -> None:
        try:
            dest.put(key, versions[name], content_type="audio/mpeg", metadata={"writer": name})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"own/{name}.mp3", name)) for name in versions]
    threads += [threading.Thread(target=write, args=("shared.mp3", name)) for name in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    for name, data in versions.items():
        assert read(dest, f"own/{name}.mp3") == data
    shared = dest.stat("shared.mp3")
    assert shared is not None
    winner = shared.metadata["writer"]  # one version wins, its metadata with it
    assert read(dest, "shared.mp3") == versions[winner]
    assert shared.size == len(versions[winner])


def test_destination_probe_leaves_no_trace(backend: Backend) -> None:
    backend.destination.probe()
    backend.destination.probe()
    assert backend.leftovers() == 0
    assert backend.outside() == []


def test_destination_probe_leaves_another_writers_put_intact(
    backend: Backend, in_flight: Callable[[str, bytes], Gate]
) -> None:
    data = payload(LARGE, "in flight")
    gate = in_flight("busy.mp3", data)
    for _ in range(3):
        backend.destination.probe()
    gate.release.set()  # the fixture then requires the put to succeed
    _wait_for(lambda: backend.destination.stat("busy.mp3") is not None)
    assert read(backend.destination, "busy.mp3") == data


def test_destination_recover_removes_only_leftovers_older_than_before(
    backend: Backend, in_flight: Callable[[str, bytes], Gate]
) -> None:
    now = datetime.now(UTC)
    backend.make_leftover(now - timedelta(hours=1))
    assert backend.leftovers() == 1
    data = payload(LARGE, "young")
    gate = in_flight("young.mp3", data)  # another writer's put, started after `before`
    assert backend.leftovers() == 2

    assert backend.destination.recover(now - timedelta(seconds=30)) == 1
    assert backend.leftovers() == 1  # the young put's staging file / upload is untouched
    assert backend.destination.recover(now - timedelta(seconds=30)) == 0

    gate.release.set()
    _wait_for(lambda: backend.destination.stat("young.mp3") is not None)
    assert read(backend.destination, "young.mp3") == data
    _wait_for(lambda: backend.leftovers() == 0)


def _wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.02)


# ---- the folder backend -------------------------------------------------------------------------------


def test_folder_keeps_metadata_in_an_xattr_and_no_metadata_files(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path.as_uri())
    dest.put("a.mp3", b"x", content_type="audio/mpeg", metadata={"sha256": "ab"})
    assert os.getxattr(tmp_path / "a.mp3", XATTR)
    assert not (tmp_path / META_DIR).exists()


def test_folder_falls_back_to_metadata_files_where_xattrs_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> None:
        raise OSError(errno.ENOTSUP, os.strerror(errno.ENOTSUP))

    monkeypatch.setattr(os, "setxattr", refuse)  # a file system without user xattrs (NFSv3, SMB)
    dest = LocalDestination(tmp_path.as_uri())
    dest.put("d/a.mp3", b"x", content_type="audio/mpeg", metadata={"sha256": "ab"})
    dest.put("d/a.mp3", b"yy", content_type="audio/wav", metadata={"sha256": "cd"})
    stored = dest.stat("d/a.mp3")
    assert stored is not None
    assert (stored.content_type, stored.metadata) == ("audio/wav", {"sha256": "cd"})
    inode = (tmp_path / "d/a.mp3").stat().st_ino
    assert [p.name for p in (tmp_path / META_DIR / "d").iterdir()] == [f"a.mp3:{inode}"]  # old one gone
    dest.delete("d/a.mp3")
    assert list((tmp_path / META_DIR / "d").iterdir()) == []


def test_folder_metadata_file_of_another_version_is_never_paired_with_these_bytes(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path.as_uri(), xattrs=False)
    dest.put("a.mp3", b"old", content_type="audio/mpeg", metadata={"v": "old"})
    # A crash between the metadata file's rename and the object's: new metadata, old bytes.
    (tmp_path / META_DIR / "a.mp3:1").write_text('{"content_type": "audio/wav", "metadata": {"v": "new"}}')
    for stale in (tmp_path / META_DIR).iterdir():
        if stale.name != "a.mp3:1":
            stale.unlink()
    stored = dest.stat("a.mp3")
    assert stored is not None
    assert (stored.size, stored.metadata, stored.content_type) == (3, {}, None)


@pytest.mark.parametrize("key", [f"{STAGING}/x.mp3", f"{META_DIR}/x.mp3"])
def test_folder_refuses_keys_inside_its_own_folders(tmp_path: Path, key: str) -> None:
    with pytest.raises(SettingsError, match="archiver's own folder"):
        LocalDestination(tmp_path.as_uri()).put(key, b"x", content_type="audio/mpeg")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS, errno.EACCES])
def test_folder_write_failure_is_a_destination_error_with_the_errno_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    dest = LocalDestination(tmp_path.as_uri())

    def fail(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(DestinationError, match=os.strerror(code)) as caught:
        dest.put("a.mp3", b"x", content_type="audio/mpeg")
    assert caught.value.hint
    assert not isinstance(caught.value, TransientError)
    monkeypatch.undo()
    assert dest.stat("a.mp3") is None
    assert list((tmp_path / STAGING).iterdir()) == []


def test_folder_probe_names_a_missing_root_and_a_file_in_its_place(tmp_path: Path) -> None:
    with pytest.raises(DestinationError, match="does not exist"):
        LocalDestination((tmp_path / "missing").as_uri()).probe()
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(DestinationError, match="is not a folder"):
        LocalDestination((tmp_path / "file").as_uri()).probe()


def test_folder_put_remakes_a_parent_removed_since_its_last_write(tmp_path: Path) -> None:
    dest = LocalDestination(tmp_path.as_uri())
    dest.put("d/a.mp3", b"1", content_type="audio/mpeg")
    dest.delete("d/a.mp3")
    (tmp_path / "d").rmdir()
    dest.put("d/b.mp3", b"2", content_type="audio/mpeg")
    assert read(dest, "d/b.mp3") == b"2"


# ---- the S3 backend ------------------------------------------------------------------------------------


@EACH_S3_SERVER
def test_s3_probe_of_a_missing_bucket_is_a_destination_error(s3_bucket: str) -> None:
    with pytest.raises(DestinationError, match="does not exist"):
        open_destination(f"s3://{s3_bucket}-missing").probe()


@EACH_S3_SERVER
def test_s3_probe_requires_object_lock_where_the_settings_need_it(s3_bucket: str) -> None:
    locked = StorageOptions(object_lock_mode="GOVERNANCE", object_lock_days=1)
    with pytest.raises(DestinationError, match="Object Lock"):
        open_destination(f"s3://{s3_bucket}", storage=locked).probe()
    assert boto3.client("s3").list_objects_v2(Bucket=s3_bucket).get("KeyCount") == 0


@EACH_S3_SERVER
def test_s3_probe_object_is_never_retained_by_object_lock(s3_bucket: str) -> None:
    client = boto3.client("s3")
    bucket = f"{s3_bucket}-locked"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    storage = StorageOptions(object_lock_mode="COMPLIANCE", object_lock_days=1, legal_hold=True)
    open_destination(f"s3://{bucket}/p", storage=storage).probe()
    # With a default retention every object would be locked for a day: the probe then writes none.
    client.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}},
        },
    )
    open_destination(f"s3://{bucket}/p", storage=storage).probe()
    versions = client.list_object_versions(Bucket=bucket)
    assert versions.get("Versions", []) == [] and versions.get("DeleteMarkers", []) == []
    assert client.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


@EACH_S3_SERVER
def test_s3_stat_reports_retention_and_legal_hold(s3_bucket: str) -> None:
    client = boto3.client("s3")
    bucket = f"{s3_bucket}-locked"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    storage = StorageOptions(object_lock_mode="GOVERNANCE", object_lock_days=30, legal_hold=True)
    dest = open_destination(f"s3://{bucket}", storage=storage)
    dest.put("a.mp3", b"x", content_type="audio/mpeg")
    stored = dest.stat("a.mp3")
    assert stored is not None and stored.retained_until is not None
    assert stored.retained_until > datetime.now(UTC) + timedelta(days=29)
    assert stored.legal_hold is True


@EACH_S3_SERVER
def test_s3_failures_keep_their_classification(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DestinationError, match="does not exist"):
        open_destination(f"s3://{s3_bucket}-missing").put("a.mp3", b"x", content_type="audio/mpeg")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens: a failing world
    with pytest.raises(TransientError) as caught:
        open_destination(f"s3://{s3_bucket}", s3_max_attempts=1).put("a.mp3", b"x", content_type="audio/mpeg")
    assert not isinstance(caught.value, DestinationError)
    with pytest.raises(DestinationError, match="unreachable"):
        open_destination(f"s3://{s3_bucket}", s3_max_attempts=1).probe()


def test_s3_refusal_by_a_reachable_server_names_the_setting_never_unreachable(
    seaweedfs_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SeaweedFS does not support SSE: it answers 500 InternalError. The server is there and refused."""
    bucket = new_bucket(seaweedfs_server, monkeypatch)
    encrypted = StorageOptions(sse="AES256")
    with pytest.raises(DestinationError) as caught:
        open_destination(f"s3://{bucket}", s3_max_attempts=1, storage=encrypted).probe()
    assert "refused by the destination: InternalError" in str(caught.value)
    assert "unreachable" not in str(caught.value)
    assert "RC_ARCHIVER_S3_SSE=AES256" in caught.value.hint and "network" not in caught.value.hint
    # During a run, a 5xx after every retry is a failing world for the breaker, worded the same way.
    with pytest.raises(TransientError, match="refused by the destination: InternalError"):
        open_destination(f"s3://{bucket}", s3_max_attempts=1, storage=encrypted).put(
            "a.mp3", b"x", content_type="audio/mpeg"
        )


def test_s3_request_deadline_ends_retries_of_a_silent_server(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that accepts connections and never answers: each request gives up at its deadline
    (plus at most a back-off and a read timeout), not after every attempt's read timeout."""
    with TcpProxy.to_url(os.environ["AWS_ENDPOINT_URL"]) as proxy:
        proxy.freeze()
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        timeouts = S3Timeouts(connect=1, read=0.5, deadline=2)
        dest = open_destination(f"s3://{s3_bucket}", s3_max_attempts=50, timeouts=timeouts)
        started = time.monotonic()
        with pytest.raises(TransientError, match="did not answer"):
            dest.stat("a.mp3")
        assert time.monotonic() - started < 2 + 4 + 0.5 + 1  # 50 attempts would take over 25 s


def test_s3_after_three_unanswered_requests_the_next_fail_at_once_until_the_quiet_ends(
    s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a run writes on its way out of an outage (manifest, index, state) must not wait out a
    deadline each: once the server has left three requests in a row unanswered, requests fail at once
    for one deadline, then one is let through."""
    with TcpProxy.to_url(os.environ["AWS_ENDPOINT_URL"]) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        timeouts = S3Timeouts(connect=0.5, read=0.3, deadline=1.0)
        dest = open_destination(f"s3://{s3_bucket}", s3_max_attempts=1, timeouts=timeouts)
        assert dest.stat("a.mp3") is None  # answered
        proxy.freeze()
        for _ in range(3):
            with pytest.raises(TransientError, match="ReadTimeoutError"):
                dest.stat("a.mp3")
        started = time.monotonic()
        with pytest.raises(TransientError, match="ServerSilent"):
            dest.stat("a.mp3")
        assert time.monotonic() - started < 0.2  # not sent at all
        proxy.restore()
        time.sleep(1.1)  # the quiet ends: the next request goes out, is answered, and all is well
        assert dest.stat("a.mp3") is None
        assert dest.stat("b.mp3") is None


@pytest.mark.parametrize(
    ("keys", "prefixes"),
    [
        # one recording's candidates and sidecar: one LIST, bounded to its names
        (["p/d/12.mp3", "p/d/12.wav", "p/d/12.bin", "p/d/12.json"], ["p/d/12."]),
        (["12.mp3", "12.wav"], ["12."]),
        # `{ext}` in a folder name: no bounded common prefix, so one LIST per stem, never the archive
        (["p/mp3/2026/12.mp3", "p/wav/2026/12.wav"], ["p/mp3/2026/12.", "p/wav/2026/12."]),
        (["p/d/12.mp3", "p/d/13.mp3"], ["p/d/12.", "p/d/13."]),
        (["p/d/noext"], ["p/d/noext"]),
    ],
)
def test_s3_existing_lists_only_prefixes_bounded_to_the_keys(keys: list[str], prefixes: list[str]) -> None:
    from archiver.destinations.s3 import _list_prefixes

    assert _list_prefixes(keys) == prefixes


def test_folder_existing_names_a_failing_file_system_as_the_destinations_failure(tmp_path: Path) -> None:
    """An error other than "not there" (here ELOOP; on NFS, EIO or ESTALE) is the destination's
    failure, which the breaker counts, never a recording's."""
    dest = LocalDestination(tmp_path.as_uri())
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "12.mp3").symlink_to(tmp_path / "d" / "12.mp3")
    assert dest.existing(["d/13.mp3", "e/12.mp3"]) == set()
    with pytest.raises(DestinationError, match=r"12\.mp3"):
        dest.existing(["d/12.mp3"])


def test_s3_request_deadline_counts_from_the_first_failure_so_a_slow_healthy_request_is_retried(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request whose first attempt alone outlasts the deadline (a big part on a thin uplink) and then
    meets a 500 is still retried: the deadline bounds failing, not working."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    answered: list[float] = []

    def serve() -> None:
        while len(answered) < 2:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                answered.append(time.monotonic())
                if len(answered) == 1:
                    time.sleep(1.5)  # working slowly past the 1 s deadline, then a blip
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        for name, value in {
            **AWS_ENV,
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{server.getsockname()[1]}",
        }.items():
            monkeypatch.setenv(name, value)
        timeouts = S3Timeouts(connect=1, read=5, deadline=1)
        dest = open_destination("s3://bucket", s3_max_attempts=5, timeouts=timeouts)
        assert dest.stat("a.mp3") is None  # the retry's answer: not there
        assert len(answered) == 2
    finally:
        server.close()
        thread.join(timeout=5)
