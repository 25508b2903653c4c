"""A run from start to end, whatever happens in between: the heartbeat pings, the run's record in the
state, the metrics, and exactly one `run_summary` event with its `outcome` and exit code.

`rc-archiver run`, each scheduled run of the daemon and the demo call `execute_run`; nothing else logs
a run_summary. An error that ends a run early (bad settings, a refused login, an unusable destination,
a held lock, an outage) is part of the summary, never a traceback, and its metrics still carry the
state's gauges, read read-only (the alerts on last_success, at-risk and the rest must not go blind
while runs fail).
"""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog

from archiver.archive.run_pass import run_pass
from archiver.errors import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    ArchiverError,
    SettingsError,
    event_name,
    exit_code_for,
    outcome_for,
)
from archiver.heartbeat import Heartbeat
from archiver.local_state import is_remote_state
from archiver.logs import bind
from archiver.metrics import Metrics, StateFacts, push_instance
from archiver.models import RunSummary
from archiver.settings import Settings
from archiver.state import StateStore
from archiver.state.backup import remote_state
from archiver.status import state_facts
from archiver.windows import plan_run_window
from archiver.wiring import pass_services

log = structlog.get_logger("archiver.run")


@dataclass(frozen=True)
class RunRequest:
    """What the operator asked for: a window (default: since the watermark) and how long to wait for
    another run's lock."""

    since: datetime | None = None
    until: datetime | None = None
    wait_lock: float = 0.0

    def check(self, now: datetime) -> None:
        """Window errors, before any lock or login."""
        if self.since is not None and self.since >= now:
            raise SettingsError(f"--since {self.since.isoformat()} is in the future", hint="give a past time")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise SettingsError(
                f"--since {self.since.isoformat()} is not before --until {self.until.isoformat()}",
                hint="give --since earlier than --until",
            )


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def conclude(summary: RunSummary) -> None:
    """Outcome and exit code of a pass that ran to its end, or was stopped by a signal (which is how a
    time limit, TimeoutStartSec= or activeDeadlineSeconds, stops it): `stopped`, exit 0, when nothing
    it attempted failed; what it did not reach stays due for the next run. Anything failed, owed or
    unread is `incomplete`, exit 1, stopped or not."""
    if summary.outcome:
        return  # ended early by an error: set from the error
    if summary.complete:
        summary.outcome = "stopped" if summary.stopped else "ok"
        summary.exit_code = EXIT_OK
    else:
        summary.outcome, summary.exit_code = "incomplete", EXIT_INCOMPLETE


def failed_before_the_pass(run_id: str, exc: ArchiverError, done: RunSummary | None = None) -> RunSummary:
    """The summary of a run an error ended before (or outside) its pass; the error is logged here,
    as the one error line with its fix. `done`: the pass's own summary, when the error came after it
    (an S3-hosted state changed by another writer fails its last checkpoint): its counts stay true."""
    log.error(event_name(exc), error=str(exc), fix=exc.hint or None, exit_code=exit_code_for(exc))
    summary = done or RunSummary(run_id=run_id)
    summary.error, summary.fix = str(exc), exc.hint
    summary.outcome, summary.exit_code = outcome_for(exc), exit_code_for(exc)
    return summary


def log_run_summary(summary: RunSummary) -> None:
    """The one place a run_summary is logged, in one shape (the error itself has its own line)."""
    event = log.info if summary.complete else log.warning
    event("run_summary", **summary.as_dict())


def execute_run(
    settings: Settings,
    request: RunRequest,
    cancel: threading.Event,
    metrics: Metrics | None = None,
    on_progress: Callable[[], None] = lambda: None,
    bar_stream: IO[str] | None = None,
) -> RunSummary:
    """One run with its pings, state record, metrics and summary; returns the summary (exit code in it)."""
    run_id = new_run_id()
    bind(run_id=run_id)
    metrics = metrics or Metrics()
    heartbeat = Heartbeat(settings.ping_url)
    heartbeat.start()
    state: StateStore | None = None
    facts_read = False
    passed: RunSummary | None = None  # the pass's summary, once it has one
    try:
        request.check(datetime.now(UTC))
        with pass_services(settings, request.wait_lock, cancel, on_progress) as ctx:
            state = ctx.state
            window = plan_run_window(
                datetime.now(UTC), state.watermark(), request.since, request.until, settings
            )
            state.begin_run(run_id)
            try:
                summary = passed = run_pass(
                    ctx, run_id=run_id, window=window, on_progress=on_progress, bar_stream=bar_stream
                )
                conclude(summary)
            except ArchiverError as exc:  # the state itself failed mid-run
                summary = failed_before_the_pass(run_id, exc)
            facts_read = _record(state, summary, settings, metrics)
    except ArchiverError as exc:
        summary = failed_before_the_pass(run_id, exc, passed)
    except BaseException as exc:  # a bug: still one summary, one failed ping, then the traceback
        summary = failed_before_the_pass(run_id, ArchiverError(f"unexpected {type(exc).__name__}: {exc}"))
        _report_the_run(summary, settings, metrics, heartbeat, facts_read)
        raise
    _report_the_run(summary, settings, metrics, heartbeat, facts_read)
    return summary


def state_gauges(state: StateStore, settings: Settings, now: datetime) -> StateFacts:
    """The state's facts for the gauges: status.state_facts, the same path as the daemon's."""
    return state_facts(state, settings, now)


def _record(state: StateStore, summary: RunSummary, settings: Settings, metrics: Metrics) -> bool:
    """The run in the state, and the gauges from it; False when the state failed."""
    try:
        state.finish_run(summary.run_id, summary.outcome, summary.exit_code, summary.as_dict())
        metrics.refresh(state_gauges(state, settings, datetime.now(UTC)), datetime.now(UTC))
    except ArchiverError as exc:
        log.error("state_record_failed", error=str(exc), fix=exc.hint or None)
        return False
    return True


def read_state_gauges(settings: Settings, metrics: Metrics) -> bool:
    """The gauges of a run that ended without reading the state (it failed before, or the state
    failed): read-only, without the lock (SQLite lets a reader in beside another run's writes), so
    nothing is created, migrated or held; an S3-hosted state is read from a copy of the database it
    saved, in either form (no lease needed). False, with `rc_archiver_state_read` 0, when there is no
    state to read: none yet, or unreadable (the S3 objects unreachable too)."""
    reason = ""
    with tempfile.TemporaryDirectory(prefix="rc-archiver-gauges-") as scratch:
        path = Path(settings.state_path)
        try:
            if is_remote_state(settings):  # a copy of the database: a single object or manifest+chunks
                path = Path(scratch) / "state.db"
                remote_state(settings).copy_to(path)
            if not path.is_file():
                reason = f"no state file at {path} yet"
            else:
                state = StateStore(path, read_only=True)
                try:
                    metrics.refresh(state_gauges(state, settings, datetime.now(UTC)), datetime.now(UTC))
                finally:
                    state.close()
                return True
        except ArchiverError as exc:
            reason = str(exc)
    log.warning("metrics_without_state", reason=reason)
    metrics.state_unread()
    return False


def _report_the_run(
    summary: RunSummary, settings: Settings, metrics: Metrics, heartbeat: Heartbeat, facts_read: bool
) -> None:
    """On every path out: the summary, the metrics file or push (with the state's gauges, whatever the
    outcome), the final ping."""
    if not facts_read:
        read_state_gauges(settings, metrics)
    log_run_summary(summary)  # the run's closing line, after any warning about its gauges
    # After the state's facts: this run's outcome and exit code win over the last one it recorded.
    metrics.record_run(summary)
    if summary.error:
        metrics.mark_failed()
    else:  # the daemon keeps its metrics across runs: a run that did not fail is up again
        metrics.mark_up()
    if settings.metrics_file is not None:
        metrics.write_textfile(settings.metrics_file)
    if settings.pushgateway_url:
        # The instance must stay the same across runs (a CronJob's host name changes every run).
        metrics.push(settings.pushgateway_url, job="rc-archiver", instance=push_instance(settings))
    try:
        if summary.complete:
            heartbeat.success(summary.as_dict())
        else:
            heartbeat.fail(summary.as_dict())
    finally:
        heartbeat.close()
