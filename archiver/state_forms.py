"""The two forms an S3-hosted state is saved in (RC_ARCHIVER_STATE_REPLICATION), each remembering the
version it read so that it never saves over another writer's:
- `SingleObject` (`snapshot`): `<key>` is one complete database, replaced whole with If-Match on its ETag;
- `Incremental` (`incremental`): `<key>.manifest` and its chunks (archiver/state_replication.py),
  the changed chunks uploaded, then the manifest replaced with If-Match.
A form that meets another writer's version sets `conflict`: nothing more is saved over it."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import StateError
from archiver.state.copies import stamp
from archiver.state_location import CONFLICT, MISSING, StateLocation, error_code
from archiver.state_replication import ChunkStore, Manifest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger(__name__)


def _short(exc: ClientError | BotoCoreError) -> str:
    return error_code(exc) if isinstance(exc, ClientError) else str(exc)


class SingleObject:
    """`<key>`, a complete database: each save uploads a snapshot whole (bound by S3's 5 GB single PUT)."""

    def __init__(self, location: StateLocation, client: S3Client) -> None:
        self._where = location
        self._client = client
        self.etag: str | None = None  # the object as read or last written; None: there was none
        self.conflict = False

    def read(self, out: BinaryIO, doing: str) -> bool:
        """Write the object to `out`; False when there is none."""
        try:
            reply = self._client.get_object(Bucket=self._where.bucket, Key=self._where.key)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return False
            raise self._where.error(exc, doing) from None
        except BotoCoreError as exc:
            raise self._where.error(exc, doing) from None
        for chunk in iter(lambda: reply["Body"].read(1024 * 1024), b""):
            out.write(chunk)
        self.etag = reply["ETag"]
        return True

    def save(self, snapshot: Path) -> None:
        condition: dict[str, Any] = {"IfMatch": self.etag} if self.etag else {"IfNoneMatch": "*"}
        try:
            with snapshot.open("rb") as body:
                reply = self._client.put_object(
                    Bucket=self._where.bucket, Key=self._where.key, Body=body, **condition
                )
        except ClientError as exc:
            if error_code(exc) in CONFLICT:
                self.conflict = True
                raise self._where.changed_by_another_writer() from None
            raise self._where.error(exc, "uploading the state") from None
        self.etag = reply["ETag"]

    def replace(self, source: Path) -> str | None:
        """Put `source` in place of the object, the replaced one copied to `<key>.replaced-<stamp>`
        first; returns that copy's URL (None if there was no object: then `source` creates it)."""
        bucket, key = self._where.bucket, self._where.key
        kept: str | None = None
        try:
            try:
                head = self._client.head_object(Bucket=bucket, Key=key)
            except ClientError as exc:
                if error_code(exc) not in MISSING:
                    raise
                head = None
            if head is not None:
                kept_key = f"{key}.replaced-{stamp()}"
                self._client.copy_object(
                    Bucket=bucket,
                    Key=kept_key,
                    CopySource={"Bucket": bucket, "Key": key},
                    CopySourceIfMatch=head["ETag"],
                )
                kept = f"s3://{bucket}/{kept_key}"
            condition: dict[str, Any] = {"IfMatch": head["ETag"]} if head else {"IfNoneMatch": "*"}
            with source.open("rb") as body:
                self._client.put_object(Bucket=bucket, Key=key, Body=body, **condition)
        except (ClientError, BotoCoreError) as exc:
            raise self._where.error(exc, "replacing the state") from None
        return kept

    def retire(self) -> None:
        """The manifest now holds everything the adopted `<key>` held, and more: drop `<key>`, unless
        another writer replaced it meanwhile (then it is left for the operator to look at)."""
        try:
            head = self._client.head_object(Bucket=self._where.bucket, Key=self._where.key)
            if head["ETag"] == self.etag:
                self._client.delete_object(Bucket=self._where.bucket, Key=self._where.key)
                log.info(
                    "state_adopted", url=self._where.url, replication="incremental", retired=self._where.key
                )
            else:
                log.warning("state_single_object_changed_meanwhile", key=self._where.key)
        except (ClientError, BotoCoreError) as exc:
            log.warning("state_retire_failed", error=_short(exc))
        self.etag = None


class Incremental:
    """`<key>.manifest` and the chunks it lists: a save uploads only the chunks that changed."""

    def __init__(self, location: StateLocation, client: S3Client) -> None:
        self._where = location
        self._chunks = ChunkStore(client, location.bucket, location.key)
        self._client = client
        self.manifest: Manifest | None = None  # as read or last written
        self._etag: str | None = None  # the manifest's, as read or last written
        self._previous_chunks: set[str] = set()  # kept by garbage collection: a reader may hold it
        self.conflict = False

    def read_manifest(self, doing: str) -> tuple[Manifest, str] | None:
        try:
            return self._chunks.read_manifest()
        except (ClientError, BotoCoreError) as exc:
            raise self._where.error(exc, doing) from None
        except ValueError as exc:
            raise StateError(
                f"S3 state {self._where.url}: its manifest {self._chunks.manifest_key} is unreadable: {exc}",
                hint="restore the last good backup (`rc-archiver state restore`)",
            ) from None

    def read(self, out: BinaryIO, doing: str) -> bool:
        """Write the database the manifest describes to `out`; False when there is no manifest."""
        found = self.read_manifest(doing)
        for attempt in range(3):
            if found is None:  # (none, or retired meanwhile by a `snapshot` run)
                return False
            manifest, etag = found
            try:
                self._chunks.assemble(manifest, out)
            except ClientError as exc:
                if error_code(exc) in ("NoSuchKey", "404") and attempt < 2:
                    # Read beside a run, whose garbage collection dropped an old manifest's chunk: the
                    # manifest has changed since; start over from the new one.
                    out.seek(0)
                    out.truncate()
                    found = self.read_manifest(doing)
                    continue
                raise self._where.error(exc, doing) from None
            except BotoCoreError as exc:
                raise self._where.error(exc, doing) from None
            except (ValueError, zlib.error) as exc:
                raise StateError(
                    f"S3 state {self._where.url} is damaged: {exc}",
                    hint="restore the last good backup (`rc-archiver state restore`)",
                ) from None
            self.manifest, self._etag = manifest, etag
            self._previous_chunks = set(manifest.chunks)
            return True
        return False  # unreachable: the third attempt returns or raises

    def push(self, snapshot: Path) -> tuple[int, int]:
        """Upload `snapshot` incrementally and switch the manifest to it with If-Match; returns the
        chunks and bytes uploaded."""
        known = self.manifest.chunks if self.manifest is not None else []
        try:
            pushed = self._chunks.push(snapshot, known)
            etag = self._chunks.write_manifest(pushed.manifest, self._etag)
        except ClientError as exc:
            if error_code(exc) in CONFLICT:
                self.conflict = True
                raise self._where.changed_by_another_writer() from None
            raise self._where.error(exc, "uploading the state") from None
        except BotoCoreError as exc:
            raise self._where.error(exc, "uploading the state") from None
        if self.manifest is not None:
            self._previous_chunks = set(self.manifest.chunks)
        self.manifest, self._etag = pushed.manifest, etag
        return pushed.chunks_uploaded, pushed.bytes_uploaded

    def keep_copy(self, database: Path) -> str:
        """Upload `database` (the one about to be replaced) as `<key>.replaced-<stamp>`; returns its URL.
        upload_file goes multipart past its threshold: no single-PUT limit for the copy."""
        kept_key = f"{self._where.key}.replaced-{stamp()}"
        try:
            self._client.upload_file(str(database), self._where.bucket, kept_key)
        except (ClientError, BotoCoreError) as exc:
            raise self._where.error(exc, f"keeping {kept_key}") from None
        return f"s3://{self._where.bucket}/{kept_key}"

    def retire(self) -> None:
        """Remove this form entirely (the state is saved as a single object now)."""
        try:
            self._chunks.retire()
            log.info(
                "state_adopted",
                url=self._where.url,
                replication="snapshot",
                retired=self._chunks.manifest_key,
            )
        except (ClientError, BotoCoreError) as exc:
            log.warning("state_retire_failed", error=_short(exc))
        self.manifest = self._etag = None

    def collect_garbage(self, lease_is_mine: Callable[[], bool]) -> None:
        """Delete the chunks neither the current nor the previous manifest lists (a killed run's
        uploads, chunks replaced since); with the lease held, after this run's last save."""
        if self.conflict or self.manifest is None:
            return
        try:
            if not self._still_the_writer(lease_is_mine):  # another writer's chunks could be unlisted
                log.warning("state_garbage_collection_skipped", reason="the lease or manifest changed")
                return
            removed = self._chunks.collect_garbage(set(self.manifest.chunks) | self._previous_chunks)
        except (ClientError, BotoCoreError) as exc:  # left for the next run's collection
            log.warning("state_garbage_collection_failed", error=str(exc))
            return
        if removed:
            log.info("state_chunks_collected", removed=removed)

    def _still_the_writer(self, lease_is_mine: Callable[[], bool]) -> bool:
        """This run's lease, and the manifest it wrote last: no other writer can have saved anything."""
        if not lease_is_mine():
            return False
        try:
            head = self._client.head_object(Bucket=self._where.bucket, Key=self._chunks.manifest_key)
        except ClientError as exc:
            if error_code(exc) in MISSING:
                return False
            raise
        return head["ETag"] == self._etag
