"""The S3 destination's start-up probe: is the bucket there, may we write, read and delete, and does
it keep Object Lock when the settings ask for it? One job of its own, beside the reads and writes of
s3.py, so a refusal shows before any recording is downloaded.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from archiver.destinations.s3_errors import PROBE_PREFIX, error_code, s3_unusable
from archiver.destinations.s3_multipart import UploadLedger, abort_upload
from archiver.destinations.s3_options import StorageOptions
from archiver.errors import DestinationError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Probe:
    """`probe()` for S3Destination, which provides the bucket, prefix, storage options, client and
    upload ledger."""

    bucket: str
    prefix: str
    storage: StorageOptions
    _client: S3Client
    _ledger: UploadLedger

    def _unusable(self, exc: Exception, doing: str) -> DestinationError:
        return s3_unusable(exc, doing, self.bucket, self.prefix, self.storage.refusal_hint())

    def probe(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            raise self._unusable(exc, "checking the bucket") from None
        lock = self._object_lock_configuration()
        if self.storage.needs_object_lock and lock.get("ObjectLockEnabled") != "Enabled":
            raise DestinationError(
                f"bucket {self.bucket} does not have S3 Object Lock enabled, but Object Lock retention or a "
                "legal hold is configured",
                hint="use a bucket created with Object Lock enabled, or unset "
                "RC_ARCHIVER_S3_OBJECT_LOCK_MODE/_DAYS and RC_ARCHIVER_S3_LEGAL_HOLD",
            )
        key = f"{self.prefix}{PROBE_PREFIX}{uuid.uuid4().hex}.txt"
        try:
            if lock.get("Rule", {}).get("DefaultRetention"):
                self._probe_without_object(key)
            else:
                self._probe_object(key)
        except (ClientError, BotoCoreError) as exc:
            raise self._unusable(exc, f"writing, reading and deleting the probe object {key}") from None

    def _object_lock_configuration(self) -> dict[str, Any]:
        """The bucket's Object Lock configuration ({} without one, or where we may not read it)."""
        try:
            answer = self._client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) in ("ObjectLockConfigurationNotFoundError", "404"):
                return {}
            if self.storage.needs_object_lock:
                raise self._unusable(exc, "checking Object Lock") from None
            return {}  # not needed by our settings: the probe then assumes no default retention
        except BotoCoreError as exc:
            raise self._unusable(exc, "checking Object Lock") from None
        return cast(dict[str, Any], answer.get("ObjectLockConfiguration", {}))

    def _probe_object(self, key: str) -> None:
        payload = f"rc-archiver probe {datetime.now(UTC).isoformat()}\n".encode()
        written = self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=payload,
            ContentType="text/plain",
            ChecksumAlgorithm="SHA256",
            **self.storage.probe_args(),
        )
        version: dict[str, Any] = {"VersionId": written["VersionId"]} if written.get("VersionId") else {}
        try:
            read = self._client.get_object(Bucket=self.bucket, Key=key, **version)["Body"].read()
        finally:
            # The version itself, where the bucket keeps versions: a delete marker would leave it stored.
            self._client.delete_object(Bucket=self.bucket, Key=key, **version)
        if read != payload:
            raise DestinationError(f"bucket {self.bucket} returned different bytes for {key}")

    def _probe_without_object(self, key: str) -> None:
        """A bucket with default retention would lock any probe object for days: upload one part of a
        multipart upload instead, and abort it, so that no object ever exists."""
        created = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **self.storage.probe_args()
        )
        upload_id = created["UploadId"]
        self._ledger.started(key, upload_id)
        try:
            self._client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=1,
                Body=b"rc-archiver probe\n",
                ChecksumAlgorithm="SHA256",
            )
        finally:
            abort_upload(self._client, self.bucket, key, upload_id)
            self._ledger.ended(upload_id)
