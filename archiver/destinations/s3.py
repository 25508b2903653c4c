"""An S3 destination: `s3://bucket/prefix`.

The boto3 client is built here and only here (make_s3_client); it takes its endpoint, region and
credentials from the standard AWS variables and files (AWS_ENDPOINT_URL, AWS_REGION, the credential
chain). An upload is one PUT below the multipart threshold, else a journaled multipart upload
(s3_multipart.py) that is aborted on failure: either way an object appears under its key complete, or
not at all, with a SHA-256 checksum S3 verifies. Metadata is kept as S3 user metadata.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlencode, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from archiver.destinations.base import StoredObject, UploadJournal, normalise_metadata, open_source
from archiver.destinations.s3_multipart import (
    UploadLedger,
    abort_upload,
    is_intent,
    upload_in_parts,
    uploads_of,
)
from archiver.errors import DestinationError, TransientError
from archiver.keys import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Codes that no retry will fix: the run stops with exit 4 and the fix in the log.
FATAL_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "403",
    "404",
    "InvalidBucketName",
    "AccountProblem",
}
PROBE_PREFIX = "_rc-archiver-probe/"  # probe() writes, reads back and deletes one object here


def make_s3_client(max_attempts: int) -> S3Client:
    """The one place a boto3 S3 client is made: standard retries (throttling, 5xx) with our attempt count."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},  # total, first try included
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.session.Session().client("s3", config=config)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class StorageOptions:
    """Server-side encryption, storage class, tags and Object Lock retention for every object written."""

    sse: str = ""  # AES256 | aws:kms
    kms_key_id: str = ""
    storage_class: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    object_lock_mode: str = ""  # GOVERNANCE | COMPLIANCE
    object_lock_days: int = 0
    legal_hold: bool = False

    def extra_args(self, now: datetime) -> dict[str, Any]:
        args: dict[str, Any] = {}
        if self.sse:
            args["ServerSideEncryption"] = self.sse
        if self.kms_key_id:
            args["SSEKMSKeyId"] = self.kms_key_id
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.tags:
            args["Tagging"] = urlencode(self.tags)
        if self.object_lock_mode:
            args["ObjectLockMode"] = self.object_lock_mode
            args["ObjectLockRetainUntilDate"] = now + timedelta(days=self.object_lock_days)
        if self.legal_hold:
            args["ObjectLockLegalHoldStatus"] = "ON"
        return args

    def probe_args(self) -> dict[str, Any]:
        """What a probe object is written with: encryption and tags, so a refused KMS key or tagging
        permission shows at once; no retention or legal hold (the probe must be deletable) and no storage
        class (an archive class could not be read back)."""
        return {
            name: value
            for name, value in self.extra_args(datetime.now(UTC)).items()
            if name in ("ServerSideEncryption", "SSEKMSKeyId", "Tagging")
        }

    @property
    def needs_object_lock(self) -> bool:
        return bool(self.object_lock_mode or self.legal_hold)


class S3Destination:
    def __init__(
        self,
        url: str,
        client: S3Client,
        multipart_threshold: int = 16 * 1024 * 1024,
        storage: StorageOptions | None = None,
        journal: UploadJournal | None = None,
    ) -> None:
        parts = urlsplit(url)
        self.storage = storage or StorageOptions()
        self.url = url
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client
        self._threshold = max(multipart_threshold, 1)  # an empty body is always one PUT
        self._ledger = UploadLedger(journal)

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, exc: Exception, doing: str) -> Exception:
        if isinstance(exc, NoCredentialsError):
            return DestinationError(
                "no AWS credentials found",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role",
            )
        code = _code(exc) if isinstance(exc, ClientError) else ""
        if code in FATAL_CODES:
            what = {"NoSuchBucket": "does not exist", "404": "does not exist"}.get(
                code, f"refused access ({code})"
            )
            return DestinationError(
                f"bucket {self.bucket} {what} while {doing}",
                hint="create the bucket or fix RC_ARCHIVER_DESTINATION, and grant s3:PutObject, "
                "s3:GetObject, s3:ListBucket, s3:AbortMultipartUpload, and s3:DeleteObject on "
                f"{self.prefix}{PROBE_PREFIX}* to the archiver's credentials",
            )
        return TransientError(f"S3 error while {doing}: {code or type(exc).__name__}")

    def _unusable(self, exc: Exception, doing: str) -> DestinationError:
        """probe() answers usable or not: a failing world there is a DestinationError too."""
        error = self._fail(exc, doing)
        if isinstance(error, DestinationError):
            return error
        return DestinationError(
            f"S3 bucket {self.bucket} is unreachable ({error})",
            hint="check AWS_ENDPOINT_URL, AWS_REGION and the network",
        )

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
            if _code(exc) in ("ObjectLockConfigurationNotFoundError", "404"):
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

    def put(
        self,
        key: str,
        source: Path | bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        full_key = self._key(key)
        args: dict[str, Any] = {
            "ContentType": content_type,
            "Metadata": normalise_metadata(metadata),
            **self.storage.extra_args(datetime.now(UTC)),
        }
        with open_source(source) as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(0)
            try:
                if size >= self._threshold:
                    upload_in_parts(self._client, self.bucket, full_key, stream, args, self._ledger)
                else:
                    self._client.put_object(
                        Bucket=self.bucket, Key=full_key, Body=stream, ChecksumAlgorithm="SHA256", **args
                    )
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, f"uploading {key[:120]!r}") from None

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(exc, f"checking {key[:120]!r}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"checking {key[:120]!r}") from None
        return StoredObject(
            key,
            int(head["ContentLength"]),
            {name.lower(): value for name, value in (head.get("Metadata") or {}).items()},
            head.get("ContentType"),
            head.get("ObjectLockRetainUntilDate"),
            head.get("ObjectLockLegalHoldStatus") == "ON",
            head.get("ObjectLockMode"),
            head.get("LastModified"),
        )

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            body: Any = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if _code(exc) in ("NoSuchKey", "404"):
                raise DestinationError(f"no object {key[:120]!r} in {self.url}") from None
            raise self._fail(exc, f"reading {key[:120]!r}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"reading {key[:120]!r}") from None
        return cast(AbstractContextManager[BinaryIO], contextlib.closing(body))

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"deleting {key[:120]!r}") from None

    def recover(self, before: datetime) -> int:
        """Abort every multipart upload the journal recorded and never ended (and this process's own
        started before `before`); one already gone is simply ended."""
        aborted = 0
        leftovers = self._ledger.leftovers(before)
        known = {upload_id for _, upload_id in leftovers}
        for full_key, upload_id in leftovers:
            try:
                if is_intent(upload_id):  # killed before its id was journaled: find it by its key
                    aborted += sum(
                        abort_upload(self._client, self.bucket, full_key, found)
                        for found in uploads_of(self._client, self.bucket, full_key)
                        if found not in known and not self._ledger.is_live(found)
                    )
                else:
                    aborted += abort_upload(self._client, self.bucket, full_key, upload_id)
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, f"aborting the interrupted upload of {full_key[:120]!r}") from None
            self._ledger.ended(upload_id)
        return aborted
