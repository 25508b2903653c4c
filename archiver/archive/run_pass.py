"""One archive pass, top to bottom: the whole of what a run does, on one screen.

    recover what a killed run left -> scan the window into the state -> forecast the backlog ->
    archive everything due, earliest deletion deadline first -> delete verified recordings at the
    source (opt in) -> close the manifest -> advance the watermark (only past a call log read whole)

Every collaborator is passed in (archive/context.py's PassContext, whose settings say how). The pass
returns its summary; a failing world (the outage breaker) or a failure no retry fixes ends it early
with the error in the summary, never with an exception, so the lifecycle can report it like any other
run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import IO

import structlog

from archiver.archive.breaker import OutageBreaker
from archiver.archive.context import PassContext
from archiver.archive.deletion import delete_proven, settle_intents
from archiver.archive.forecast import Forecast, advice, forecast_histogram, pace_needed_histogram
from archiver.archive.manifest import ManifestWriter
from archiver.archive.progress import ProgressReporter
from archiver.archive.recording import RecordingArchiver
from archiver.archive.scan import ScanResult, scan_window
from archiver.archive.tally import Kind, Outcome, Tally
from archiver.archive.transfer import TwoStagePool
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError, AuthError, event_name, exit_code_for, outcome_for
from archiver.index_files import IndexWriter
from archiver.models import MAX_REPORTED_FAILURES, Failure, RunSummary, format_time
from archiver.ringcentral.client import RingCentralClient
from archiver.state import RecordingRow, StateStore
from archiver.windows import day_slices

log = structlog.get_logger(__name__)
CAP_WARNING = 0.9  # warn when the recordings RingCentral holds reach this share of its cap
# State meta keys: the downloads' measured pace (requests a second), and the content budget last
# learned from RingCentral (for `status`, which does not log in).
META_MEASURED_PACE, META_CONTENT_BUDGET = "measured_pace", "content_budget"


class RateWait:
    """The wall time a pass's work was held by the rate budget, phase by phase.

    A pacer's `waited` adds up every thread's waits, so download workers held side by side count once
    each (summed, a 240 s run had "waited" 478 s). The call-log scan and the deletion phase each run
    in one thread: their waits are wall time. The downloads' waits are divided by the workers that
    shared them: the average worker's hold, which like the others never exceeds its phase's length.
    """

    def __init__(self, client: RingCentralClient) -> None:
        self._client = client
        self._mark = self._waited()
        self.seconds = 0.0

    def _waited(self) -> float:
        return sum(p.waited for p in self._client.pacers.values())  # groups learned mid-run included

    def phase_done(self, threads: int = 1) -> None:
        """The phase since the last call ran in `threads` threads that called RingCentral."""
        waited = self._waited()
        self.seconds += (waited - self._mark) / max(threads, 1)
        self._mark = waited


def content_pace(client: RingCentralClient) -> tuple[float, float]:
    """(requests a second, window seconds) of the budget downloads spend: the group content replies
    report (heavy unless RingCentral says otherwise)."""
    pacers = client.pacers
    pacer = pacers.get("media") or pacers["heavy"]
    return pacer.limit / pacer.window, pacer.window


def forecast_backlog(
    state: StateStore, max_attempts: int, budget: tuple[float, float], now: datetime
) -> tuple[Forecast, str]:
    """The forecast of the state's backlog at `budget` (slowed to the downloads' measured pace when
    that is slower), and the advice that would prevent a projected loss."""
    per_second, window = budget
    measured = state.meta_json(META_MEASURED_PACE)
    if isinstance(measured, int | float) and 0 < measured < per_second:
        per_second = float(measured)
    backlog = state.due_deadlines(max_attempts, now)  # a histogram: (deadline, how many)
    result = forecast_histogram(backlog, now, per_second)
    needed = pace_needed_histogram(backlog, now, per_second) if result.projected_loss else None
    return result, advice(result, needed, window)


def _warn_about_the_cap(state: StateStore, cap: int, now: datetime) -> None:
    held = state.held_at_source(now)
    if held >= cap * CAP_WARNING:
        log.warning(
            "source_cap_near",
            recordings_at_source=held,
            cap=cap,
            fix="RingCentral drops the oldest recordings past its cap: enable RC_ARCHIVER_DELETE_FROM_SOURCE "
            "or ask RingCentral about the account's limit",
        )


def run_pass(
    ctx: PassContext,
    *,
    run_id: str,
    window: tuple[datetime, datetime],
    on_progress: Callable[[], None] = lambda: None,
    bar_stream: IO[str] | None = None,
) -> RunSummary:
    started, wall_start = time.monotonic(), ctx.now()
    settings, destination, state, cancel = ctx.settings, ctx.destination, ctx.state, ctx.cancel
    breaker, tally = OutageBreaker(cancel), Tally(run_id)
    manifest = ManifestWriter(destination, state, ctx.layout, run_id)
    state.apply_retention(settings.source_retention)
    leftovers = destination.recover(before=wall_start)
    if leftovers:
        log.info("destination_leftovers_removed", count=leftovers)
    manifest.adopt_unlisted()
    slices = day_slices(*window, settings.tz)
    log.info(
        "run_started",
        window_start=format_time(window[0]),
        window_end=format_time(window[1]),
        slices=len(slices),
    )
    progress = ProgressReporter(
        tally.progress,
        len(slices),
        settings.progress_interval.total_seconds(),
        content_pace(ctx.client)[0],
        bar_stream,
    )
    progress.start()
    call_log_read, abandoned = False, 0
    result: Forecast | None = None
    rate_wait = RateWait(ctx.client)
    try:
        call_log_read = _scan(
            ctx,
            slices,
            run_id=run_id,
            breaker=breaker,
            tally=tally,
            progress=progress,
            on_progress=on_progress,
        )
        rate_wait.phase_done()
        budget = content_pace(ctx.client)
        state.set_meta_json(META_CONTENT_BUDGET, list(budget))  # for `status`, which does not log in
        result, remedy = forecast_backlog(state, settings.max_attempts, budget, ctx.now())
        # Re-proofs (deletion.reprove: one download each) are spent after the whole backlog, so they
        # never push a live recording past its deadline; the forecast says how many there are.
        reproofs = state.counts(settings.max_attempts)["unproven"] if settings.delete_from_source else 0
        log.info("forecast", **result.as_dict(), reproofs=reproofs, **({"fix": remedy} if remedy else {}))
        _warn_about_the_cap(state, settings.source_cap, ctx.now())
        archivist = RecordingArchiver(ctx=ctx, manifest=manifest, breaker=breaker)
        archived_started = time.monotonic()
        abandoned, submitted = _archive_due(archivist, run_id=run_id, tally=tally, on_progress=on_progress)
        rate_wait.phase_done(min(settings.download_concurrency, submitted))
        if abandoned:
            _recover_abandoned(destination, ctx.now())
        done = tally.summary()  # every outcome that cost a request counts toward the pace
        spent = done.archived + done.failed + done.pending + done.lost
        _remember_pace(state, spent, time.monotonic() - archived_started, abandoned)
        if not cancel.is_set():
            tally.deleted(_delete_at_source(ctx, run_id=run_id, manifest=manifest))
            rate_wait.phase_done()
    finally:
        progress.stop()
        manifest.close()
    summary = tally.summary()
    summary.forecast = result.as_dict() if result is not None else None
    summary.abandoned = abandoned
    summary.rate_wait_seconds = rate_wait.seconds
    # A day not read stays before the watermark: the next run's window still holds it.
    if call_log_read and not cancel.is_set():
        state.advance_watermark(window[1])
    _complete_summary(summary, ctx, tripped=breaker.tripped, started=started)
    return summary


def _recover_abandoned(destination: Destination, now: datetime) -> None:
    """The abandoned recordings' multipart uploads (and staged files) are aborted now, not left billed."""
    try:
        destination.recover(before=now)
    except ArchiverError as exc:  # the destination is failing: the journal keeps them for later
        log.warning("abandoned_uploads_kept", reason=str(exc))


def _delete_at_source(ctx: PassContext, *, run_id: str, manifest: ManifestWriter) -> int:
    """The deletion phase (archive/deletion.py), or, with deletion off, only the settling of DELETEs a
    cut-off run left in flight; returns how many recordings RingCentral deleted on our word."""
    if ctx.settings.delete_from_source:
        return delete_proven(ctx, run_id=run_id, manifest=manifest).deleted
    if ctx.state.count_unsettled_intents():
        return settle_intents(ctx, run_id=run_id, manifest=manifest).deleted
    return 0


def _scan(
    ctx: PassContext,
    slices: list[tuple[datetime, datetime]],
    *,
    run_id: str,
    breaker: OutageBreaker,
    tally: Tally,
    progress: ProgressReporter,
    on_progress: Callable[[], None],
) -> bool:
    """The call log's slices into the state, the scan's result folded into the tally (every unreadable
    day named in the summary); returns whether the whole window was read."""

    def slice_done() -> None:
        progress.day_done()
        on_progress()

    try:
        scan = scan_window(
            slices,
            client=ctx.client,
            state=ctx.state,
            run_id=run_id,
            retention=ctx.settings.source_retention,
            cancel=ctx.cancel,
            breaker=breaker,
            on_seen=tally.seen,
            on_slice=slice_done,
        )
    except AuthError as exc:
        breaker.stop_with(exc)
        scan = ScanResult(days_total=len(slices), stopped=True)
    return tally.scanned(scan, ctx.settings.tz)


def _archive_due(
    archivist: RecordingArchiver, *, run_id: str, tally: Tally, on_progress: Callable[[], None]
) -> tuple[int, int]:
    """Everything due, in deadline order, through the two pools; returns the recordings abandoned and
    those submitted. Each recording archived gets its line in the archive's index (index_files.py)."""
    ctx = archivist.ctx
    settings, cancel = ctx.settings, ctx.cancel
    index = IndexWriter(ctx.destination, ctx.state, run_id)
    index.adopt_unlisted()  # what a killed run archived and never listed

    late: dict[str, RecordingRow] = {}
    rows: dict[str, RecordingRow] = {}
    lock = threading.Lock()

    def record(outcome: Outcome) -> None:
        if outcome.kind is Kind.LATE:
            with lock:
                late[outcome.recording_id] = rows[outcome.recording_id]
            return
        with lock:
            rows.pop(outcome.recording_id, None)
        if outcome.kind in (Kind.ARCHIVED, Kind.FOUND_STORED):
            index.add(outcome.recording_id)
        tally.add(outcome)
        on_progress()

    pool: TwoStagePool[Outcome] = TwoStagePool(
        settings.download_concurrency,
        settings.upload_concurrency,
        settings.upload_concurrency * 2,  # spool slots: files downloaded and waiting for an upload
        cancel,
        record,
    )
    submitted = 0
    try:
        for row in ctx.state.due(settings.max_attempts, ctx.now()):
            if cancel.is_set():
                break
            if row.last_seen_run != run_id:
                tally.taken_up()  # a leftover of an earlier run, outside this window
            with lock:
                rows[row.recording_id] = row
            if not pool.submit(lambda row=row: archivist.archive_one(row, defer_late=True)):  # type: ignore[misc]
                break
            submitted += 1
        finished = pool.drain(settings.stop_timeout.total_seconds())
        if finished and late and not cancel.is_set():
            # Those whose deadline passed before their turn: after every live one (RingCentral may
            # still hold some), in deadline order.
            with lock:
                tail = sorted(late.values(), key=lambda r: (r.deadline, r.recording_id))
            for row in tail:
                if not pool.submit(lambda row=row: archivist.archive_one(row)):  # type: ignore[misc]
                    break
            finished = pool.drain(settings.stop_timeout.total_seconds())
        return (0 if finished else pool.active), submitted
    finally:
        pool.close()
        index.close()


def _remember_pace(state: StateStore, requests: int, seconds: float, abandoned: int) -> None:
    """The downloads' own pace, for the next forecast (only from a run long enough to tell)."""
    if requests >= 50 and seconds > 0 and not abandoned:
        state.set_meta_json(META_MEASURED_PACE, round(requests / seconds, 4))


def _complete_summary(
    summary: RunSummary, ctx: PassContext, *, tripped: ArchiverError | None, started: float
) -> None:
    state, max_attempts = ctx.state, ctx.settings.max_attempts
    for row in state.exhausted(max_attempts):
        summary.exhausted += 1
        if len(summary.failures) < MAX_REPORTED_FAILURES:
            summary.failures.append(Failure(row.recording_id, row.last_error or "", row.attempts))
    summary.remaining = state.count_due(max_attempts, ctx.now())
    pacers = ctx.client.pacers.values()
    summary.rate_limited = sum(p.penalties for p in pacers)
    summary.seconds = time.monotonic() - started
    summary.stopped = ctx.cancel.is_set() and tripped is None
    if tripped is not None:
        log.error(
            event_name(tripped),
            error=str(tripped),
            fix=tripped.hint or None,
            exit_code=exit_code_for(tripped),
        )
        summary.error, summary.fix = str(tripped), tripped.hint
        summary.outcome, summary.exit_code = outcome_for(tripped), exit_code_for(tripped)
