"""The two forms an S3-hosted state is saved in (RC_ARCHIVER_STATE_REPLICATION), each remembering the
version it read so that it never saves over another writer's:
- `SingleObject` (`snapshot`): `<key>` is one complete database, replaced whole with If-Match on its ETag;
- `Incremental` (`incremental`): `<key>.manifest` and its chunks (archiver/state_replication.py),
  the changed chunks uploaded, then the manifest replaced with If-Match.
A form that meets another writer's version sets `conflict`: nothing more is saved over it."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import StateError
from archiver.state.copies import stamp
from archiver.state_changes import ChangeTracker, TrackingLost
from archiver.state_location import CONFLICT, MISSING, StateLocation, error_code
from archiver.state_replication import CHUNK_SIZE, ChunkStore, Manifest, Pushed, consistent_copy

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger(__name__)
Replication = Literal["snapshot", "incremental"]  # a form
ReplicationSetting = Literal["snapshot", "incremental", "auto"]  # RC_ARCHIVER_STATE_REPLICATION
# `auto` saves incrementally from this size on: a whole-file PUT at every checkpoint costs seconds and
# hundreds of MB a minute past it, where an incremental checkpoint sends what changed (bench/replication.py).
AUTO_INCREMENTAL_FROM = 256 * 1024**2


def form_for(setting: ReplicationSetting, current: Replication | None, size: int) -> Replication:
    """The form to save in: the setting's, or for `auto` the incremental form once the state is saved
    that way (`current`) or its working copy is `size` >= AUTO_INCREMENTAL_FROM bytes; never back, so a
    state that shrinks (compaction) does not flap between forms."""
    if setting != "auto":
        return setting
    return "incremental" if current == "incremental" or size >= AUTO_INCREMENTAL_FROM else "snapshot"


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
        self._tracker: ChangeTracker | None = None  # the working copy's changes since the last save
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

    def track(self, database: Path) -> None:
        """`database` was just written from the manifest read, and nothing has opened it yet: count its
        changes from here, so that even the run's first save reads only what the run changed."""
        self._tracker = ChangeTracker(database, CHUNK_SIZE)
        try:
            self._tracker.adopt()
        except (TrackingLost, sqlite3.Error) as exc:  # the first save reads it whole instead
            log.warning("state_tracking_lost", reason=str(exc))
            self._tracker.forget()

    def save(self, database: Path) -> tuple[int, int]:
        """Save the run's live working copy at `database` (open, and written meanwhile): the chunks
        changed since the last save, read at one committed point, then the manifest with If-Match.
        Returns the chunks and bytes uploaded."""
        if self._tracker is None or self._tracker.path != database:
            self.close()
            self._tracker = ChangeTracker(database, CHUNK_SIZE)
        tracker = self._tracker
        try:
            capture = tracker.capture()
            pushed = self._upload(lambda: self._chunks.push_capture(capture, self.manifest))
        except (TrackingLost, ValueError) as exc:  # proven consistent another way: a copy, read whole
            log.warning("state_tracking_lost", reason=str(exc))
            tracker.forget()
            return self._save_copy(database)
        except (sqlite3.Error, OSError) as exc:
            raise StateError(
                f"the state's working copy {database} cannot be read: {exc}",
                hint="check the disk of RC_ARCHIVER_SPOOL_DIR; the saved state is unchanged",
            ) from None
        tracker.settle()
        return pushed.chunks_uploaded, pushed.bytes_uploaded

    def _save_copy(self, database: Path) -> tuple[int, int]:
        snapshot = database.with_name("snapshot.db")
        snapshot.unlink(missing_ok=True)
        try:  # the run's writes go on meanwhile: a read transaction of its own
            consistent_copy(database, snapshot)
            return self.push(snapshot)
        except sqlite3.Error as exc:
            raise StateError(
                f"the state's working copy {database} cannot be read: {exc}",
                hint="check the disk of RC_ARCHIVER_SPOOL_DIR; the saved state is unchanged",
            ) from None
        finally:
            snapshot.unlink(missing_ok=True)

    def push(self, snapshot: Path) -> tuple[int, int]:
        """Upload the database file `snapshot` (read whole) and switch the manifest to it with If-Match;
        returns the chunks and bytes uploaded."""
        known = self.manifest.chunks if self.manifest is not None else []
        pushed = self._upload(lambda: self._chunks.push(snapshot, known))
        if self._tracker is not None:
            self._tracker.forget()  # the saved state is not what its changes were counted from
        return pushed.chunks_uploaded, pushed.bytes_uploaded

    def _upload(self, push: Callable[[], Pushed]) -> Pushed:
        """Run `push` (the chunks), then replace the manifest with If-Match on the one read."""
        try:
            pushed = push()
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
        log.debug("state_chunks_pushed", read=pushed.chunks_read, uploaded=pushed.chunks_uploaded)
        return pushed

    def close(self) -> None:
        """Let the working copy go (the tracker's connections and files)."""
        if self._tracker is not None:
            self._tracker.close()
            self._tracker = None

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
