"""`rc-archiver daemon`: archive passes on a cron schedule (APScheduler 3.x), one at a time.

A run that overruns the next fire time is not doubled (max_instances=1) and the missed fires
coalesce into one; a random jitter spreads start times. SIGTERM stops the scheduler and lets an
in-flight run stop as a one-shot run does; SIGUSR1 asks for a run at once (run_now.py), which is
the scheduled job brought forward, so it never doubles a run either. With RC_ARCHIVER_VERIFY_SCHEDULE
a verify runs too (verify_job.py): every job shares one worker thread, so a verify and a run never
overlap, one waits for the other. Under systemd (Type=notify) it reports READY, STATUS, STOPPING and
watchdog pings, which stop while a run makes no progress (see liveness.py); /healthz says the same.
The state gauges are read from the state (read-only) at start and every RC_ARCHIVER_PROGRESS_INTERVAL,
during runs and between them, so a restart never shows "never succeeded", a first backfill shows its
backlog as it goes, and a `verify --repair` from another process shows without waiting for a run.
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

from archiver import verify_job
from archiver.cron import parse_cron
from archiver.errors import ArchiverError, SettingsError
from archiver.lifecycle import RunRequest, execute_run
from archiver.liveness import DEFAULT_STALL_SECONDS, Liveness
from archiver.metrics import Metrics, StateFacts
from archiver.notify import Watchdog, notify, watchdog_seconds
from archiver.run_now import RunNowListener
from archiver.settings import Settings

log = structlog.get_logger(__name__)
JOB_ID = "archive"


def build_scheduler(
    settings: Settings,
    job: Callable[[], None],
    verify: Callable[[], None] | None = None,
    run_now: bool = False,
) -> BlockingScheduler:
    # One worker for every job: a verify and a run never overlap (the state lock would refuse the
    # second anyway); a job that fires while the other runs waits for it.
    scheduler = BlockingScheduler(
        timezone=settings.tz, executors={"default": ThreadPoolExecutor(max_workers=1)}
    )
    now = datetime.now(settings.tz)
    scheduler.add_job(
        job,
        cron_trigger(settings),
        id=JOB_ID,
        name="archive pass",
        coalesce=True,  # fires missed while a run went on (or the host slept) become one
        max_instances=1,  # a run that overruns the next fire time is never doubled
        misfire_grace_time=3600,
        # --run-now brings the same job forward instead of adding another, which max_instances
        # would not hold back from a scheduled fire.
        **({"next_run_time": now} if run_now else {}),
    )
    if verify is not None and settings.verify_schedule:
        scheduler.add_job(
            verify,
            parse_cron(settings.verify_schedule, settings.tz),
            id=verify_job.JOB_ID,
            name="verify",
            coalesce=True,
            max_instances=1,
            misfire_grace_time=None,  # late behind a long run is still worth doing
        )
    return scheduler


def cron_trigger(settings: Settings) -> CronTrigger:
    trigger = parse_cron(settings.schedule, settings.tz)
    # from_crontab takes no jitter, and add_job ignores trigger arguments given beside a trigger
    # instance, so the jitter is set on the trigger itself.
    trigger.jitter = int(settings.jitter.total_seconds()) or None
    return trigger


class _Jobs:
    """The daemon's jobs and what they share; their methods run in the scheduler's one worker
    thread, in the scheduler's listener, or in the run-now listener's thread."""

    def __init__(self, settings: Settings, cancel: threading.Event, metrics: Metrics) -> None:
        self.settings, self.cancel, self.metrics = settings, cancel, metrics
        self.verify_gauges = verify_job.register(metrics.registry, settings, datetime.now(UTC))
        # The watchdog's interval is the stall limit: a run quiet for longer stops the pings.
        self.liveness = Liveness(watchdog_seconds() or DEFAULT_STALL_SECONDS)
        self.requested = threading.Event()  # a "run now" was accepted, its run has not started yet
        self.trigger = cron_trigger(settings)
        self.scheduler: BlockingScheduler | None = None

    def on_progress(self) -> None:
        self.liveness.touch()
        if self.liveness.run_id is None:  # execute_run chose it; this callback runs in its log context
            self.liveness.name_run(structlog.contextvars.get_contextvars().get("run_id"))

    def archive(self) -> None:
        self.requested.clear()
        notify("STATUS=archiving")
        self.liveness.run_started()
        try:
            summary = execute_run(
                self.settings, RunRequest(), self.cancel, self.metrics, on_progress=self.on_progress
            )
        finally:
            self.liveness.run_ended()
            # execute_run bound its run_id to this pool thread's context, which outlives the run:
            # the scheduler's listener (next_run) and the next job would log under it.
            structlog.contextvars.unbind_contextvars("run_id")
        if summary.error:
            status = f"last run failed: {summary.error}"
        else:
            status = (
                f"last run archived {summary.archived}, failed {summary.failed}, left {summary.remaining}"
            )
        notify(f"STATUS={status}"[:400])

    def verify(self) -> None:
        notify("STATUS=verifying")
        verify_job.run_verify(self.settings, self.cancel, self.verify_gauges)
        notify("STATUS=verified; waiting")

    def after_job(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_ERROR:
            log.error("job_crashed", job=event.job_id, error=repr(getattr(event, "exception", None)))
        # From the triggers, not the scheduler: listeners run under the scheduler's lock, and a
        # shutdown waiting for this very job would deadlock on it.
        now = datetime.now(self.settings.tz)
        if event.job_id == verify_job.JOB_ID and self.settings.verify_schedule:
            verify_trigger = parse_cron(self.settings.verify_schedule, self.settings.tz)
            log.info("next_verify", at=str(verify_trigger.get_next_fire_time(None, now)))
        else:
            log.info("next_run", at=str(self.trigger.get_next_fire_time(None, now)))

    def run_requested(self, who: dict[str, object]) -> None:
        """A "run now" (SIGUSR1): the scheduled job brought forward, so max_instances=1 and the one
        worker still hold; a request while a run goes on or is about to start is logged and dropped."""
        if self.cancel.is_set() or self.scheduler is None:
            log.info("run_now_ignored", reason="the daemon is stopping or not started yet", **who)
        elif self.liveness.active or self.requested.is_set():
            log.info("run_now_ignored", reason="a run is going on or about to start", **who)
        else:
            self.requested.set()
            self.scheduler.modify_job(JOB_ID, next_run_time=datetime.now(self.settings.tz))
            log.info("run_now_requested", signal="SIGUSR1", **who)


def run_daemon(
    settings: Settings,
    cancel: threading.Event,
    run_now: bool,
    state_facts: Callable[[], StateFacts | None] = lambda: None,
) -> int:
    """Schedule runs until `cancel` is set; returns the exit code (0 on a clean stop).

    `state_facts` reads the state's facts read-only (None when there is no state yet) for the gauges.
    """
    metrics = Metrics()
    refresh_gauges(metrics, state_facts, warn=True)
    jobs = _Jobs(settings, cancel, metrics)
    scheduler = jobs.scheduler = build_scheduler(settings, jobs.archive, jobs.verify, run_now)
    scheduler.add_listener(jobs.after_job, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    # Before any other thread starts: they must inherit SIGUSR1 blocked (run_now.py says why).
    listener = RunNowListener(jobs.run_requested)
    listener.install()
    server = serve_metrics(settings, metrics, lambda: health(cancel, jobs.liveness))
    stop_refreshing = threading.Event()
    threading.Thread(
        target=keep_gauges_fresh,
        args=(metrics, state_facts, settings.progress_interval.total_seconds(), stop_refreshing),
        name="gauges",
        daemon=True,
    ).start()

    def stop_when_cancelled() -> None:
        cancel.wait()
        notify("STOPPING=1")
        log.info("daemon_stopping")
        scheduler.shutdown(wait=True)  # waits for an in-flight run, which stops within its timeout

    watchdog = Watchdog(jobs.liveness)
    threading.Thread(target=stop_when_cancelled, name="stopper", daemon=True).start()
    first = cron_trigger(settings).get_next_fire_time(None, datetime.now(settings.tz))
    log.info(
        "daemon_started",
        schedule=settings.schedule,
        timezone=settings.timezone,
        jitter_seconds=int(settings.jitter.total_seconds()),
        next_run=str(first),
        run_now=run_now,
        verify_schedule=settings.verify_schedule or None,
    )
    notify("READY=1")
    notify(f"STATUS=waiting; next run {first}")
    watchdog.start()
    scheduler.start()  # blocks until the stopper shuts the scheduler down
    watchdog.stop()
    listener.stop()
    stop_refreshing.set()
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


def refresh_gauges(metrics: Metrics, state_facts: Callable[[], StateFacts | None], warn: bool) -> bool:
    """The gauges from the state; False when it could not be read (the run that owns it reports
    why). `warn` logs that, once per streak of failures rather than every interval."""
    try:
        facts = state_facts()
    except ArchiverError as exc:
        if warn:
            log.warning("metrics_state_unreadable", error=str(exc), fix=exc.hint or None)
        return False
    if facts is not None:
        metrics.refresh(facts, datetime.now(UTC))
    return True


def keep_gauges_fresh(
    metrics: Metrics,
    state_facts: Callable[[], StateFacts | None],
    interval: float,
    stop: threading.Event,
) -> None:
    """Every `interval` seconds until `stop`: during a run (whose own refresh comes only at its end)
    and between runs (another process, e.g. `verify --repair` or `retry`, may change the state)."""
    readable = True
    while not stop.wait(interval):
        readable = refresh_gauges(metrics, state_facts, warn=readable)


def health(cancel: threading.Event, liveness: Liveness) -> str | None:
    """/healthz: None when healthy, else the reason."""
    if cancel.is_set():
        return "stopping"
    return liveness.stalled()
