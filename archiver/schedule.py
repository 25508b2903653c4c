"""`rc-archiver daemon`: archive passes on a cron schedule (APScheduler 3.x), one at a time.

A run that overruns the next fire time is not doubled (max_instances=1) and the missed fires
coalesce into one; a random jitter spreads start times. SIGTERM stops the scheduler and lets an
in-flight run stop as a one-shot run does. Under systemd (Type=notify) it reports READY, STATUS,
STOPPING and watchdog pings, which stop while a run makes no progress (see liveness.py); /healthz
says the same. The gauges are set from the state before the first run, so a restart never shows
"never succeeded".
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer

import structlog
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from archiver.errors import ArchiverError, SettingsError
from archiver.lifecycle import RunRequest, execute_run
from archiver.liveness import DEFAULT_STALL_SECONDS, Liveness
from archiver.metrics import Metrics, StateFacts
from archiver.notify import Watchdog, notify, watchdog_seconds
from archiver.settings import Settings

log = structlog.get_logger(__name__)
JOB_ID = "archive"


def build_scheduler(settings: Settings, job: Callable[[], None]) -> BlockingScheduler:
    scheduler = BlockingScheduler(
        timezone=settings.tz, executors={"default": ThreadPoolExecutor(max_workers=1)}
    )
    scheduler.add_job(
        job,
        cron_trigger(settings),
        id=JOB_ID,
        name="archive pass",
        coalesce=True,  # fires missed while a run went on (or the host slept) become one
        max_instances=1,  # a run that overruns the next fire time is never doubled
        misfire_grace_time=3600,
    )
    return scheduler


def cron_trigger(settings: Settings) -> CronTrigger:
    trigger = CronTrigger.from_crontab(settings.schedule, timezone=settings.tz)
    # from_crontab takes no jitter, and add_job ignores trigger arguments given beside a trigger
    # instance, so the jitter is set on the trigger itself.
    trigger.jitter = int(settings.jitter.total_seconds()) or None
    return trigger


def run_daemon(
    settings: Settings,
    cancel: threading.Event,
    run_now: bool,
    state_facts: Callable[[], StateFacts | None] = lambda: None,
) -> int:
    """Schedule runs until `cancel` is set; returns the exit code (0 on a clean stop).

    `state_facts` reads the state's facts (None when there is no state yet) for the gauges at start.
    """
    metrics = Metrics()
    refresh_at_start(metrics, state_facts)
    # The watchdog's interval is the stall limit: a run quiet for longer stops the pings.
    liveness = Liveness(watchdog_seconds() or DEFAULT_STALL_SECONDS)
    server = serve_metrics(settings, metrics, lambda: health(cancel, liveness))

    def job() -> None:
        notify("STATUS=archiving")
        liveness.run_started()
        try:
            summary = execute_run(settings, RunRequest(), cancel, metrics, on_progress=liveness.touch)
        finally:
            liveness.run_ended()
        if summary.error:
            status = f"last run failed: {summary.error}"
        else:
            status = (
                f"last run archived {summary.archived}, failed {summary.failed}, left {summary.remaining}"
            )
        notify(f"STATUS={status}"[:400])

    scheduler = build_scheduler(settings, job)

    trigger = cron_trigger(settings)

    def after_job(event: JobEvent) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("run_crashed", error=repr(getattr(event, "exception", None)))
        # From the trigger, not the scheduler: listeners run under the scheduler's lock, and a
        # shutdown waiting for this very job would deadlock on it.
        log.info("next_run", at=str(trigger.get_next_fire_time(None, datetime.now(settings.tz))))

    scheduler.add_listener(after_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    if run_now:
        scheduler.add_job(job, id="run-now", name="archive pass (--run-now)", max_instances=1)

    def stop_when_cancelled() -> None:
        cancel.wait()
        notify("STOPPING=1")
        log.info("daemon_stopping")
        scheduler.shutdown(wait=True)  # waits for an in-flight run, which stops within its timeout

    watchdog = Watchdog(liveness)
    threading.Thread(target=stop_when_cancelled, name="stopper", daemon=True).start()
    first = cron_trigger(settings).get_next_fire_time(None, datetime.now(settings.tz))
    log.info(
        "daemon_started",
        schedule=settings.schedule,
        timezone=settings.timezone,
        jitter_seconds=int(settings.jitter.total_seconds()),
        next_run=str(first),
        run_now=run_now,
    )
    notify("READY=1")
    notify(f"STATUS=waiting; next run {first}")
    watchdog.start()
    scheduler.start()  # blocks until the stopper shuts the scheduler down
    watchdog.stop()
    if server is not None:
        server.shutdown()
        server.server_close()
    log.info("daemon_stopped")
    return 0


def serve_metrics(
    settings: Settings, metrics: Metrics, health: Callable[[], str | None]
) -> ThreadingHTTPServer | None:
    if not settings.metrics_addr:
        return None
    try:
        server = metrics.serve(settings.metrics_addr, health)
    except OSError as exc:
        raise SettingsError(
            f"RC_ARCHIVER_METRICS_ADDR: cannot listen on {settings.metrics_addr}: {exc.strerror}",
            hint="pick a free port, or leave it unset to serve no metrics",
        ) from None
    log.info("metrics_listening", address=settings.metrics_addr, paths=["/metrics", "/healthz"])
    return server


def refresh_at_start(metrics: Metrics, state_facts: Callable[[], StateFacts | None]) -> None:
    """The gauges from the state before any run; an unreadable state is the first run's to report."""
    try:
        facts = state_facts()
    except ArchiverError as exc:
        log.warning("metrics_state_unreadable", error=str(exc), fix=exc.hint or None)
        return
    if facts is not None:
        metrics.refresh(facts, datetime.now(UTC))


def health(cancel: threading.Event, liveness: Liveness) -> str | None:
    """/healthz: None when healthy, else the reason."""
    if cancel.is_set():
        return "stopping"
    return liveness.stalled()
