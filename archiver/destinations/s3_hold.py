"""What the archive's users ask of an S3 destination beyond the archiver's own writes: legal holds on
objects (`hold`), a presigned GET (`find --url`), and a listing of keys (`index rebuild`).

These use the destination's own boto3 client (made in one place: s3.make_s3_client), and keys relative
to its prefix, like every destination method. A destination that cannot hold (a folder, a bucket without
Object Lock) is a usage error, exit 2, in one line that says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from archiver.destinations.base import Destination
from archiver.destinations.s3 import S3Destination
from archiver.errors import DestinationError, SettingsError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def _client(destination: S3Destination) -> S3Client:
    return destination._client  # the destination's client: its endpoint, retries and credentials


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def lockable(destination: Destination) -> S3Destination:
    """The destination, if it can take legal holds: an S3 bucket with Object Lock enabled."""
    if not isinstance(destination, S3Destination):
        raise SettingsError(
            f"hold: {destination.url} is a folder; legal holds need an S3 bucket with Object Lock",
            hint="archive to a bucket created with Object Lock enabled to hold recordings",
        )
    try:
        answer = _client(destination).get_object_lock_configuration(Bucket=destination.bucket)
    except ClientError as exc:
        if _code(exc) in ("ObjectLockConfigurationNotFoundError", "404"):
            raise SettingsError(
                f"hold: bucket {destination.bucket} has no Object Lock; S3 accepts legal holds only there",
                hint="Object Lock is enabled when a bucket is created (or by AWS support on an existing one)",
            ) from None
        raise DestinationError(
            f"hold: cannot read bucket {destination.bucket}'s Object Lock configuration ({_code(exc)})",
            hint="grant s3:GetBucketObjectLockConfiguration to the archiver's credentials",
        ) from None
    except BotoCoreError as exc:
        raise DestinationError(f"hold: S3 is unreachable ({type(exc).__name__})") from None
    if answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise SettingsError(f"hold: bucket {destination.bucket} has no Object Lock enabled")
    return destination


def set_legal_hold(destination: S3Destination, key: str, on: bool) -> None:
    try:
        _client(destination).put_object_legal_hold(
            Bucket=destination.bucket,
            Key=destination.prefix + key,
            LegalHold={"Status": "ON" if on else "OFF"},
        )
    except ClientError as exc:
        raise DestinationError(
            f"hold: S3 refused the legal hold on {key[:120]!r} ({_code(exc)})",
            hint="grant s3:PutObjectLegalHold (and s3:GetObjectLegalHold) on the archive's prefix",
        ) from None
    except BotoCoreError as exc:
        raise DestinationError(f"hold: S3 is unreachable ({type(exc).__name__})") from None


def presigned_get(destination: Destination, key: str, expires: timedelta) -> str:
    """A URL that reads one object until it expires (S3 only: a folder has no URL to give)."""
    if not isinstance(destination, S3Destination):
        raise SettingsError(f"--url: {destination.url} is a folder; presigned URLs exist for S3 only")
    return _client(destination).generate_presigned_url(
        "get_object",
        Params={"Bucket": destination.bucket, "Key": destination.prefix + key},
        ExpiresIn=int(expires.total_seconds()),
    )


def list_s3_keys(destination: S3Destination, under: str = "") -> Iterator[str]:
    """Every key below the destination's prefix (and `under` it), relative to the prefix."""
    pages = _client(destination).get_paginator("list_objects_v2")
    try:
        for page in pages.paginate(Bucket=destination.bucket, Prefix=destination.prefix + under):
            for item in page.get("Contents", []):
                yield item["Key"][len(destination.prefix) :]
    except ClientError as exc:
        raise DestinationError(
            f"cannot list {destination.url} ({_code(exc)})", hint="grant s3:ListBucket on the archive"
        ) from None
