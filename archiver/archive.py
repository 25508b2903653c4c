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
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, cast
from zoneinfo import ZoneInfo

import structlog

from archiver import __version__
from archiver.destinations.base import Destination, StoredObject
from archiver.errors import Cancelled, DestinationError, NotReady, RecordingError, TransientError
from archiver.keys import extension_for, render_key, sidecar_key
from archiver.models import Failure, RunSummary, format_time
from archiver.ringcentral.calllog import FoundRecording
from archiver.ringcentral.client import Downloaded, RingCentralClient
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
    progress_interval: float = 30.0
    progress_bar: bool = False  # a one-line bar on stderr (a TTY) instead of progress events
    budget_per_second: float = 10 / 60  # Heavy requests a second RingCentral allows: the ETA's basis


@dataclass(frozen=True)
class Planned:
    """What a dry run would archive."""

    recording_id: str
    key: str
    start: datetime


def key_values(ref: FoundRecording, ext: str) -> dict[str, object]:
    return {
        "recording_id": ref.recording_id,
        "call_id": ref.call_id,
        "session_id": ref.session_id,
        "telephony_session_id": ref.telephony_session_id,
        "direction": ref.direction,
        "from_number": ref.from_number,
        "to_number": ref.to_number,
        "from_name": ref.from_name,
        "to_name": ref.to_name,
        "extension_id": ref.extension_id,
        "ext": ext,
    }


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


def sidecar_document(ref: FoundRecording, key: str, content_type: str, size: int, sha256: str) -> bytes:
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
        self._processed = 0
        self._manifest: list[dict[str, Any]] = []
        self.spool = options.spool_dir

    # -- the pass ---------------------------------------------------------------------------------
    def run(self, run_id: str, start: datetime, end: datetime) -> RunSummary:
        started = self.clock()
        self._summary = summary = RunSummary(run_id=run_id)
        self._submitted.clear()
        self._found.clear()
        self._manifest.clear()
        self._scan_errors = 0
        self._processed = 0
        slices = day_slices(start, end, self.options.timezone)
        progress = Progress(self, started, len(slices))
        progress.start()
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
                progress.slices_done += 1
                self._submit_due(downloads, uploads, slice_start, slice_end)
            # A leg can start after its record, past the slice the record was found in: catch all.
            self._submit_due(downloads, uploads)
            finished = self._wait_idle()
        finally:
            progress.stop()
            downloads.shutdown(wait=False, cancel_futures=True)
            uploads.shutdown(wait=False, cancel_futures=True)
        if self._fatal is not None:
            raise self._fatal
        self._write_manifest(run_id)
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
                records += page.records
                refs = page.recordings
                found += len(refs)
                statuses = self.state.note_found(refs)
                with self._lock:
                    for recording_id, status in statuses.items():
                        if recording_id not in self._found:
                            self._found.add(recording_id)
                            self._summary.found += 1
                            self._summary.skipped += status == ARCHIVED
        except (RecordingError, TransientError, Cancelled) as exc:
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

    def _submit_due(
        self,
        downloads: ThreadPoolExecutor,
        uploads: ThreadPoolExecutor,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """Hand due recordings to the download workers: all of them, or one slice's (a long backfill
        must not re-read every pending row after each of its days)."""
        for row in self.state.due(self.options.max_attempts, start, end):
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
            self._processed += 1
            self._idle.notify_all()

    def snapshot(self) -> tuple[int, int, int]:
        """(recordings processed, recordings found, bytes archived) so far, for progress reports."""
        with self._lock:
            return self._processed, self._summary.found, self._summary.bytes

    def _write_manifest(self, run_id: str) -> None:
        """`_manifests/<run-id>.jsonl`: what this run archived, for auditors and query engines."""
        if not self._manifest:
            return
        lines = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in self._manifest)
        key = f"_manifests/{run_id}.jsonl"
        try:
            self.destination.put_bytes(key, lines.encode(), content_type="application/x-ndjson")
        except (RecordingError, TransientError) as exc:  # the recordings are archived: report the manifest
            log.error("manifest_failed", key=key, reason=str(exc))
        else:
            log.info("manifest_written", key=key, recordings=len(self._manifest))

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
            if not row.force_upload and self._already_stored(row):
                with self._lock:
                    self._summary.skipped += 1
                bound.info("recording_already_archived")
                return
            with self._spool_slot():
                path, downloaded, seconds = self._download(row)
                key = render_key(
                    self.options.key_template,
                    key_values(row.ref, extension_for(downloaded.content_type)),
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
                self._manifest.append(
                    {
                        "recording_id": row.recording_id,
                        "key": key,
                        "size": dl.size,
                        "sha256": dl.sha256,
                        "call_id": row.ref.call_id,
                        "start_time": format_time(row.ref.start),
                    }
                )
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
        if isinstance(exc, RecordingError | TransientError):
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
    def candidate_keys(self, ref: FoundRecording) -> list[str]:
        """Where this recording would be stored; the extension is only known after download."""
        local_start = ref.start.astimezone(self.options.timezone)
        exts = ["mp3", "wav"] if "{ext" in self.options.key_template else ["bin"]
        return list(
            dict.fromkeys(
                render_key(self.options.key_template, key_values(ref, e), local_start) for e in exts
            )
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

    def find_stored(self, ref: FoundRecording) -> tuple[str, StoredObject, dict[str, Any] | None] | None:
        """Where the destination already holds this recording intact: (key, object, sidecar or None).

        The sidecar is None when only the audio made it (killed before the sidecar), which is
        accepted when the object's own metadata names this recording and its sha256.
        """
        for key in self.candidate_keys(ref):
            stored = self.destination.stat(key)
            if stored is None:
                continue
            sidecar = self.read_sidecar(sidecar_key(key))
            if sidecar is not None and self._matches(stored, sidecar, ref.recording_id):
                return key, stored, sidecar
            if sidecar is None and stored.sha256 and stored.metadata.get("recording-id") == ref.recording_id:
                return key, stored, None
        return None

    def _already_stored(self, row: RecordingRow) -> bool:
        """True (and marked archived) when the destination already holds this recording intact."""
        found = self.find_stored(row.ref)
        if found is None:
            return False
        key, stored, sidecar = found
        content_type = CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")
        if sidecar is not None:
            sha256 = str(sidecar["sha256"])
            content_type = str(sidecar.get("content_type") or content_type)
        else:
            # Killed between the audio upload and the sidecar: finish the job without a download.
            assert stored.sha256 is not None
            sha256 = stored.sha256
            content_type = stored.content_type or content_type
            document = sidecar_document(row.ref, key, content_type, stored.size, sha256)
            self.destination.put_bytes(sidecar_key(key), document, content_type="application/json")
        self.state.mark_archived(row.recording_id, key, content_type, stored.size, sha256)
        return True

    # -- dry run and verify -----------------------------------------------------------------------
    def scan_window(self, start: datetime, end: datetime) -> tuple[set[str], int]:
        """Scan [start, end) into the state's scan cache only (no window marks, no watermark).

        Returns the recording ids the call log holds for the window and the number of slices that
        could not be read.
        """
        self._summary = RunSummary(run_id="scan")
        self._found.clear()
        self._scan_errors = 0
        for slice_start, slice_end in day_slices(start, end, self.options.timezone):
            if self.cancel.is_set():
                break
            self._scan(slice_start, slice_end)
        return set(self._found), self._scan_errors

    def plan(self, start: datetime, end: datetime) -> list[Planned]:
        """What a run over [start, end) would archive. Downloads and writes nothing; the state gains
        only the recordings seen in the call log (the scan cache), never a window, watermark or result."""
        self.scan_window(start, end)
        planned = []
        for row in self.state.due(self.options.max_attempts):
            if not row.force_upload and self.find_stored(row.ref) is not None:
                continue
            planned.append(Planned(row.recording_id, self.candidate_keys(row.ref)[0], row.ref.start))
        return planned

    @staticmethod
    def _matches(stored: StoredObject, sidecar: dict[str, Any], recording_id: str) -> bool:
        return (
            sidecar.get("recording_id") == recording_id
            and sidecar.get("size") == stored.size
            and isinstance(sidecar.get("sha256"), str)
            and (stored.sha256 is None or stored.sha256 == sidecar["sha256"])
        )


class Progress:
    """Reports a run's progress every interval: an event off a TTY, a one-line bar on one.

    The ETA comes from the rate budget: each remaining recording costs one Heavy request, and the
    budget, not the machine, is what bounds a RingCentral archive.
    """

    def __init__(self, archiver: Archiver, started: float, slices: int) -> None:
        self._archiver = archiver
        self._started = started
        self.slices_total = slices
        self.slices_done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)

    def start(self) -> None:
        if self._archiver.options.progress_interval > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._archiver.options.progress_bar:
            self.report(final=True)

    def _loop(self) -> None:
        interval = self._archiver.options.progress_interval
        if self._archiver.options.progress_bar:
            interval = min(interval, 1.0)
        while not self._stop.wait(interval):
            self.report()

    def numbers(self) -> dict[str, Any]:
        done, total, size = self._archiver.snapshot()
        elapsed = max(1e-6, self._archiver.clock() - self._started)
        remaining = max(0, total - done) + (self.slices_total - self.slices_done)
        return {
            "done": done,
            "total": total,
            "bytes": size,
            "rate": round(done / elapsed, 2),
            "eta_seconds": math.ceil(remaining / self._archiver.options.budget_per_second),
            "days_scanned": self.slices_done,
            "days_total": self.slices_total,
        }

    def report(self, final: bool = False) -> None:
        numbers = self.numbers()
        if not self._archiver.options.progress_bar:
            log.info("progress", **numbers)
            return
        total = max(numbers["total"], 1)
        filled = int(30 * numbers["done"] / total)
        bar = "#" * filled + "-" * (30 - filled)
        line = (
            f"\r[{bar}] {numbers['done']}/{numbers['total']} recordings, {numbers['bytes'] / 1e6:.1f} MB, "
            f"{numbers['rate']:.1f}/s, days {numbers['days_scanned']}/{numbers['days_total']}, "
            f"ETA {timedelta(seconds=numbers['eta_seconds'])}"
        )
        sys.stderr.write(line + ("\n" if final else ""))
        sys.stderr.flush()
