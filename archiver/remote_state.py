"""A state file kept in S3, for CronJobs without a volume (RC_ARCHIVER_STATE_PATH=s3://bucket/key).

A run takes a lease (`<key>.lease`, written with If-None-Match so only one run can create it, and
expiring so a crashed run does not block the next one forever), downloads the state to a local
working copy, checkpoints it back periodically and at the end with If-Match on the ETag it read
(a concurrent writer is detected and never overwritten), and releases the lease.

The object is always a complete, consistent database (each checkpoint uploads a backup-API snapshot),
so a backup of an S3 state is a copy of the object, and a restore replaces it under the lease, keeping
the replaced object beside it (`<key>.replaced-<stamp>`); a pre-migration snapshot is kept there too.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import LockHeld, StateError
from archiver.state import StateStore
from archiver.state.copies import stamp

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger(__name__)
LEASE_TTL = 15 * 60.0  # seconds; renewed at every checkpoint
CHECKPOINT_INTERVAL = 60.0


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class S3State:
    def __init__(
        self, url: str, client: S3Client, cache_dir: Path, clock: Callable[[], float] = time.time
    ) -> None:
        parts = urlsplit(url)
        self.url = url
        self.bucket = parts.netloc
        self.key = parts.path.lstrip("/")
        if not self.bucket or not self.key or self.key.endswith("/"):
            raise StateError(f"RC_ARCHIVER_STATE_PATH {url!r} must name an object: s3://bucket/path/state.db")
        self.lease_key = self.key + ".lease"
        self._client = client
        self._clock = clock
        self.local = cache_dir / "state.db"
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None
        self._lease_etag: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the lease --------------------------------------------------------------------------------
    def _lease_body(self) -> bytes:
        return json.dumps({"owner": self._owner, "expires_at": self._clock() + LEASE_TTL}).encode()

    def acquire(self, wait_seconds: float = 0.0) -> None:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                reply = self._client.put_object(
                    Bucket=self.bucket, Key=self.lease_key, Body=self._lease_body(), IfNoneMatch="*"
                )
                self._lease_etag = reply["ETag"]
                return
            except ClientError as exc:
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise self._error(exc, "taking the lease") from None
            except BotoCoreError as exc:
                raise self._error(exc, "taking the lease") from None
            if self._take_over_expired():
                return
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"another run holds the lease s3://{self.bucket}/{self.lease_key}",
                    hint="wait for it to finish (or pass --wait-lock SECONDS); a crashed run's lease expires "
                    f"after {int(LEASE_TTL / 60)} minutes",
                )
            time.sleep(1.0)

    def _take_over_expired(self) -> bool:
        try:
            current = self._client.get_object(Bucket=self.bucket, Key=self.lease_key)
            lease = json.loads(current["Body"].read())
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                return False  # released meanwhile: the next put will succeed
            raise self._error(exc, "reading the lease") from None
        if float(lease.get("expires_at", 0)) > self._clock():
            return False
        try:
            reply = self._client.put_object(
                Bucket=self.bucket, Key=self.lease_key, Body=self._lease_body(), IfMatch=current["ETag"]
            )
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False  # someone else took it over first
            raise self._error(exc, "taking over an expired lease") from None
        log.warning("expired_lease_taken_over", previous_owner=lease.get("owner"))
        self._lease_etag = reply["ETag"]
        return True

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._lease_etag is None:
            return
        try:
            current = self._client.get_object(Bucket=self.bucket, Key=self.lease_key)
            if json.loads(current["Body"].read()).get("owner") == self._owner:
                self._client.delete_object(Bucket=self.bucket, Key=self.lease_key)
        except (ClientError, BotoCoreError, ValueError) as exc:
            log.warning("lease_release_failed", error=type(exc).__name__)  # it expires by itself
        self._lease_etag = None

    # -- the state object -------------------------------------------------------------------------
    def download(self) -> Path:
        """The working copy to open; a state that does not exist yet starts empty."""
        self.local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.local) + suffix).unlink(missing_ok=True)
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                self._etag = None
                log.info("state_new", url=self.url)
                return self.local
            raise self._error(exc, "downloading the state") from None
        fd = os.open(self.local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: reply["Body"].read(1024 * 1024), b""):
                out.write(chunk)
        self._etag = reply["ETag"]
        log.info("state_downloaded", url=self.url, bytes=self.local.stat().st_size)
        return self.local

    def copy_to(self, target: Path) -> None:
        """The current state object, as a new file at `target` (mode 0600); no lease needed: the
        object is replaced whole by each checkpoint, never changed in place."""
        try:
            reply = self._client.get_object(Bucket=self.bucket, Key=self.key)
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise StateError(
                    f"no state object at {self.url}: no run has used it yet",
                    hint="check RC_ARCHIVER_STATE_PATH (and the AWS credentials' account)",
                ) from None
            raise self._error(exc, "downloading the state") from None
        except BotoCoreError as exc:
            raise self._error(exc, "downloading the state") from None
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            for chunk in iter(lambda: reply["Body"].read(1024 * 1024), b""):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())

    def put_beside(self, source: Path, suffix: str) -> str:
        """Upload a file as `<key><suffix>` (a pre-migration snapshot); returns its URL."""
        key = self.key + suffix
        try:
            with source.open("rb") as body:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, f"keeping {key}") from None
        return f"s3://{self.bucket}/{key}"

    def replace_with(self, source: Path) -> str | None:
        """Put `source` in place of the state object (call with the lease held); the replaced object is
        copied to `<key>.replaced-<stamp>` first. Returns that copy's URL (None if there was no state)."""
        kept: str | None = None
        try:
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=self.key)
            except ClientError as exc:
                if _code(exc) not in ("NoSuchKey", "404", "NotFound"):
                    raise
                head = None
            if head is not None:
                kept_key = f"{self.key}.replaced-{stamp()}"
                self._client.copy_object(
                    Bucket=self.bucket,
                    Key=kept_key,
                    CopySource={"Bucket": self.bucket, "Key": self.key},
                    CopySourceIfMatch=head["ETag"],
                )
                kept = f"s3://{self.bucket}/{kept_key}"
            condition: dict[str, Any] = {"IfMatch": head["ETag"]} if head else {"IfNoneMatch": "*"}
            with source.open("rb") as body:
                self._client.put_object(Bucket=self.bucket, Key=self.key, Body=body, **condition)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, "replacing the state") from None
        return kept

    def checkpoint(self, store: StateStore) -> None:
        """Upload a consistent snapshot with If-Match on the ETag read: never overwrite another writer."""
        snapshot = self.local.with_name("snapshot.db")
        snapshot.unlink(missing_ok=True)
        store.snapshot(snapshot)
        condition: dict[str, Any] = {"IfMatch": self._etag} if self._etag else {"IfNoneMatch": "*"}
        try:
            with snapshot.open("rb") as body:
                reply = self._client.put_object(Bucket=self.bucket, Key=self.key, Body=body, **condition)
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise StateError(
                    f"the state at {self.url} was changed by another writer since this run read it; "
                    "not overwritten",
                    hint="make sure only one archiver uses this state (the lease should ensure it); rerun",
                ) from None
            raise self._error(exc, "uploading the state") from None
        finally:
            snapshot.unlink(missing_ok=True)
        self._etag = reply["ETag"]
        if self._lease_etag is not None:  # renew the lease with every checkpoint
            renewed = self._client.put_object(
                Bucket=self.bucket, Key=self.lease_key, Body=self._lease_body(), IfMatch=self._lease_etag
            )
            self._lease_etag = renewed["ETag"]
        log.info("state_checkpointed", url=self.url)

    def checkpoint_periodically(self, store: StateStore, interval: float = CHECKPOINT_INTERVAL) -> None:
        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.checkpoint(store)
                except (StateError, ClientError, BotoCoreError) as exc:
                    log.error("state_checkpoint_failed", error=str(exc))

        self._thread = threading.Thread(target=loop, name="state-checkpoint", daemon=True)
        self._thread.start()

    def stop_checkpoints(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _error(self, exc: Exception, doing: str) -> StateError:
        code = _code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        return StateError(
            f"S3 state {self.url}: {code} while {doing}",
            hint="check the bucket in RC_ARCHIVER_STATE_PATH and that the credentials may get, put and "
            "delete objects there",
        )
