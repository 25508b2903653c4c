"""Delete recordings at RingCentral once their archive is proven (opt in: RC_ARCHIVER_DELETE_FROM_SOURCE).

Deletion cannot be undone, so it follows the proof of proof.py against what RingCentral served, never
only against our own records, and records nothing as deleted without RingCentral's word for it:

    settle what a cut-off run left (intents) -> for each archived recording, oldest first:
        past its deadline? leave it (RingCentral's retention deletes it; nothing is recorded)
        adopted or migrated? re-prove: download it again, compare (a mismatch is re-archived)
        prove the archived copy (proof.py) -> batch of at most 100
    -> journal the intent (state, then a manifest part written at once) -> DELETE -> record what
       RingCentral confirmed (state, then the manifest)

A 404 for a batch is settled per recording with one look at its content (Range: bytes=0-0): gone there
is recorded as `source` (not deleted by us); when every recording of the batch is still served the
DELETE went astray (a misrouting proxy): deletion stops with one error line and records nothing. A
lost reply (a timeout, a reset, a 5xx) leaves the intents; the next run settles each with one look,
and what is gone is recorded as deleted by us. A 403 stops deletion (archiving goes on); a stop (signal,
breaker) sends no further DELETE. It runs after the pass's archiving, inside the Heavy budget.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import structlog

from archiver.archive.context import PassContext
from archiver.archive.manifest import ManifestWriter
from archiver.archive.proof import LockRequirement, prove
from archiver.destinations.registry import backend_for
from archiver.errors import ArchiverError, AuthError, Cancelled, NotReady, RecordingError
from archiver.models import format_time
from archiver.ringcentral.client import MAX_DELETE, RingCentralClient
from archiver.state import RecordingRow
from archiver.state.schema import BY_MIGRATED, BY_SOURCE, BY_US

log = structlog.get_logger(__name__)
BATCH = MAX_DELETE  # ids per DELETE: RingCentral's limit


@dataclass
class DeletionResult:
    deleted: int = 0  # RingCentral confirmed our DELETE (or, settling a lost reply, no longer has it)
    gone: int = 0  # RingCentral no longer had it when a DELETE answered 404: recorded as `source`
    unverified: int = 0  # its archive failed the proof: kept at the source
    reproved: int = 0  # adopted or migrated rows whose sha256 a fresh download reproduced
    mismatched: int = 0  # ... and those it did not: queued to be archived again
    left_to_retention: int = 0  # past their deadline: left alone
    refused: str = ""  # a 403: deletion stops
    stopped: str = ""  # why deletion stopped early otherwise (misroute, lost reply, manifest)
    would_delete: list[str] = field(default_factory=list)  # a dry run's list
    would_reprove: int = 0  # a dry run's count of rows that need a fresh download first


def at_source(client: RingCentralClient, row: RecordingRow) -> bool | None:
    """Whether RingCentral still serves the recording's content (one look: Range bytes=0-0): False
    for 404 CMN-102, True for audio, None when the answer tells neither."""
    try:
        sample = client.sample(row.recording.content_uri, f"recording {row.recording_id} at the source")
    except NotReady:
        return False
    except ArchiverError:
        return None
    return True if sample.status in (200, 206) and sample.content_type.startswith("audio/") else None


class _Deleter:
    """The deletion calls, the journal around them, and their record in the state and the manifest."""

    def __init__(
        self, ctx: PassContext, *, run_id: str, manifest: ManifestWriter, result: DeletionResult
    ) -> None:
        self.ctx, self.run_id, self.manifest, self.result = ctx, run_id, manifest, result

    def record(self, rows: Sequence[RecordingRow], by: str, how: str) -> None:
        """RingCentral's word that `rows` are gone: the state first, then the manifest."""
        if not rows:
            return
        ctx, when = self.ctx, self.ctx.now()
        ctx.state.mark_deleted([row.recording_id for row in rows], when, by)
        for row in rows:
            self.manifest.add(
                ctx.layout.manifest_entry(
                    "deleted",
                    row.recording_id,
                    row.archived,
                    by=by,
                    how=how,
                    deleted_at=format_time(when),
                )
            )
        self.manifest.flush()  # a refused part stays owed: the state's `manifested` column says so
        if by == BY_US:
            self.result.deleted += len(rows)
            log.info("recordings_deleted_at_source", recordings=len(rows), how=how)
        else:
            self.result.gone += len(rows)
            log.warning(
                "recordings_already_gone_at_source", recording_ids=[r.recording_id for r in rows], how=how
            )

    def settle_intents(self) -> None:
        """Intents a cut-off run left: one look each; gone = deleted by that run's DELETE. Deletions an
        older version recorded (schema 4's migration) are settled the same way: one still served is
        archived and held at the source again."""
        found = self.ctx.state.count_unsettled_intents()
        if found:
            log.info("deletion_intents_found", recordings=found)
        for row in self.ctx.state.unsettled_intents():  # in batches: flat memory however many
            if self.ctx.cancel.is_set():
                return
            held = at_source(self.ctx.client, row)
            if held is None:
                log.warning("deletion_intent_unsettled", recording_id=row.recording_id)
                return  # RingCentral answers neither way: the next run asks again
            if row.deleted_at is not None:  # recorded as deleted by an older version: is it?
                if held:
                    self.ctx.state.undelete([row.recording_id])
                    log.warning("recording_still_at_source", recording_id=row.recording_id)
                else:
                    self.record([row], row.deleted_by or BY_MIGRATED, "confirmed after migration")
            elif held:
                self.ctx.state.clear_intent([row.recording_id])
            else:
                self.record([row], BY_US, "settled after a lost reply")

    def delete(self, rows: list[RecordingRow]) -> bool:
        """Journal, DELETE and record `rows`; False when deletion must stop for this run."""
        ctx, ids = self.ctx, [row.recording_id for row in rows]
        if ctx.cancel.is_set():
            return False
        ctx.state.intend_deletion(ids, self.run_id)
        for row in rows:
            self.manifest.add(ctx.layout.manifest_entry("delete_intent", row.recording_id, row.archived))
        if not self.manifest.flush():
            ctx.state.clear_intent(ids)
            return self._stop("the manifest could not be written, so the intent to delete is not on record")
        try:
            confirmed = ctx.client.delete_recordings(ids)
        except AuthError as exc:
            ctx.state.clear_intent(ids)
            self.result.refused = str(exc)
            log.error("deletion_refused", error=str(exc), fix=exc.hint or None, recordings=len(ids))
            return False
        except Cancelled:  # stopped before the request left: nothing was sent
            ctx.state.clear_intent(ids)
            return False
        except NotReady:
            return self._settle_not_found(rows)
        except ArchiverError as exc:
            # Carried out or not, nobody can say: the intents stay, and the next run settles them.
            return self._stop(f"no answer to a DELETE of {len(ids)} recording(s) ({exc}); settled next run")
        self.record([row for row in rows if row.recording_id in confirmed], BY_US, "deleted")
        unconfirmed = [row for row in rows if row.recording_id not in confirmed]
        if unconfirmed:
            log.warning("deletion_partly_confirmed", confirmed=len(confirmed), unconfirmed=len(unconfirmed))
            for row in unconfirmed:
                held = at_source(ctx.client, row)
                if held is False:
                    self.record([row], BY_US, "settled after a partial answer")
                elif held:
                    ctx.state.clear_intent([row.recording_id])
                # None: the intent stays for the next run
        return True

    def _settle_not_found(self, rows: list[RecordingRow]) -> bool:
        """A 404 for the batch: one look at each recording. Gone ones are RingCentral's doing; if every
        one answered and is still served, the DELETE is going astray: stop, record nothing."""
        ctx = self.ctx
        gone: list[RecordingRow] = []
        held: list[RecordingRow] = []
        for row in rows:
            answer = at_source(ctx.client, row)
            if answer is not None:
                (held if answer else gone).append(row)
        ctx.state.clear_intent([row.recording_id for row in rows if row not in gone])
        self.record(gone, BY_SOURCE, "not found at the source")
        if len(held) == len(rows):  # every one answered, and every one is still there
            self.result.stopped = "misrouted"
            log.error(
                "deletion_misrouted",
                error=f"RingCentral answered 404 to a DELETE of {len(rows)} recording(s) it still serves",
                fix="check RC_SERVER_URL and any proxy between rc-archiver and RingCentral; nothing was "
                "recorded as deleted",
            )
            return False
        # Some gone (RingCentral's 404 was about them), or some unclear (left for a later run): the
        # held ones are sent again, a smaller batch each time, so this ends.
        return self.delete(held) if held else True

    def _stop(self, why: str) -> bool:
        self.result.stopped = why
        log.warning("deletion_stopped", reason=why)
        return False


def reprove(ctx: PassContext, row: RecordingRow, result: DeletionResult) -> bool:
    """Download an adopted or migrated recording again; True when it reproduces the archived sha256
    (the row becomes proven). A mismatch is queued to be archived again and reported."""
    try:
        handle = tempfile.NamedTemporaryFile(dir=ctx.spool, suffix=".reproof", delete=False)  # noqa: SIM115
    except OSError as exc:
        log.warning("reproof_skipped", recording_id=row.recording_id, reason=f"spool: {exc.strerror}")
        return False
    path = Path(handle.name)
    try:
        with handle:
            downloaded = ctx.client.download(row.recording.content_uri, cast(BinaryIO, handle))
    except RecordingError as exc:
        log.warning("reproof_failed", recording_id=row.recording_id, reason=str(exc))
        return False
    except ArchiverError as exc:
        log.warning("reproof_deferred", recording_id=row.recording_id, reason=str(exc))
        return False
    finally:
        path.unlink(missing_ok=True)
    if (downloaded.sha256, downloaded.size) == (row.sha256, row.size):
        ctx.state.mark_reproved(row.recording_id)
        result.reproved += 1
        return True
    reason = (
        f"the archived copy ({row.size} bytes, sha256 {row.sha256}) is not what RingCentral serves "
        f"({downloaded.size} bytes, sha256 {downloaded.sha256}): archived again"
    )
    ctx.state.requeue(row.recording_id, f"re-proof: {reason}", force_upload=True)
    result.mismatched += 1
    log.error("archive_reproof_mismatch", recording_id=row.recording_id, key=row.key, reason=reason)
    return False


def settle_intents(ctx: PassContext, *, run_id: str, manifest: ManifestWriter) -> DeletionResult:
    """Only settle what a cut-off run left (every run does, deletion on or off)."""
    result = DeletionResult()
    _Deleter(ctx, run_id=run_id, manifest=manifest, result=result).settle_intents()
    return result


def delete_proven(
    ctx: PassContext, *, run_id: str, manifest: ManifestWriter, dry_run: bool = False
) -> DeletionResult:
    """The deletion phase (this module's docstring) of run `run_id`, its intents and deletions listed
    by `manifest`; a dry run reads and proves but sends nothing (and never flushes the manifest)."""
    result = DeletionResult()
    deleter = _Deleter(ctx, run_id=run_id, manifest=manifest, result=result)
    if not dry_run:
        deleter.settle_intents()
    lock = LockRequirement.from_settings(ctx.settings)
    if lock.required and not _keeps_locks(ctx):
        return result
    batch: list[RecordingRow] = []
    for row in ctx.state.deletable(ctx.now() - ctx.settings.delete_after):
        if ctx.cancel.is_set():
            break
        if row.deadline <= ctx.now():
            result.left_to_retention += 1  # RingCentral's retention deletes it: nothing to do or record
            continue
        if not row.proven:
            if dry_run:
                result.would_reprove += 1
                continue
            if not reprove(ctx, row, result):
                continue
        try:
            why = prove(ctx.destination, ctx.layout, row, lock, ctx.now())
        except Exception as exc:  # any failure to read back (botocore's too) is a reason not to delete
            why = f"reading the archive back failed: {type(exc).__name__}: {exc}"
        if why:
            result.unverified += 1
            log.warning("deletion_skipped", recording_id=row.recording_id, reason=why)
            continue
        batch.append(row)
        if len(batch) >= BATCH:
            if not _send(deleter, batch, result, dry_run):
                return result
            batch = []
    if batch and not ctx.cancel.is_set():
        _send(deleter, batch, result, dry_run)
    return result


def _keeps_locks(ctx: PassContext) -> bool:
    """Whether the destination can show the Object Lock the settings require before a deletion: the
    backend's capability (registry.Backend.proves_retention), asked instead of guessing from settings
    or a URL. One that cannot (a folder) would fail every recording's proof: say so once, delete none."""
    backend = backend_for(ctx.settings.destination or "")
    if backend.proves_retention:
        return True
    log.error(
        "deletion_refused",
        error=f"RC_ARCHIVER_S3_OBJECT_LOCK_MODE or RC_ARCHIVER_S3_LEGAL_HOLD asks for an Object Lock that "
        f"a {backend.scheme}:// destination cannot keep: nothing is deleted at the source",
        fix="archive to an S3 bucket with Object Lock enabled, or unset the Object Lock settings",
    )
    return False


def _send(deleter: _Deleter, batch: list[RecordingRow], result: DeletionResult, dry_run: bool) -> bool:
    if dry_run:
        result.would_delete.extend(row.recording_id for row in batch)
        return True
    return deleter.delete(batch)
