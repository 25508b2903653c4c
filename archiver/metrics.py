"""Prometheus metrics: gauges from the state file, counters from the runs of this process.

The gauges are set from `StateFacts` (which the caller reads from the state) at daemon start and after
every run, whatever its outcome, so `/metrics`, the one-shot textfile and the Pushgateway are right
from the first scrape, restart or not, and a run that fails early still carries last_success and the
recordings by status (the alerts on them must keep working while runs fail). A report whose state
could not be read says so in `rc_archiver_state_read` 0. A fact the state does not know yet (no run
has succeeded) is left out rather than exported as 0, so `absent()` can alert on it. Labels stay
low-cardinality: a fixed set of statuses and outcomes, never a recording id.

Every way out (textfile, Pushgateway) logs a failure as a warning and returns False: a metrics
problem never fails a run.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
    push_to_gateway,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from archiver import __version__
from archiver.models import RunSummary, parse_time

if TYPE_CHECKING:
    from archiver.settings import Settings

log = structlog.get_logger(__name__)
# `*_created` series would double the series count and mean nothing for a one-shot run's counters.
disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in prometheus_client

STATUSES = ("pending", "archived", "failed", "exhausted", "lost", "deleted")
OUTCOMES = ("ok", "incomplete", "stopped", "settings", "auth", "destination", "outage", "lock")
PUSH_TIMEOUT = 10.0  # seconds; a Pushgateway that hangs must not hold the end of a run for long


@dataclass(frozen=True)
class StateFacts:
    """What the state file says, read by the caller; every gauge derives from one of these."""

    counts: Mapping[str, int]  # by status (STATUSES); a missing status counts 0
    last_success: datetime | None  # end of the last run that archived everything it found
    last_run_end: datetime | None
    last_run_outcome: str | None  # one of OUTCOMES
    last_run_exit_code: int | None
    oldest_pending: datetime | None  # start of the oldest call whose recording is not archived
    at_risk: int  # not archived, and its deadline within RC_ARCHIVER_RISK_WINDOW
    backlog: int  # recordings still to archive
    projected_loss: int  # recordings the forecast says RingCentral deletes before they are archived
    seconds_to_clear: float | None  # the forecast's time to clear the backlog at the rate budget
    source_recordings_seen: int  # recordings at the source (RingCentral keeps at most 100,000)
    # End of the last run that made progress (see last_progress); None: unknown or never.
    last_progress: datetime | None = None


PROGRESS_OUTCOMES = ("ok", "complete")  # `complete`: what older versions recorded for `ok`


# The runs looked through for the last that made progress (older ones are covered by last_success):
# two weeks of a run every half hour.
PROGRESS_RUNS = 700


def last_progress(facts: StateFacts, runs: Iterable[Mapping[str, Any]]) -> StateFacts:
    """`facts` with last_progress: the end of the last run that archived everything it found, or that
    was stopped (by its time limit or a signal) with nothing failing after archiving at least one
    recording. A long backfill cut by the time limit every night thus still shows progress, while one
    that archives nothing does not. `runs` are the state's last runs (StateStore.last_runs), newest
    first; last_success covers runs older than those."""
    ends = [facts.last_success] if facts.last_success else []
    for run in runs:
        summary = run.get("summary") or {}
        progressed = run.get("outcome") in PROGRESS_OUTCOMES or (
            run.get("outcome") == "stopped" and int(summary.get("archived") or 0) > 0
        )
        if progressed and run.get("ended_at"):
            ends.append(parse_time(str(run["ended_at"])))
            break
    return replace(facts, last_progress=max(ends, default=None))


class _StateGauges(Collector):
    """The state-derived gauges, exported from the latest facts (optional ones only when known).

    The last run's outcome and exit code also come from record_run, so a run whose state could not
    be read (no facts) still reports how it ended; whichever was set last wins."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._facts: StateFacts | None = None
        self._now: datetime | None = None
        self._outcome: str | None = None
        self._exit_code: int | None = None
        self._read = False  # whether the last attempt to read the state succeeded

    def update(self, facts: StateFacts, now: datetime) -> None:
        with self._lock:
            self._facts, self._now, self._read = facts, now, True
            self._outcome = facts.last_run_outcome or self._outcome
            if facts.last_run_exit_code is not None:
                self._exit_code = facts.last_run_exit_code

    def unread(self) -> None:
        with self._lock:
            self._read = False

    def note_run(self, outcome: str | None, exit_code: int | None) -> None:
        with self._lock:
            self._outcome = outcome or self._outcome
            if exit_code is not None:
                self._exit_code = exit_code

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            facts, now, outcome, exit_code = self._facts, self._now, self._outcome, self._exit_code
            read = self._read
        yield _gauge(
            "rc_archiver_state_read",
            "1 when the state gauges were read from the state for this report; 0 when the state could "
            "not be read (none yet, unreadable, or in S3 and not reached): a one-shot report then has "
            "none, a daemon keeps the last ones it read",
            1 if read else 0,
        )
        if exit_code is not None:
            yield _gauge("rc_archiver_last_run_exit_code", "Exit code of the last run", exit_code)
        if outcome is not None:
            family = GaugeMetricFamily(
                "rc_archiver_last_run_outcome", "1 for the outcome of the last run", labels=["outcome"]
            )
            for name in OUTCOMES:
                family.add_metric([name], 1 if name == outcome else 0)
            yield family
        if facts is None or now is None:
            return
        by_status = GaugeMetricFamily(
            "rc_archiver_recordings", "Recordings in the state, by status", labels=["status"]
        )
        for status in STATUSES:
            by_status.add_metric([status], facts.counts.get(status, 0))
        yield by_status
        if facts.last_success is not None:
            yield _gauge(
                "rc_archiver_last_success_timestamp_seconds",
                "End of the last run that archived everything it found (absent: never)",
                facts.last_success.timestamp(),
            )
        if facts.last_progress is not None:
            yield _gauge(
                "rc_archiver_last_progress_timestamp_seconds",
                "End of the last run that archived everything it found, or that was stopped (time limit, "
                "signal) with nothing failing after archiving some (absent: never)",
                facts.last_progress.timestamp(),
            )
        if facts.last_run_end is not None:
            yield _gauge(
                "rc_archiver_last_run_timestamp_seconds",
                "End of the last run, whatever its outcome",
                facts.last_run_end.timestamp(),
            )
        age = (now - facts.oldest_pending).total_seconds() if facts.oldest_pending else 0.0
        yield _gauge(
            "rc_archiver_oldest_pending_age_seconds",
            "Age of the oldest call whose recording is not archived (0: none)",
            max(age, 0.0),
        )
        yield _gauge(
            "rc_archiver_recordings_at_risk",
            "Recordings not archived whose deadline at RingCentral is within RC_ARCHIVER_RISK_WINDOW",
            facts.at_risk,
        )
        yield _gauge("rc_archiver_backlog_recordings", "Recordings still to archive", facts.backlog)
        yield _gauge(
            "rc_archiver_projected_loss_recordings",
            "Recordings the forecast says RingCentral deletes before they can be archived",
            facts.projected_loss,
        )
        if facts.seconds_to_clear is not None:
            yield _gauge(
                "rc_archiver_backlog_clear_seconds",
                "Forecast time to clear the backlog within the rate budget",
                facts.seconds_to_clear,
            )
        yield _gauge(
            "rc_archiver_source_recordings_seen",
            "Recordings seen at RingCentral (it keeps at most 100,000 per account)",
            facts.source_recordings_seen,
        )


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


class Metrics:
    """One registry per process: the daemon serves it, a one-shot run writes or pushes it."""

    def __init__(self, version: str = __version__) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._state = _StateGauges()
        r.register(self._state)
        self.archived = Counter("rc_archiver_recordings_archived", "Recordings archived", registry=r)
        self.failed = Counter("rc_archiver_recordings_failed", "Recording attempts that failed", registry=r)
        self.lost = Counter(
            "rc_archiver_recordings_lost",
            "Recordings RingCentral deleted before they were archived",
            registry=r,
        )
        self.deleted = Counter(
            "rc_archiver_recordings_deleted", "Archived recordings deleted at RingCentral", registry=r
        )
        self.bytes = Counter("rc_archiver_bytes_archived", "Bytes of recordings archived", registry=r)
        self.rate_limited = Counter("rc_archiver_rate_limited", "429 answers from RingCentral", registry=r)
        self.rate_wait = Counter(
            "rc_archiver_rate_limit_wait_seconds",
            "Wall seconds runs' work was held by the rate budget (downloads: the average worker's hold)",
            registry=r,
        )
        # A gauge beside the counter: a one-shot textfile restarts its counters every run, so "429s in
        # the last run" is what an alert can rely on in every deployment.
        self.last_run_rate_limited = Gauge(
            "rc_archiver_last_run_rate_limited", "429 answers from RingCentral in the last run", registry=r
        )
        self.run_duration = Gauge("rc_archiver_run_duration_seconds", "Duration of the last run", registry=r)
        # The last run's work as gauges, for the dashboard's "per run" panels: the counters above add
        # up a daemon's runs but hold one run each in a textfile or a push, so neither rate() nor the
        # raw counter means the same thing in every deployment; these do.
        self.last_run_archived = Gauge(
            "rc_archiver_last_run_archived", "Recordings archived by the last run", registry=r
        )
        self.last_run_failed = Gauge(
            "rc_archiver_last_run_failed", "Recording attempts that failed in the last run", registry=r
        )
        self.last_run_bytes = Gauge(
            "rc_archiver_last_run_bytes", "Bytes archived by the last run", registry=r
        )
        self.last_run_rate_wait = Gauge(
            "rc_archiver_last_run_rate_limit_wait_seconds",
            "Wall seconds the last run's work was held by the rate budget: the scan's and the deletion's "
            "waits, and the downloads' divided by the workers sharing them; at most the run's duration",
            registry=r,
        )
        self.last_run_scan_failures = Gauge(
            "rc_archiver_last_run_scan_failures",
            "Call-log days the last run could not read (scanned again by the next run)",
            registry=r,
        )
        self.build_info = Gauge(
            "rc_archiver_build_info", "The running version (always 1)", ["version"], registry=r
        )
        self.build_info.labels(version=version).set(1)
        self.up = Gauge("rc_archiver_up", "1 unless the run that wrote these metrics failed", registry=r)
        self.up.set(1)

    def refresh(self, facts: StateFacts, now: datetime) -> None:
        """Set every state-derived gauge from the state's facts, as of `now`."""
        self._state.update(facts, now)

    def state_unread(self) -> None:
        """The state could not be read for this report: `rc_archiver_state_read` says 0."""
        self._state.unread()

    def record_run(self, summary: RunSummary) -> None:
        """Add one run's summary (archived, failed, lost, deleted, bytes, rate_limited,
        rate_wait_seconds, seconds) to the counters; its outcome and exit code, once the run has an
        outcome (lifecycle.conclude or the error that ended it), become the last run's."""
        self.archived.inc(summary.archived)
        self.failed.inc(summary.failed)
        self.lost.inc(summary.lost)
        self.deleted.inc(summary.deleted)
        self.bytes.inc(summary.bytes)
        self.rate_limited.inc(summary.rate_limited)
        self.rate_wait.inc(summary.rate_wait_seconds)
        self.last_run_rate_limited.set(summary.rate_limited)
        self.last_run_archived.set(summary.archived)
        self.last_run_failed.set(summary.failed)
        self.last_run_bytes.set(summary.bytes)
        self.last_run_rate_wait.set(summary.rate_wait_seconds)
        self.last_run_scan_failures.set(summary.days_unreadable)
        self.run_duration.set(summary.seconds)
        if summary.outcome:
            self._state.note_run(summary.outcome, summary.exit_code)

    def mark_failed(self) -> None:
        """The run these metrics describe failed (exit 2 and above): `rc_archiver_up` says 0."""
        self.up.set(0)

    def mark_up(self) -> None:
        self.up.set(1)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def write_textfile(self, path: Path) -> bool:
        """For node_exporter's textfile collector: mode 0644 whatever the umask, written to a
        temporary file beside it and renamed, so the collector never reads half a file."""
        try:
            _make_readable_folder(path.parent)
            fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(self.exposition())
                    os.fchmod(out.fileno(), 0o644)  # node_exporter runs as another user
                os.replace(temporary, path)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as exc:
            log.warning(
                "metrics_file_not_written",
                path=str(path),
                error=exc.strerror or str(exc),
                fix="make the folder writable by the archiver (systemd: ReadWritePaths=)",
            )
            return False
        return True

    def push(self, url: str, job: str, instance: str) -> bool:
        """Replace this job and instance's group on a Prometheus Pushgateway with these metrics."""
        try:
            push_to_gateway(
                url,
                job=job,
                registry=self.registry,
                grouping_key={"instance": instance},
                timeout=PUSH_TIMEOUT,
            )
        except OSError as exc:  # refused, unreachable, timed out, or an HTTP error (URLError is one)
            log.warning("metrics_push_failed", url=url, error=str(exc))
            return False
        return True

    def serve(self, address: str, health: Callable[[], str | None]) -> ThreadingHTTPServer:
        """/metrics and /healthz on host:port, in a background thread. `health` returns None when
        healthy, or the reason it is not (then /healthz answers 503 with it)."""
        host, _, port = address.rpartition(":")
        exposition = self.exposition

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                route = self.path.split("?")[0]
                if route == "/metrics":
                    body, status, kind = exposition(), 200, CONTENT_TYPE_LATEST
                elif route == "/healthz":
                    reason = health()
                    body = b"ok\n" if reason is None else f"unhealthy: {reason}\n".encode()
                    status, kind = (200 if reason is None else 503), "text/plain; charset=utf-8"
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server


def push_instance(settings: Settings) -> str:
    """The Pushgateway `instance` of this deployment: RC_ARCHIVER_METRICS_INSTANCE, or by default
    `rc-` and a hash of the client id and the destination. Stable across runs (a CronJob pod's host
    name is not) and different for two deployments that archive different accounts or to different
    places, so they never replace each other's group; it holds no secret and reveals neither."""
    if settings.metrics_instance:
        return settings.metrics_instance
    identity = f"{settings.client_id or ''}\n{settings.destination or ''}"
    return "rc-" + hashlib.sha256(identity.encode()).hexdigest()[:12]


def _make_readable_folder(folder: Path) -> None:
    if not folder.is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)  # created under UMask=0077 it would be 0700, closed to node_exporter
