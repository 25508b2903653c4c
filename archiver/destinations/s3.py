"""An S3 destination: `s3://bucket/prefix`.

The boto3 client is built here and only here (make_s3_client); it takes its endpoint, region and
credentials from the standard AWS variables and files (AWS_ENDPOINT_URL, AWS_REGION, the credential
chain). Uploads are boto3's managed transfers (multipart above the threshold, aborted on failure, so
a failed upload never leaves an object under the final key), with a SHA-256 checksum S3 verifies and
the recording's sha256 in the user metadata.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlencode, urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from archiver.destinations.base import StoredObject
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
CHUNK = 8 * 1024 * 1024


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
    ) -> None:
        parts = urlsplit(url)
        self.storage = storage or StorageOptions()
        self.url = url
        self.bucket = parts.netloc
        prefix = parts.path.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        self._client = client
        self._transfer = TransferConfig(
            multipart_threshold=multipart_threshold,
            multipart_chunksize=CHUNK,
            max_concurrency=2,  # memory per upload stays ~2 chunks, whatever the file's size
            use_threads=True,
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _fail(self, exc: Exception, doing: str) -> Exception:
        if isinstance(exc, NoCredentialsError):
            return DestinationError(
                "no AWS credentials found",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role",
            )
        code = _code(exc) if isinstance(exc, ClientError) else ""
        if isinstance(exc, S3UploadFailedError):
            code = next((c for c in FATAL_CODES if c in str(exc)), "")
        if code in FATAL_CODES:
            what = {"NoSuchBucket": "does not exist", "404": "does not exist"}.get(
                code, f"refused access ({code})"
            )
            return DestinationError(
                f"bucket {self.bucket} {what} while {doing}",
                hint="create the bucket or fix RC_ARCHIVER_DESTINATION, and grant s3:PutObject, "
                "s3:GetObject, "
                "s3:ListBucket to the archiver's credentials",
            )
        return TransientError(f"S3 error while {doing}: {code or type(exc).__name__}")

    def probe(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            error = self._fail(exc, "checking the bucket")
            if isinstance(error, TransientError):
                raise DestinationError(
                    f"S3 bucket {self.bucket} is unreachable ({error})",
                    hint="check AWS_ENDPOINT_URL, AWS_REGION and the network",
                ) from None
            raise error from None
        if self.storage.needs_object_lock:
            self._probe_object_lock()

    def _probe_object_lock(self) -> None:
        """Object Lock settings on a bucket without Object Lock would fail every upload: say so first."""
        try:
            config = self._client.get_object_lock_configuration(Bucket=self.bucket)
            enabled = config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
        except ClientError as exc:
            if _code(exc) not in ("ObjectLockConfigurationNotFoundError", "404"):
                raise self._fail(exc, "checking Object Lock") from None
            enabled = False
        if not enabled:
            raise DestinationError(
                f"bucket {self.bucket} does not have S3 Object Lock enabled, but Object Lock retention or a "
                "legal hold is configured",
                hint="use a bucket created with Object Lock enabled, or unset "
                "RC_ARCHIVER_S3_OBJECT_LOCK_MODE/_DAYS and RC_ARCHIVER_S3_LEGAL_HOLD",
            )

    def put_file(self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]) -> None:
        try:
            self._client.upload_file(
                str(path),
                self.bucket,
                self._key(key),
                ExtraArgs={
                    "ContentType": content_type,
                    "Metadata": metadata,
                    "ChecksumAlgorithm": "SHA256",
                    **self.storage.extra_args(datetime.now(UTC)),
                },
                Config=self._transfer,
            )
        except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
            raise self._fail(exc, f"uploading {key[:120]!r}") from None

    def put_bytes(self, key: str, data: bytes, *, content_type: str, plain: bool = False) -> None:
        try:
            self._client.put_object(
                Bucket=self.bucket,
                Key=self._key(key),
                Body=data,
                ContentType=content_type,
                ChecksumAlgorithm="SHA256",
                **({} if plain else self.storage.extra_args(datetime.now(UTC))),
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"writing {key[:120]!r}") from None

    def stat(self, key: str) -> StoredObject | None:
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self._fail(exc, f"checking {key[:120]!r}") from None
        except BotoCoreError as exc:
            raise self._fail(exc, f"checking {key[:120]!r}") from None
        metadata = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        return StoredObject(
            key, int(head["ContentLength"]), metadata.get("sha256"), metadata, head.get("ContentType")
        )

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            body: Any = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"reading {key[:120]!r}") from None
        return cast(AbstractContextManager[BinaryIO], contextlib.closing(body))

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, f"deleting {key[:120]!r}") from None

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
                for item in page.get("Contents", []):
                    yield item["Key"][len(self.prefix) :]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "listing") from None
