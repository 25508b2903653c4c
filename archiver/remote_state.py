"""A state file kept in S3, for CronJobs without a volume (RC_ARCHIVER_STATE_PATH=s3://bucket/key).

A run takes a lease (`<key>.lease`, written with If-None-Match so only one run can create it, and
expiring so a crashed run does not block the next one forever), downloads the state to a local
working copy, checkpoints it back periodically and at the end with If-Match on the ETag it read
(a concurrent writer is detected and never overwritten), and releases the lease.

Two forms of the saved state, chosen by RC_ARCHIVER_STATE_REPLICATION:
- `snapshot`: `<key>` is always a complete, consistent database (each checkpoint uploads a backup-API
  snapshot whole, so it is bound by S3's 5 GB single-PUT limit);
- `incremental`: `<key>.manifest` lists content-addressed chunks (archiver/state_replication.py); a
  checkpoint reads and uploads only the chunks that changed, then the manifest with If-Match;
- `auto` (the default): `snapshot` while the state is small, `incremental` for good from 256 MiB
  (archiver/state_forms.py's form_for).
Either mode reads either form (the manifest first): a state saved in the other form is adopted, and the
first checkpoint retires the old form. A backup of an S3 state is the database either form describes,
and a restore replaces it under the lease in the form the state has, keeping the replaced database
beside it (`<key>.replaced-<stamp>`); a pre-migration snapshot is kept there too.

S3State composes the parts: the lease (archiver/state_lease.py), the two forms (archiver/state_forms.py,
over archiver/state_replication.py's chunks), and where the state lives and how its errors read
(archiver/state_location.py).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from archiver.errors import StateError
from archiver.state import StateStore
from archiver.state_forms import Incremental, Replication, ReplicationSetting, SingleObject, form_for
from archiver.state_lease import S3Lease
from archiver.state_location import StateLocation

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = structlog.get_logger(__name__)
CHECKPOINT_INTERVAL = 60.0
SINGLE_PUT_LIMIT = 5 * 1024**3  # S3 refuses a single PUT past 5 GiB
GARBAGE_LEASE_SPARE = 60.0  # seconds the lease must have left for garbage collection to run


class S3State:
    """One run's use of the state: the lease (archiver/state_lease.py) around a local working copy,
    read from and checkpointed to whichever form (archiver/state_forms.py) the settings choose."""

    def __init__(
        self,
        url: str,
        client: S3Client,
        cache_dir: Path,
        clock: Callable[[], float] = time.time,
        replication: ReplicationSetting = "snapshot",
    ) -> None:
        where = StateLocation.parse(url)
        self.url, self.bucket, self.key = url, where.bucket, where.key
        self._where = where
        self._client = client
        self._lease = S3Lease(where, client, clock)
        self.lease_key = self._lease.key
        self.local = cache_dir / "state.db"
        self.setting: ReplicationSetting = replication
        self.replication: Replication = form_for(replication, None, 0)  # the form checkpoints save in
        self._single = SingleObject(where, client)
        self._incremental = Incremental(where, client)
        self._read_form: Replication | None = None  # the form download() found (None: a new state)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _conflict(self) -> bool:
        """Another writer's version was met: nothing more is saved over it."""
        return self._single.conflict or self._incremental.conflict

    # -- the lease --------------------------------------------------------------------------------
    def check_bucket(self) -> None:
        self._lease.check_bucket()

    def describe(self) -> str:
        """For `rc-archiver check`: the bucket is there, whether a state is saved (either form) and who
        leases it. Takes no lease, downloads nothing."""
        self.check_bucket()
        try:
            found = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self.key)
        except (ClientError, BotoCoreError) as exc:
            raise self._where.error(exc, "listing the state") from None
        keys = {item["Key"] for item in found.get("Contents", [])}
        saved = self.key in keys or self.key + ".manifest" in keys  # the single object, or the manifest
        detail = f"{self.url} " + ("exists" if saved else "will be created by the first run")
        holder = self._lease.holder() if self.lease_key in keys else None
        return detail + (f"; leased by {holder[0]} for {int(holder[1])} s more" if holder else "")

    def acquire(self, wait_seconds: float = 0.0) -> None:
        """Check the bucket, then take the lease (its PUT proves the bucket writable)."""
        self._lease.acquire(wait_seconds)

    def release(self) -> None:
        """Stop the checkpoints, collect the garbage chunks (while still the writer), drop the lease."""
        self.stop_checkpoints()
        self._incremental.close()
        if not self._lease.held:
            return
        self.collect_garbage()
        self._lease.release()

    # -- reading the saved database ---------------------------------------------------------------
    def _write_form(self, out: BinaryIO, doing: str) -> Replication | None:
        """Write the saved database, in whichever form it is (the manifest first), to `out`; None when
        there is none."""
        if self._incremental.read(out, doing):
            return "incremental"
        if self._single.read(out, doing):
            return "snapshot"
        return None

    def download(self) -> Path:
        """The working copy to open; a state that does not exist yet starts empty."""
        self.local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for suffix in ("", "-wal", "-shm"):
            Path(str(self.local) + suffix).unlink(missing_ok=True)
        self._single.etag = None
        fd = os.open(self.local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            self._read_form = self._write_form(out, "downloading the state")
        self.replication = form_for(self.setting, self._read_form, 0)
        if self._read_form == self.replication == "incremental":
            self._incremental.track(self.local)  # a save then reads only the chunks the run changed
        if self._read_form is None:
            self.local.unlink()
            log.info("state_new", url=self.url, replication=self.replication)
            return self.local
        log.info(
            "state_downloaded",
            url=self.url,
            bytes=self.local.stat().st_size,
            form=self._read_form,
            replication=self.replication,
        )
        return self.local

    def copy_to(self, target: Path) -> None:
        """The saved database, as a new file at `target` (mode 0600); no lease needed: the single
        object is replaced whole by each checkpoint, and a manifest's chunks are never changed."""
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            if self._write_form(out, "downloading the state") is None:
                raise StateError(
                    f"no state object at {self.url}: no run has used it yet",
                    hint="check RC_ARCHIVER_STATE_PATH (and the AWS credentials' account)",
                )
            out.flush()
            os.fsync(out.fileno())

    # -- objects beside it ------------------------------------------------------------------------
    def put_beside(self, source: Path, suffix: str) -> str:
        """Upload a file as `<key><suffix>` (a pre-migration snapshot); returns its URL."""
        key = self.key + suffix
        try:
            if source.stat().st_size >= SINGLE_PUT_LIMIT:  # multipart: the key is new (it has a time)
                self._client.upload_file(str(source), self.bucket, key)
            else:
                with source.open("rb") as body:
                    self._client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
        except (ClientError, BotoCoreError) as exc:
            raise self._where.error(exc, f"keeping {key}") from None
        return f"s3://{self.bucket}/{key}"

    def replace_with(self, source: Path) -> str | None:
        """Put `source` in place of the saved database (call with the lease held), in the form the state
        has (a new state: a single object); the replaced one is copied to `<key>.replaced-<stamp>`
        first. Returns that copy's URL (None if there was no state)."""
        if self._incremental.read_manifest("reading the state's manifest") is None:
            return self._single.replace(source)
        replaced = self.local.with_name(f"replaced-{os.getpid()}.db")
        replaced.unlink(missing_ok=True)
        try:
            self.copy_to(replaced)  # reads the manifest again: its ETag guards the swap below
            assert self._incremental.manifest is not None
            kept = self._incremental.keep_copy(replaced)
            self._incremental.push(source)
        finally:
            replaced.unlink(missing_ok=True)
        return kept

    # -- saving -----------------------------------------------------------------------------------
    def checkpoint(self, store: StateStore) -> None:
        """Save a consistent snapshot, never overwriting another writer: whole with If-Match on the
        object's ETag (`snapshot`), or its changed chunks then the manifest with If-Match
        (`incremental`). The first checkpoint after adopting the other form retires that form."""
        if self._conflict:
            raise self._where.changed_by_another_writer()  # nothing more is saved over another writer's
        self.replication = form_for(self.setting, self.replication, store.path.stat().st_size)
        if self.replication == "incremental":
            chunks, sent = self._incremental.save(store.path)  # the run's writes go on meanwhile
            if self._read_form == "snapshot":
                self._single.retire()
        else:
            snapshot = self.local.with_name("snapshot.db")
            snapshot.unlink(missing_ok=True)
            store.snapshot(snapshot)
            try:
                chunks, sent = 1, snapshot.stat().st_size
                self._single.save(snapshot)
                if self._read_form == "incremental":
                    self._incremental.retire()
            finally:
                snapshot.unlink(missing_ok=True)
        self._read_form = self.replication
        self._lease.renew()  # with every checkpoint
        log.info("state_checkpointed", url=self.url, replication=self.replication, objects=chunks, bytes=sent)

    def collect_garbage(self) -> None:
        """Delete the chunks neither the current nor the previous manifest lists (a killed run's
        uploads, chunks replaced since); with the lease held, after this run's last checkpoint."""
        if self._conflict or self.replication != "incremental":
            return
        self._incremental.collect_garbage(lambda: self._lease.is_mine(GARBAGE_LEASE_SPARE))

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
