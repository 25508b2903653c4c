"""`rc-archiver hold`: S3 legal holds on exactly the matching objects, in a moto bucket with Object Lock."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator
from archiver.emulator.data import Call
from tests.helpers import AWS_ENV, SINCE, archiver_env, make_config, run_subprocess

DATA = DataOptions(seed=17, calls=14, days=3, bytes_per_second=40, transfer_fraction=0.4)
PREFIX = "rec"


@dataclass
class Archive:
    emulator: Emulator
    env: dict[str, str]
    bucket: str


@pytest.fixture
def archive(moto_server: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Archive]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"lock-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    emulator = Emulator(make_config(data=DATA)).start()
    try:
        env = archiver_env(emulator, tmp_path, f"s3://{bucket}/{PREFIX}")
        done = run_subprocess(env, "run", "--since", SINCE)
        assert done.returncode == 0, done.stdout[-2000:]
        yield Archive(emulator, env, bucket)
    finally:
        emulator.stop()


def held(bucket: str) -> set[str]:
    """Every object of the bucket whose legal hold is ON, by key under the prefix."""
    client = boto3.client("s3")
    out = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/"):
        for item in page.get("Contents", []):
            head = client.head_object(Bucket=bucket, Key=item["Key"])
            if head.get("ObjectLockLegalHoldStatus") == "ON":
                out.add(item["Key"].removeprefix(f"{PREFIX}/"))
    return out


def objects_of(bucket: str, calls: list[Call]) -> set[str]:
    """The audio and sidecar keys of the calls' recordings (the default key template)."""
    client = boto3.client("s3")
    wanted = {r.id for c in calls for r in c.recordings()}
    return {
        key
        for key in (
            item["Key"].removeprefix(f"{PREFIX}/")
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for item in page.get("Contents", [])
        )
        if key.rsplit("/", 1)[-1].split(".")[0] in wanted and not key.startswith("_")
    }


Report = Callable[..., tuple[int, str]]


@pytest.fixture
def hold(archive: Archive, report: Report) -> Callable[..., tuple[int, str]]:
    """`rc-archiver hold ARGS` in-process (conftest's `report`): (exit code, stdout)."""
    return lambda *args: report(archive.env, "hold", *args)


def test_hold_and_release_exactly_the_matching_objects(archive: Archive, hold: Report) -> None:
    calls = archive.emulator.state.data.calls
    transferred = next(c for c in calls if len(c.recordings()) == 2)
    number = transferred.legs[1].to_party.phone_number  # the transfer target: only on its leg
    with_number = [
        c
        for c in calls
        if number
        in {
            p.phone_number
            for p in (
                c.from_party,
                c.to_party,
                *(q for leg in c.legs for q in (leg.from_party, leg.to_party)),
            )
        }
    ]
    expected = objects_of(archive.bucket, with_number)
    assert len(expected) >= 4 and held(archive.bucket) == set()

    code, out = hold("--number", number, "--reason", "case 4711")
    assert code == 0, out
    assert held(archive.bucket) == expected
    # A second hold on one call of the first: releasing the first leaves that call held.
    other = next(c for c in with_number if c.recordings())
    code, out = hold("--call-id", other.id, "--reason", "case 4712")
    assert code == 0 and out.startswith("hold #2")
    code, out = hold("--list")
    assert "#1" in out and "case 4711" in out and f"--number {number}" in out and "#2" in out

    code, out = hold("--release", "--number", number, "--hold-id", "1", "--reason", "4711 closed")
    assert code == 0, out
    assert held(archive.bucket) == objects_of(archive.bucket, [other])
    code, out = hold("--list")
    assert "case 4711" not in out and "case 4712" in out

    code, out = hold("--release", "--call-id", other.id, "--reason", "4712 closed")
    assert code == 0, out
    assert held(archive.bucket) == set()
    assert hold("--list")[1].strip() == "no hold in force"


def test_verify_reports_a_held_object_whose_hold_is_gone(archive: Archive, hold: Report) -> None:
    call = next(c for c in archive.emulator.state.data.calls if c.recordings())
    assert hold("--call-id", call.id, "--reason", "case 1")[0] == 0
    lifted = sorted(objects_of(archive.bucket, [call]))[0]
    boto3.client("s3").put_object_legal_hold(
        Bucket=archive.bucket, Key=f"{PREFIX}/{lifted}", LegalHold={"Status": "OFF"}
    )
    done = run_subprocess(archive.env, "verify", "--since", SINCE)
    assert done.returncode == 1
    assert f"hold lost {lifted}" in done.stdout
    assert done.stdout.count("hold lost") == 1


def test_hold_needs_object_lock(archive: Archive, tmp_path: Path) -> None:
    plain = f"plain-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=plain)
    env = {**archive.env, "RC_ARCHIVER_DESTINATION": f"s3://{plain}/{PREFIX}"}
    done = run_subprocess(env, "hold", "--since", "2000-01-01", "--reason", "x")
    assert done.returncode == 2 and "has no Object Lock" in done.stderr
    assert "Traceback" not in done.stderr
    (tmp_path / "folder").mkdir()
    env["RC_ARCHIVER_DESTINATION"] = f"file://{tmp_path}/folder"
    done = run_subprocess(env, "hold", "--since", "2000-01-01", "--reason", "x")
    assert done.returncode == 2 and "is a folder" in done.stderr


def test_find_url_is_a_presigned_get_only_when_asked(archive: Archive, report: Report) -> None:
    """(find's --url needs an S3 archive: this module has one.)"""
    import json

    import requests

    call = next(c for c in archive.emulator.state.data.calls if c.recordings())
    code, out = report(archive.env, "find", "--call-id", call.id, "--json")
    assert code == 0 and "http" not in out and "X-Amz" not in out
    code, out = report(archive.env, "find", "--call-id", call.id, "--url", "15m")
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and lines
    for line in lines:  # signed, and valid for the 15 minutes asked (SigV2 or SigV4, as boto3 chooses)
        query = parse_qs(urlsplit(line["url"]).query)
        expires = query.get("X-Amz-Expires") or [str(int(query["Expires"][0]) - int(time.time()))]
        assert 890 <= int(expires[0]) <= 900
    for line in lines:
        body = requests.get(line["url"], timeout=10).content
        assert (
            body
            == boto3.client("s3")
            .get_object(Bucket=archive.bucket, Key=f"{PREFIX}/{line['key']}")["Body"]
            .read()
        )
        assert len(body) == line["size"]
