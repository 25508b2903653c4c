"""The lease that makes one run at a time the writer of an S3-hosted state: `<key>.lease`, created with
If-None-Match so only one run can create it, naming its owner and expiring (renewed at every checkpoint)
so a crashed run does not block the next one forever; an expired lease is taken over with If-Match."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import LockHeld, StateError
from archiver.state_location import CONFLICT, MISSING, StateLocation, error_code

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger(__name__)
LEASE_TTL = 15 * 60.0  # seconds; renewed at every checkpoint


class S3Lease:
    def __init__(
        self, location: StateLocation, client: S3Client, clock: Callable[[], float] = time.time
    ) -> None:
        self._where = location
        self.key = location.key + ".lease"
        self._client = client
        self._clock = clock
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._etag: str | None = None  # the lease object as this run last wrote it; None: not held

    @property
    def held(self) -> bool:
        return self._etag is not None

    def _body(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires_at": self._clock() + LEASE_TTL}).encode()

    def check_bucket(self) -> None:
        """The state's bucket exists, asked with a HEAD before any PUT: a server that creates buckets on a
        first PUT (SeaweedFS by default, MinIO and others can) must not turn a typo into a new bucket."""
        bucket = self._where.bucket
        try:
            self._client.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                raise StateError(
                    f"the state's bucket {bucket} does not exist (RC_ARCHIVER_STATE_PATH={self._where.url})",
                    hint="fix the bucket's name in RC_ARCHIVER_STATE_PATH, or create the bucket: the "
                    "archiver never creates one",
                ) from None
            raise self._where.error(exc, "checking the state's bucket") from None
        except BotoCoreError as exc:
            raise self._where.error(exc, "checking the state's bucket") from None

    def acquire(self, wait_seconds: float = 0.0) -> None:
        """Check the bucket, then take the lease (its PUT proves the bucket writable)."""
        self.check_bucket()
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                reply = self._client.put_object(
                    Bucket=self._where.bucket, Key=self.key, Body=self._body(), IfNoneMatch="*"
                )
                self._etag = reply["ETag"]
                return
            except ClientError as exc:
                if error_code(exc) not in CONFLICT:
                    raise self._where.error(exc, "taking the lease") from None
            except BotoCoreError as exc:
                raise self._where.error(exc, "taking the lease") from None
            if self._take_over_expired():
                return
            if time.monotonic() >= deadline:
                raise LockHeld(
                    f"another run holds the lease s3://{self._where.bucket}/{self.key}",
                    hint="wait for it to finish (or pass --wait-lock SECONDS); a crashed run's lease expires "
                    f"after {int(LEASE_TTL / 60)} minutes",
                )
            time.sleep(1.0)

    def _take_over_expired(self) -> bool:
        try:
            current = self._client.get_object(Bucket=self._where.bucket, Key=self.key)
            lease = json.loads(current["Body"].read())
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return False  # released meanwhile: the next put will succeed
            raise self._where.error(exc, "reading the lease") from None
        if float(lease.get("expires_at", 0)) > self._clock():
            return False
        try:
            reply = self._client.put_object(
                Bucket=self._where.bucket, Key=self.key, Body=self._body(), IfMatch=current["ETag"]
            )
        except ClientError as exc:
            if error_code(exc) in CONFLICT:
                return False  # someone else took it over first
            raise self._where.error(exc, "taking over an expired lease") from None
        log.warning("expired_lease_taken_over", previous_owner=lease.get("owner"))
        self._etag = reply["ETag"]
        return True

    def renew(self) -> None:
        """Push the expiry a full LEASE_TTL ahead, only over this run's own lease (If-Match)."""
        if self._etag is None:
            return
        renewed = self._client.put_object(
            Bucket=self._where.bucket, Key=self.key, Body=self._body(), IfMatch=self._etag
        )
        self._etag = renewed["ETag"]

    def holder(self) -> tuple[str, float] | None:
        """Who holds the lease and for how many seconds more (None: nobody, or it has expired); reads
        the lease object, takes nothing."""
        try:
            lease = json.loads(
                self._client.get_object(Bucket=self._where.bucket, Key=self.key)["Body"].read()
            )
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return None
            raise self._where.error(exc, "reading the lease") from None
        except BotoCoreError as exc:
            raise self._where.error(exc, "reading the lease") from None
        except ValueError:
            return None
        remaining = float(lease.get("expires_at", 0)) - self._clock()
        return (str(lease.get("owner")), remaining) if remaining > 0 else None

    def is_mine(self, to_spare: float) -> bool:
        """The lease object names this run and will not expire for `to_spare` seconds: no other
        writer can have started meanwhile (it would need the lease expired)."""
        try:
            lease = json.loads(
                self._client.get_object(Bucket=self._where.bucket, Key=self.key)["Body"].read()
            )
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return False
            raise
        except ValueError:
            return False
        return (
            lease.get("owner") == self.owner and float(lease.get("expires_at", 0)) > self._clock() + to_spare
        )

    def release(self) -> None:
        """Delete the lease if it still names this run; a failure is only logged: it expires by itself."""
        if self._etag is None:
            return
        try:
            current = self._client.get_object(Bucket=self._where.bucket, Key=self.key)
            if json.loads(current["Body"].read()).get("owner") == self.owner:
                self._client.delete_object(Bucket=self._where.bucket, Key=self.key)
        except (ClientError, BotoCoreError, ValueError) as exc:
            log.warning("lease_release_failed", error=type(exc).__name__)
        self._etag = None
