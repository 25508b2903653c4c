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
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlencode, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as NoConnection,
)

from archiver.destinations.base import StoredObject, UploadJournal, normalise_metadata, open_source
from archiver.destinations.registry import Backend, register
from archiver.destinations.s3_multipart import (
    UploadLedger,
    abort_upload,
    is_intent,
    upload_in_parts,
    uploads_of,
)
from archiver.errors import REFUSED_BY_DESTINATION, DestinationError, PermanentError, TransientError
from archiver.keys import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from archiver.settings import Settings

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
# Codes of a reachable server refusing what our settings ask for (an encryption, a storage class, a
# tag or a lock it does not support or may not use): no retry fixes them, the settings do.
SETTINGS_REFUSALS = {
    "NotImplemented",
    "InvalidStorageClass",
    "InvalidEncryptionAlgorithmError",
    "InvalidTag",
    "UnsupportedOperation",
}
# Refusals that may be about one object (its key, its body) rather than the settings: mid-run they fail
# that recording (charged, its reason recorded), so one bad object never stops every run at its turn;
# the start-up probe, whose object is ours, still reports them as the settings' refusal.
OBJECT_REFUSALS = {"InvalidArgument", "InvalidRequest"}
PROBE_PREFIX = "_rc-archiver-probe/"  # probe() writes, reads back and deletes one object here


@dataclass(frozen=True)
class S3Timeouts:
    """How long S3 may take, sized so that a hung or vanished server is a failed request within about
    a minute (the outage breaker then stops the run), never ten attempts of a minute each.

    connect: to open a connection. read: how long the server may stay silent on an open one (a PUT's
    answer comes once its body is sent, so this is not a bound on the transfer). deadline: no retry
    starts once this long has passed since the request's first failed attempt; the attempt under way
    then ends by itself (its read timeout), so a silent server fails a request by about
    read + deadline + read.
    """

    connect: float = 5.0
    read: float = 20.0
    deadline: float = 40.0


def make_s3_client(max_attempts: int, timeouts: S3Timeouts | None = None) -> S3Client:
    """The one place a boto3 S3 client is made: standard retries (throttling, 5xx) with our attempt
    count, within the timeouts' deadline per request."""
    timeouts = timeouts or S3Timeouts()
    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts},  # total, first try included
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        max_pool_connections=32,
    )
    client = boto3.session.Session().client("s3", config=config)
    _enforce_deadline(client, timeouts.deadline)
    _SilentServer(timeouts.deadline).watch(client)
    return client


class ServerSilent(BotoCoreError):
    """Not sent: the server left the last requests unanswered (they timed out or found no server)."""

    fmt = "S3 left its last {misses} requests unanswered; not sent"


class _SilentServer:
    """After SILENT_AFTER requests in a row that got no answer at all, fail the next ones at once for
    `quiet` seconds instead of letting each wait out its own deadline; then let one through to try.

    The breaker has stopped the run by then (it counts the same failures); what the run still writes
    on its way out (the manifest, the index, the state) is deferred in an instant, not a minute each."""

    SILENT_AFTER = 3

    def __init__(self, quiet: float) -> None:
        self._quiet = quiet
        self._lock = threading.Lock()
        self._misses = 0
        self._retry_at = 0.0

    def watch(self, client: S3Client) -> None:
        client.meta.events.register("before-call.s3", self._before)
        client.meta.events.register("after-call.s3", self._answered)
        client.meta.events.register("after-call-error.s3", self._unanswered)

    def _before(self, **_: Any) -> None:
        with self._lock:
            if self._misses >= self.SILENT_AFTER and time.monotonic() < self._retry_at:
                raise ServerSilent(misses=self._misses)

    def _answered(self, **_: Any) -> None:  # any answer, an error status included: it is there
        with self._lock:
            self._misses = 0

    def _unanswered(self, exception: Exception, **_: Any) -> None:
        if isinstance(exception, HTTPClientError | NoConnection):  # timeouts, refused, reset
            with self._lock:
                self._misses += 1
                self._retry_at = time.monotonic() + self._quiet


_FAILING_SINCE = "rc_archiver_failing_since"  # in botocore's per-request context: its first failure


def _enforce_deadline(client: S3Client, seconds: float) -> None:
    """Stop retrying a request once `seconds` have passed since its first failed attempt: the last
    attempt's own error (a timeout, a refused connection, a 5xx) is what the caller then sees. The clock
    starts at a failure, not at the request, so a healthy slow transfer (a part that takes a minute on
    a thin uplink) still gets its retries after a blip.

    The error is raised from the needs-retry handler rather than answered with False: botocore before
    1.4x read any answer but None as "sleep that long, then retry", and would retry forever."""

    def past_deadline(
        request_dict: dict[str, Any],
        response: tuple[Any, dict[str, Any]] | None = None,
        caught_exception: Exception | None = None,
        event_name: str = "",
        **_: Any,
    ) -> None:
        status = response[0].status_code if response is not None else None
        if caught_exception is None and (status is None or (status < 500 and status != 429)):
            return  # answered: nothing to retry for the deadline's sake (the standard handler decides)
        context = request_dict.setdefault("context", {})
        now = time.monotonic()
        if now - context.setdefault(_FAILING_SINCE, now) < seconds:
            return
        if caught_exception is not None:
            raise caught_exception
        assert response is not None
        raise ClientError(cast(Any, response[1]), event_name.rsplit(".", 1)[-1])

    client.meta.events.register_first("needs-retry.s3", past_deadline)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _refusal(exc: ClientError) -> str:
    """`refused by the destination: CODE message`, the server's own words (cut short)."""
    error = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    words = " ".join(str(part) for part in (error.get("Code") or status, error.get("Message", "")) if part)
    return f"{REFUSED_BY_DESTINATION}: {words[:200]}"


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

    def in_use(self) -> list[str]:
        """The settings behind these options that are set: what a refusing server may not support."""
        used = [
            ("RC_ARCHIVER_S3_SSE", self.sse),
            ("RC_ARCHIVER_S3_KMS_KEY_ID", self.kms_key_id),
            ("RC_ARCHIVER_S3_STORAGE_CLASS", self.storage_class),
            ("RC_ARCHIVER_S3_TAGS", ",".join(self.tags)),
            ("RC_ARCHIVER_S3_OBJECT_LOCK_MODE", self.object_lock_mode),
            ("RC_ARCHIVER_S3_LEGAL_HOLD", "true" if self.legal_hold else ""),
        ]
        return [f"{name}={value}" if name != "RC_ARCHIVER_S3_TAGS" else name for name, value in used if value]

    def refusal_hint(self) -> str:
        """The fix for a request a reachable server refused: the settings that asked for it."""
        used = self.in_use()
        if not used:
            return "the server answered and refused: see its log, and check AWS_ENDPOINT_URL and AWS_REGION"
        return (
            f"the server answered and refused a request made with {', '.join(used)}: check that it "
            "supports these options (S3-compatible stores often lack SSE-KMS, archive storage classes or "
            "Object Lock), or unset them"
        )


def s3_error(exc: Exception, doing: str, bucket: str, prefix: str, refusal_hint: str) -> Exception:
    """What an S3 failure means for the run: DestinationError (stops it: a missing bucket, no access,
    a setting the server refuses), PermanentError (fails one recording: a refusal about one object),
    or TransientError (a failing world for the breaker: no answer, throttling, 5xx)."""
    if isinstance(exc, NoCredentialsError):
        return DestinationError(
            "no AWS credentials found",
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a role",
        )
    if not isinstance(exc, ClientError):  # no answer: a timeout, a refused connection, a cut
        return TransientError(f"S3 did not answer while {doing}: {type(exc).__name__}")
    code = _code(exc)
    if code in FATAL_CODES:
        what = {"NoSuchBucket": "does not exist", "404": "does not exist"}.get(
            code, f"refused access ({code})"
        )
        return DestinationError(
            f"bucket {bucket} {what} while {doing}",
            hint="create the bucket or fix RC_ARCHIVER_DESTINATION, and grant s3:PutObject, "
            "s3:GetObject, s3:ListBucket, s3:AbortMultipartUpload, and s3:DeleteObject on "
            f"{prefix}{PROBE_PREFIX}* to the archiver's credentials",
        )
    if code in SETTINGS_REFUSALS or code.startswith("KMS."):
        return DestinationError(f"{_refusal(exc)} while {doing}", hint=refusal_hint)
    if code in OBJECT_REFUSALS:
        return PermanentError(f"{_refusal(exc)} while {doing}")
    # Throttling and 5xx, after botocore's retries: maybe passing, so a failing world for the breaker.
    return TransientError(f"{_refusal(exc)} while {doing}")


def s3_unusable(exc: Exception, doing: str, bucket: str, prefix: str, refusal_hint: str) -> DestinationError:
    """probe() answers usable or not: a failing world there is a DestinationError too; a server that
    answered (even 500) is reachable, and its refusal is named as such."""
    error = s3_error(exc, doing, bucket, prefix, refusal_hint)
    if isinstance(error, DestinationError):
        return error
    if isinstance(exc, ClientError):
        return DestinationError(f"S3 bucket {bucket}: {error}", hint=refusal_hint)
    return DestinationError(
        f"S3 bucket {bucket} is unreachable ({error})",
        hint="check AWS_ENDPOINT_URL, AWS_REGION and the network",
    )


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
        return s3_error(exc, doing, self.bucket, self.prefix, self.storage.refusal_hint())

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

    def existing(self, keys: Sequence[str]) -> set[str]:
        """One LIST of the keys' common prefix (more pages only if that prefix holds over 1,000 keys)."""
        if not keys:
            return set()
        wanted = {self._key(key): key for key in keys}
        found: set[str] = set()
        for prefix in _list_prefixes(list(wanted)):
            try:
                pages = self._client.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                for page in pages:
                    found |= {
                        wanted[item["Key"]] for item in page.get("Contents", []) if item["Key"] in wanted
                    }
            except (ClientError, BotoCoreError) as exc:
                raise self._fail(exc, f"listing {prefix[:120]!r}") from None
        return found

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


def _stem(key: str) -> str:
    """The key up to and including the last dot of its last segment: `d/12.mp3` -> `d/12.`."""
    folder, slash, name = key.rpartition("/")
    base, dot, _ = name.rpartition(".")
    return f"{folder}{slash}{base}{dot}" if dot else key


def _list_prefixes(keys: list[str]) -> list[str]:
    """What to LIST to learn which of `keys` exist: their common prefix when it reaches a whole stem
    (`d/12.` for `d/12.mp3` and `d/12.json`: the listing holds that recording's names only), else one
    prefix per stem. A key template that puts `{ext}` in a folder name has no such prefix: listing
    from its common part would walk the whole archive for every recording."""
    prefix = os.path.commonprefix(keys)  # noqa: RUF071 - S3 prefixes are strings, not paths
    if len(prefix) >= min(len(_stem(key)) for key in keys):
        return [prefix]
    return sorted({_stem(key) for key in keys})


_BUCKET_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$")


def _s3_url_problem(url: str) -> str | None:
    if _BUCKET_URL.match(url):
        return None
    return "an S3 destination is s3://bucket or s3://bucket/prefix with a valid bucket name"


def s3_timeouts(settings: Settings) -> S3Timeouts:
    return S3Timeouts(
        connect=settings.s3_connect_timeout.total_seconds(),
        read=settings.s3_read_timeout.total_seconds(),
        deadline=settings.s3_request_deadline.total_seconds(),
    )


def s3_client_for(settings: Settings) -> S3Client:
    """An S3 client with the settings' attempts and timeouts (the destination's, the state's, check's)."""
    return make_s3_client(settings.s3_max_attempts, s3_timeouts(settings))


def _s3_from_settings(settings: Settings, journal: UploadJournal | None) -> S3Destination:
    from archiver.settings import parse_tags

    assert settings.destination is not None  # destination_for required it
    storage = StorageOptions(
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
        storage_class=settings.s3_storage_class,
        tags=parse_tags(settings.s3_tags),
        object_lock_mode=settings.s3_object_lock_mode,
        object_lock_days=settings.s3_object_lock_days,
        legal_hold=settings.s3_legal_hold,
    )
    client = s3_client_for(settings)
    return S3Destination(settings.destination, client, settings.multipart_threshold, storage, journal)


BACKEND = register(Backend("s3", _s3_url_problem, _s3_from_settings, proves_retention=True))
