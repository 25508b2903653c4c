"""One archive pass: scan the call log, download each recording, store it with its sidecar, record it.

The order of effects is what makes a kill anywhere harmless:
    spool file complete and verified -> audio uploaded -> sidecar written -> state marked archived.
A recording whose audio (and sidecar) already exist under its key is recognised before any download
(size and sha256 from the object's metadata or sidecar) and marked archived without a new upload,
so even a lost state file costs lookups, not re-uploads.

Downloads (bound by RingCentral's rate budget) and uploads (bound by the destination) run in two
thread pools joined by a bounded number of spool slots, so a slow upload never holds up the
rate budget and spool disk use stays bounded.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast
from zoneinfo import ZoneInfo

import structlog

from archiver import __version__
from archiver.destinations.base import Destination, StoredObject
from archiver.errors import DestinationError, NotReady, RecordingError
from archiver.keys import extension_for, render_key, sidecar_key
from archiver.models import Failure, RecordingRef, RunSummary, format_time, recordings_in
from archiver.ringcentral.client import Downloaded, RingCentralClient
from archiver.ringcentral.pacer import Cancelled
from archiver.state import ARCHIVED, RecordingRow, StateStore
from archiver.windows import day_slices

log = structlog.get_logger(__name__)
CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav"}


@dataclass(frozen=True)
class RunOptions:
    key_template: str
    spool_dir: Path
    max_attempts: int = 5
    upload_concurrency: int = 4
    download_concurrency: int = 2
    stop_timeout: float = 20.0
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))


def spool_folder(spool_dir: Path, state_path: Path) -> Path:
    """A spool folder of this state file's own, so runs for different accounts never share one."""
    digest = hashlib.sha256(str(state_path.resolve()).encode()).hexdigest()[:12]
    return spool_dir / f"state-{digest}"


def clear_spool(folder: Path) -> int:
    """Remove what a killed run left in the spool (call with the state lock held)."""
    removed = 0
    if folder.exists():
        for leftover in folder.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            removed += 1
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return removed


def sidecar_document(ref: RecordingRef, key: str, content_type: str, size: int, sha256: str) -> bytes:
    """The JSON written beside each recording: enough to understand it without RingCentral."""
    source = ref.leg if ref.leg is not None else ref.record
    doc = {
        "recording_id": ref.recording_id,
        "call_id": ref.call_id,
        "session_id": ref.session_id,
        "telephony_session_id": ref.telephony_session_id,
        "recording_type": ref.recording_type,
        "content_type": content_type,
        "size": size,
        "sha256": sha256,
        "key": key,
        "start_time": format_time(ref.start),
        "duration": ref.duration,
        "direction": ref.direction,
        "from": source.get("from") or ref.record.get("from"),
        "to": source.get("to") or ref.record.get("to"),
        "archived_at": format_time(datetime.now(UTC)),
        "archiver_version": __version__,
        "call_log_record": ref.record,
        "call_log_leg": ref.leg,
    }
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True).encode()


class Archiver:
    """Runs archive passes with the collaborators it is given; the CLI and the daemon build them."""

    def __init__(
        self,
        client: RingCentralClient,
        destination: Destination,
        state: StateStore,
        options: RunOptions,
        cancel: threading.Event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.destination = destination
        self.state = state
        self.options = options
        self.cancel = cancel
        self.clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._active = 0
        self._submitted: set[str] = set()
        self._found: set[str] = set()
        self._fatal: DestinationError | None = None
        self._spool_slots = threading.BoundedSemaphore(options.upload_concurrency * 2)
        self._summary = RunSummary(run_id="")
        self._scan_errors = 0
        self.spool = options.spool_dir

    # -- the pass ---------------------------------------------------------------------------------
    def run(self, run_id: str, start: datetime, end: datetime) -> RunSummary:
        started = self.clock()
        self._summary = summary = RunSummary(run_id=run_id)
        self._submitted.clear()
        self._found.clear()
        self._scan_errors = 0
        slices = day_slices(start, end, self.options.timezone)
        log.info(
            "run_started", window_start=format_time(start), window_end=format_time(end), slices=len(slices)
        )
        downloads = ThreadPoolExecutor(self.options.download_concurrency, thread_name_prefix="download")
        uploads = ThreadPoolExecutor(self.options.upload_concurrency, thread_name_prefix="upload")
        scanned_all = True
        try:
            self._submit_due(downloads, uploads)  # leftovers of earlier runs first: they are the oldest
            for slice_start, slice_end in slices:
                if self.cancel.is_set():
                    scanned_all = False
                    break
                if not self.state.window_done(slice_start, slice_end):
                    if not self._scan(slice_start, slice_end):
                        scanned_all = False
                        continue
                    self.state.mark_window_done(slice_start, slice_end, run_id)
                self._submit_due(downloads, uploads)
            finished = self._wait_idle()
        finally:
            downloads.shutdown(wait=False, cancel_futures=True)
            uploads.shutdown(wait=False, cancel_futures=True)
        if self._fatal is not None:
            raise self._fatal
        if scanned_all and not self.cancel.is_set():
            self.state.advance_watermark(end)
        for row in self.state.exhausted(self.options.max_attempts):
            summary.exhausted += 1
            summary.failures.append(Failure(row.recording_id, row.last_error or "", row.attempts))
        summary.failed += self._scan_errors
        summary.stopped = self.cancel.is_set()
        summary.abandoned = 0 if finished else self._active
        summary.seconds = self.clock() - started
        return summary

    def _scan(self, start: datetime, end: datetime) -> bool:
        """Record every recording of the slice in the state; False when the call log failed."""
        records = found = 0
        try:
            for page in self.client.call_log_pages(start, end):
                records += len(page)
                refs = [ref for record in page for ref in recordings_in(record)]
                found += len(refs)
                statuses = self.state.note_found(refs)
                with self._lock:
                    for recording_id, status in statuses.items():
                        if recording_id not in self._found:
                            self._found.add(recording_id)
                            self._summary.found += 1
                            self._summary.skipped += status == ARCHIVED
        except (RecordingError, Cancelled) as exc:
            if isinstance(exc, Cancelled):
                return False
            self._scan_errors += 1
            log.error(
                "scan_failed", window_start=format_time(start), window_end=format_time(end), reason=str(exc)
            )
            return False
        log.info(
            "window_scanned",
            window_start=format_time(start),
            window_end=format_time(end),
            records=records,
            recordings=found,
        )
        return True

    def _submit_due(self, downloads: ThreadPoolExecutor, uploads: ThreadPoolExecutor) -> None:
        for row in self.state.due(self.options.max_attempts):
            if self.cancel.is_set():
                return
            if row.recording_id in self._submitted:
                continue
            self._submitted.add(row.recording_id)
            with self._lock:
                # Bound the work queued ahead of the download workers (memory, and a quick stop).
                while self._active >= self.options.download_concurrency * 4 and not self.cancel.is_set():
                    self._idle.wait(0.5)
                if self.cancel.is_set():
                    return
                self._active += 1
                if row.recording_id not in self._found:
                    self._found.add(row.recording_id)
                    self._summary.found += 1
            downloads.submit(contextvars.copy_context().run, self._process, row, uploads)

    def _done(self) -> None:
        with self._lock:
            self._active -= 1
            self._idle.notify_all()

    def _wait_idle(self) -> bool:
        """Wait for all work; once stopping, at most stop_timeout. False if work was abandoned."""
        deadline: float | None = None
        with self._lock:
            while self._active > 0:
                if self.cancel.is_set() and deadline is None:
                    deadline = self.clock() + self.options.stop_timeout
                    log.info("stopping", in_flight=self._active, timeout=self.options.stop_timeout)
                if deadline is not None and self.clock() >= deadline:
                    return False
                self._idle.wait(0.2)
        return True

    # -- one recording ----------------------------------------------------------------------------
    def _process(self, row: RecordingRow, uploads: ThreadPoolExecutor) -> None:
        """Download one recording and hand it to the upload pool (which then owns `_done`)."""
        handed_off = False
        bound = log.bind(recording_id=row.recording_id, call_id=row.ref.call_id)
        try:
            if self.cancel.is_set():
                return
            if self._already_stored(row):
                with self._lock:
                    self._summary.skipped += 1
                bound.info("recording_already_archived")
                return
            with self._spool_slot():
                path, downloaded, seconds = self._download(row)
                key = render_key(
                    self.options.key_template,
                    row.ref.key_values(extension_for(downloaded.content_type)),
                    row.ref.start.astimezone(self.options.timezone),
                )
                uploads.submit(
                    contextvars.copy_context().run, self._store, row, key, path, downloaded, seconds
                )
                handed_off = True
        except Cancelled:
            pass
        except Exception as exc:
            self._fail(row, exc)
        finally:
            if not handed_off:
                self._done()

    @contextmanager
    def _spool_slot(self) -> Iterator[None]:
        """Hold a spool slot from download start until the upload pool takes the file over."""
        while not self._spool_slots.acquire(timeout=0.5):
            if self.cancel.is_set():
                raise Cancelled
        try:
            yield
        except BaseException:
            self._spool_slots.release()
            raise

    def _download(self, row: RecordingRow) -> tuple[Path, Downloaded, float]:
        started = self.clock()
        try:
            handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - the file outlives this block on success
                dir=self.spool, prefix=f"{row.recording_id[:40]}-", suffix=".part", delete=False
            )
        except OSError as exc:
            raise RecordingError(f"cannot create a spool file in {self.spool}: {exc.strerror}") from None
        path = Path(handle.name)
        try:
            with handle:
                downloaded = self.client.download(row.ref.content_uri, cast(BinaryIO, handle))
        except BaseException:
            path.unlink(missing_ok=True)  # a partial download is never uploaded
            raise
        return path, downloaded, self.clock() - started

    def _store(
        self, row: RecordingRow, key: str, path: Path, dl: Downloaded, download_seconds: float
    ) -> None:
        """Upload audio, then sidecar, then mark archived: a kill between any two steps is harmless."""
        started = self.clock()
        try:
            metadata = {"recording-id": row.recording_id, "call-id": row.ref.call_id, "sha256": dl.sha256}
            self.destination.put_file(key, path, content_type=dl.content_type, metadata=metadata)
            sidecar = sidecar_document(row.ref, key, dl.content_type, dl.size, dl.sha256)
            self.destination.put_bytes(sidecar_key(key), sidecar, content_type="application/json")
            self.state.mark_archived(row.recording_id, key, dl.content_type, dl.size, dl.sha256)
            with self._lock:
                self._summary.archived += 1
                self._summary.bytes += dl.size
            log.info(
                "recording_archived",
                recording_id=row.recording_id,
                call_id=row.ref.call_id,
                key=key,
                bytes=dl.size,
                download_seconds=round(download_seconds, 3),
                upload_seconds=round(self.clock() - started, 3),
                resumed=dl.resumed,
            )
        except Exception as exc:
            self._fail(row, exc)
        finally:
            path.unlink(missing_ok=True)
            self._spool_slots.release()
            self._done()

    def _fail(self, row: RecordingRow, exc: BaseException) -> None:
        bound = log.bind(recording_id=row.recording_id, call_id=row.ref.call_id)
        if isinstance(exc, DestinationError):
            # The destination itself is unusable: stop the run; the CLI exits 4 with the fix.
            with self._lock:
                if self._fatal is None:
                    self._fatal = exc
            self.cancel.set()
            return
        if isinstance(exc, NotReady):
            attempts = self.state.record_failure(row.recording_id, str(exc), still_pending=True)
            with self._lock:
                if attempts < self.options.max_attempts:  # else it is reported as exhausted
                    self._summary.pending += 1
            bound.warning("recording_not_ready", attempts=attempts, reason=str(exc))
            return
        if isinstance(exc, RecordingError):
            reason = str(exc)
            bound.warning("recording_failed", reason=reason)
        else:
            reason = f"unexpected {type(exc).__name__}: {exc}"
            bound.error("recording_failed_unexpectedly", reason=reason, exc_info=exc)
        attempts = self.state.record_failure(row.recording_id, reason)
        with self._lock:
            if attempts < self.options.max_attempts:
                self._summary.failed += 1
                self._summary.failures.append(Failure(row.recording_id, reason, attempts))

    # -- already archived? ------------------------------------------------------------------------
    def candidate_keys(self, ref: RecordingRef) -> list[str]:
        """Where this recording would be stored; the extension is only known after download."""
        local_start = ref.start.astimezone(self.options.timezone)
        exts = ["mp3", "wav"] if "{ext" in self.options.key_template else ["bin"]
        return list(
            dict.fromkeys(render_key(self.options.key_template, ref.key_values(e), local_start) for e in exts)
        )

    def read_sidecar(self, key: str) -> dict[str, Any] | None:
        if self.destination.stat(key) is None:
            return None
        with self.destination.open(key) as stream:
            raw = stream.read(16 * 1024 * 1024)
        try:
            data = json.loads(raw)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def _already_stored(self, row: RecordingRow) -> bool:
        """True (and marked archived) when the destination already holds this recording intact."""
        ref = row.ref
        for key in self.candidate_keys(ref):
            stored = self.destination.stat(key)
            if stored is None:
                continue
            sidecar = self.read_sidecar(sidecar_key(key))
            if sidecar is not None and self._matches(stored, sidecar, ref.recording_id):
                content_type = str(
                    sidecar.get("content_type") or CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "")
                )
                self.state.mark_archived(
                    ref.recording_id, key, content_type, stored.size, str(sidecar["sha256"])
                )
                return True
            if sidecar is None and stored.sha256 and stored.metadata.get("recording-id") == ref.recording_id:
                # Killed between the audio upload and the sidecar: finish the job without a download.
                content_type = stored.content_type or CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "")
                document = sidecar_document(ref, key, content_type, stored.size, stored.sha256)
                self.destination.put_bytes(sidecar_key(key), document, content_type="application/json")
                self.state.mark_archived(ref.recording_id, key, content_type, stored.size, stored.sha256)
                return True
        return False

    @staticmethod
    def _matches(stored: StoredObject, sidecar: dict[str, Any], recording_id: str) -> bool:
        return (
            sidecar.get("recording_id") == recording_id
            and sidecar.get("size") == stored.size
            and isinstance(sidecar.get("sha256"), str)
            and (stored.sha256 is None or stored.sha256 == sidecar["sha256"])
        )
