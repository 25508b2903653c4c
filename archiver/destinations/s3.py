"""An S3 destination: `s3://bucket/prefix`.

The boto3 client is built here and only here (make_s3_client); it takes its endpoint, region and
credentials from the standard AWS variables and files (AWS_ENDPOINT_URL, AWS_REGION, the credential
chain). An upload is one PUT below the multipart threshold, else a journaled multipart upload
(s3_multipart.py) that is aborted on failure: either way an object appears under its key complete, or
not at all, with a SHA-256 checksum S3 verifies. Metadata is kept as S3 user metadata. What an S3
error means for the run is s3_errors.py's; the start-up probe is s3_probe.py's.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
)
from botocore.exceptions import (
    ConnectionError as NoConnection,
)

from archiver.destinations.base import StoredObject, UploadJournal, normalise_metadata, open_source
from archiver.destinations.registry import Backend, register
from archiver.destinations.s3_errors import error_code, s3_error
from archiver.destinations.s3_multipart import (
    UploadLedger,
    abort_upload,
    is_intent,
    upload_in_parts,
    uploads_of,
)
from archiver.destinations.s3_options import StorageOptions
from archiver.destinations.s3_probe import S3Probe
from archiver.errors import DestinationError
from archiver.keys import check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

    from archiver.settings import Settings


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


class S3Destination(S3Probe):
    """`s3://bucket/prefix`: objects written whole (one PUT, or a journaled multipart upload), read,
    looked up and deleted; the start-up probe is S3Probe's (s3_probe.py)."""

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
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
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
            if error_code(exc) in ("NoSuchKey", "404"):
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
