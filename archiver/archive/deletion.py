"""Delete recordings at RingCentral once their archive is proven (opt in: RC_ARCHIVER_DELETE_FROM_SOURCE).

Deletion cannot be undone, so a recording is deleted only when, in this same run, its object has been
read back from the destination in full and hashes to the sha256 computed while downloading it, and,
where Object Lock is configured, the object's retention (or legal hold) is confirmed in place. It runs
after the pass's archiving, inside the Heavy budget (deletion is a Heavy request), in batches of at most
100 ids (RingCentral's limit). A refusal (403: the app lacks EditCallLog or the user
EditCompanyCallRecordings) stops deletion with one clear line; archiving is not affected.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from archiver.archive.layout import Layout
from archiver.archive.manifest import ManifestWriter
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError, AuthError, NotReady
from archiver.ringcentral.client import RingCentralClient
from archiver.state import RecordingRow, StateStore

log = structlog.get_logger(__name__)
BATCH = 100


@dataclass
class DeletionResult:
    deleted: int = 0
    unverified: int = 0
    gone: int = 0  # already deleted at the source (its retention, or another client): recorded only
    refused: str = ""
    would_delete: list[str] = field(default_factory=list)  # a dry run's list


def _verified(destination: Destination, row: RecordingRow, needs_lock: bool, now: datetime) -> str:
    """'' when the archived object is proven intact (and retained); otherwise why not."""
    if not row.key or not row.sha256:
        return "no archived key and sha256 in the state"
    stored = destination.stat(row.key)
    if stored is None:
        return f"object {row.key} is missing"
    if stored.size != row.size:
        return f"object {row.key} has {stored.size} bytes, expected {row.size}"
    if (
        needs_lock
        and not stored.legal_hold
        and (stored.retained_until is None or stored.retained_until <= now)
    ):
        return f"object {row.key} has no Object Lock retention in place"
    digest = hashlib.sha256()
    with destination.open(row.key) as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    if digest.hexdigest() != row.sha256:
        return f"object {row.key} does not hash to the sha256 recorded at download"
    return ""


class _Deleter:
    """The deletion calls and their record in the state and the manifest."""

    def __init__(
        self,
        client: RingCentralClient,
        state: StateStore,
        layout: Layout,
        manifest: ManifestWriter,
        now: Callable[[], datetime],
        result: DeletionResult,
    ) -> None:
        self.client, self.state, self.layout, self.manifest = client, state, layout, manifest
        self.now, self.result = now, result

    def record(self, rows: list[RecordingRow], by: str) -> None:
        ids = [row.recording_id for row in rows]
        self.state.mark_deleted(ids, self.now())
        for row in rows:
            extra = {} if by == "us" else {"by": by}
            self.manifest.add(
                self.layout.manifest_entry(
                    "deleted", row.recording_id, row.key, row.size, row.sha256, **extra
                )
            )
        if by == "us":
            self.result.deleted += len(ids)
            log.info("recordings_deleted_at_source", recordings=len(ids), dry_run=False)
        else:
            self.result.gone += len(ids)
            log.info("recordings_already_gone_at_source", recording_ids=ids, by=by)

    def delete(self, rows: list[RecordingRow]) -> bool:
        """Delete `rows` at RingCentral; False when refused (stop deleting)."""
        ids = [row.recording_id for row in rows]
        try:
            self.client.delete_recordings(ids)
        except AuthError as exc:
            self.result.refused = str(exc)
            log.error("deletion_refused", error=str(exc), fix=exc.hint or None, recordings=len(ids))
            return False
        except NotReady:
            # RingCentral refuses the whole call when one id is not found: already deleted (by another
            # client, or by our own call whose reply was lost). Find it by halves, or every run would
            # send the same doomed batch again.
            if len(rows) == 1:
                self.record(rows, "not found at the source")
                return True
            middle = len(rows) // 2
            return self.delete(rows[:middle]) and self.delete(rows[middle:])
        except ArchiverError as exc:
            log.warning("deletion_failed", reason=str(exc), recordings=len(ids))
            return True  # tried again next run
        self.record(rows, "us")
        return True


def delete_verified(
    client: RingCentralClient,
    destination: Destination,
    state: StateStore,
    layout: Layout,
    manifest: ManifestWriter,
    delete_after: timedelta,
    needs_lock: bool,
    now: Callable[[], datetime],
    cancel: threading.Event,
    dry_run: bool = False,
) -> DeletionResult:
    result = DeletionResult()
    batch: list[RecordingRow] = []
    deleter = _Deleter(client, state, layout, manifest, now, result)

    def send() -> bool:
        if not batch:
            return True
        rows = list(batch)
        batch.clear()
        if dry_run:
            result.would_delete.extend(row.recording_id for row in rows)
            return True
        return deleter.delete(rows)

    for row in state.deletable(now() - delete_after):
        if cancel.is_set():
            break
        if row.deadline <= now():
            # RingCentral's retention has deleted it already: no request, no read-back, nothing left
            # to delete; recorded so that it is not read back again every run.
            if not dry_run:
                deleter.record([row], "retention")
            continue
        try:
            why = _verified(destination, row, needs_lock, now())
        except ArchiverError as exc:
            why = str(exc)
        if why:
            result.unverified += 1
            log.warning("deletion_skipped", recording_id=row.recording_id, reason=why)
            continue
        batch.append(row)
        if len(batch) >= BATCH and not send():
            return result
    send()
    return result
