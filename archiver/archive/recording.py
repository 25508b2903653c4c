"""One recording through the archive: already stored? -> download to the spool -> upload the audio
-> write the sidecar -> mark archived. Returns what became of it; never raises.

The order of effects is what makes a kill anywhere harmless:
    spool file complete and verified -> audio uploaded -> sidecar written -> state marked archived.
A recording whose audio (and sidecar) already exist under its key is recognised before any download
and marked archived without a new upload, so even a lost state file costs lookups, not re-uploads.

Failures are sorted by whose fault they are: a recording's own (not ready, a refused or broken body)
is charged to its attempts; a failing world (RingCentral, the destination, the spool) is not: it goes
to the outage breaker, which stops the run when the world keeps failing.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import structlog

from archiver.archive.breaker import DESTINATION, RINGCENTRAL, SPOOL, OutageBreaker
from archiver.archive.context import PassContext
from archiver.archive.layout import SIDECAR_CONTENT_TYPE
from archiver.archive.manifest import ManifestWriter
from archiver.archive.tally import Kind, Outcome
from archiver.archive.transfer import Then
from archiver.errors import (
    ArchiverError,
    AuthError,
    Cancelled,
    DestinationError,
    NotReady,
    PermanentError,
    RecordingError,
    SpoolError,
    TransientError,
)
from archiver.models import ArchivedObject
from archiver.ringcentral.client import Downloaded
from archiver.state import RecordingRow
from archiver.state.schema import ADOPTED, DOWNLOADED

log = structlog.get_logger(__name__)
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, kw_only=True)
class RecordingArchiver:
    """Archives one recording at a time (this module's docstring), for every recording of a pass: the
    pass's context, and the run's manifest writer and outage breaker."""

    ctx: PassContext
    manifest: ManifestWriter
    breaker: OutageBreaker

    def archive_one(self, row: RecordingRow, *, defer_late: bool = False) -> Outcome | Then[Outcome]:
        """The first stage (download pool): decide, download; hand the upload to the second stage.

        With `defer_late`, a recording whose deadline has passed by its turn is handed back (Kind.LATE)
        without a request: the pass tries it after every live one, so it never takes a live one's turn."""
        recording = row.recording
        bound = log.bind(recording_id=recording.recording_id, call_id=recording.call_id)
        stage = "lookup"  # asking the destination: its failures are the destination's, not RingCentral's
        try:
            if not row.force_upload:
                stored = self.ctx.layout.find_stored(self.ctx.destination, recording)
                if stored is not None:
                    if stored.sidecar_missing:  # killed between the audio and the sidecar: finish the job
                        self._write_sidecar(row, stored.archived)
                    # Adopted: its sha256 is the destination's word, not our download's; deleting it at the
                    # source needs a fresh download first (deletion.reprove).
                    self._mark_archived(row, stored.archived, "found_stored", ADOPTED)
                    bound.info("recording_already_archived", key=stored.archived.key)
                    self.breaker.success(DESTINATION)
                    return Outcome(recording.recording_id, Kind.FOUND_STORED)
            if defer_late and self.ctx.now() >= row.deadline:
                return Outcome(recording.recording_id, Kind.LATE)
            stage = "download"
            path, downloaded = self._download(row)
        except Exception as exc:  # every failure becomes an outcome: the pool never sees one
            return self._failed(row, exc, stage)
        self.breaker.success(RINGCENTRAL)
        return Then(lambda: self._store(row, path, downloaded), lambda: path.unlink(missing_ok=True))

    def _download(self, row: RecordingRow) -> tuple[Path, Downloaded]:
        try:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the file outlives this block on success
                # The id comes from the call log: only its safe characters go into a file name.
                dir=self.ctx.spool,
                prefix=f"{_SAFE_NAME.sub('_', row.recording_id[:40])}-",
                suffix=".part",
                delete=False,
            )
        except OSError as exc:
            raise SpoolError(f"cannot create a spool file in {self.ctx.spool}: {exc.strerror}") from None
        path = Path(handle.name)
        try:
            with handle:
                downloaded = self.ctx.client.download(row.recording.content_uri, cast(BinaryIO, handle))
        except BaseException:
            path.unlink(missing_ok=True)  # a partial download is never uploaded
            raise
        return path, downloaded

    def _store(self, row: RecordingRow, path: Path, dl: Downloaded) -> Outcome:
        """The second stage (upload pool): audio, then sidecar, then the state."""
        recording = row.recording
        try:
            key = self.ctx.layout.key_for(recording, dl.content_type)
            self.ctx.destination.put(
                key,
                path,
                content_type=dl.content_type,
                metadata=self.ctx.layout.object_metadata(recording, dl.sha256),
            )
            archived = dl.archived_as(key)
            self._write_sidecar(row, archived)
            self._mark_archived(row, archived, "archived", DOWNLOADED)
        except Exception as exc:
            return self._failed(row, exc, "upload")
        self.breaker.success(DESTINATION)
        log.info(
            "recording_archived",
            recording_id=recording.recording_id,
            call_id=recording.call_id,
            key=key,
            bytes=dl.size,
            resumed=dl.resumed,
        )
        return Outcome(recording.recording_id, Kind.ARCHIVED, bytes=dl.size)

    def _write_sidecar(self, row: RecordingRow, archived: ArchivedObject) -> None:
        document = self.ctx.layout.sidecar(
            row.recording, self.ctx.state.source_of(row.recording_id), archived, self.ctx.now()
        )
        self.ctx.destination.put(
            self.ctx.layout.sidecar_key(archived.key), document, content_type=SIDECAR_CONTENT_TYPE
        )

    def _mark_archived(
        self, row: RecordingRow, archived: ArchivedObject, event: str, provenance: str
    ) -> None:
        self.ctx.state.mark_archived(row.recording_id, archived, provenance)
        self.manifest.add(
            self.ctx.layout.manifest_entry(
                event,
                row.recording_id,
                archived,
                call_id=row.recording.call_id,
                start_time=row.recording.start.isoformat(),
            )
        )

    def _failed(self, row: RecordingRow, exc: BaseException, stage: str) -> Outcome:
        recording_id = row.recording_id
        bound = log.bind(recording_id=recording_id, call_id=row.recording.call_id)
        if isinstance(exc, Cancelled):
            return Outcome(recording_id, Kind.STOPPED)
        if isinstance(exc, AuthError | DestinationError) and not isinstance(exc, SpoolError):
            # No retry fixes these (a missing permission, a missing bucket): stop the run, charge nothing.
            self.breaker.stop_with(exc)
            return Outcome(recording_id, Kind.FATAL, reason=str(exc))
        if isinstance(exc, SpoolError | TransientError):
            world = (
                SPOOL if isinstance(exc, SpoolError) else RINGCENTRAL if stage == "download" else DESTINATION
            )
            bound.warning("recording_deferred", world=world, reason=str(exc))
            self.breaker.failure(world, str(exc))
            return Outcome(recording_id, Kind.OUTAGE, reason=str(exc))
        # The world answered: this recording is the problem.
        self.breaker.success(RINGCENTRAL if stage == "download" else DESTINATION)
        if isinstance(exc, NotReady | PermanentError) and self.ctx.now() >= row.deadline:
            reason = f"deleted by RingCentral: its retention ended {row.deadline.isoformat()} ({exc})"
            self.ctx.state.mark_lost(recording_id, reason)
            bound.error("recording_lost", reason=reason)
            return Outcome(recording_id, Kind.LOST, reason=reason)
        if isinstance(exc, RecordingError | ArchiverError):
            reason = str(exc)
            bound.warning(
                "recording_not_ready" if isinstance(exc, NotReady) else "recording_failed", reason=reason
            )
        else:
            reason = f"unexpected {type(exc).__name__}: {exc}"
            bound.error("recording_failed_unexpectedly", reason=reason, exc_info=exc)
        attempts = self.ctx.state.record_failure(
            recording_id,
            reason,
            still_pending=isinstance(exc, NotReady),
            max_attempts=self.ctx.settings.max_attempts,
            retry_interval=self.ctx.settings.exhausted_retry_interval,
        )
        kind = Kind.NOT_READY if isinstance(exc, NotReady) else Kind.FAILED
        return Outcome(
            recording_id,
            kind,
            reason=reason,
            attempts=attempts,
            exhausted=attempts >= self.ctx.settings.max_attempts,
        )
