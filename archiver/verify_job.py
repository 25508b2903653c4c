"""The daemon's scheduled verify (RC_ARCHIVER_VERIFY_SCHEDULE) and the gauges that export its result.

It is `rc-archiver verify --manifests --sample RC_ARCHIVER_VERIFY_SAMPLE` over the same default range
(the last 90 days, and every recording deleted at the source), without --repair: the daemon reports,
the operator repairs (the runbook says how). Without this, objects deleted or damaged in the bucket
were noticed only when someone thought of running verify.

The gauges exist only once a verify has finished, so a daemon that never verified shows no
"0 problems"; `rc_archiver_verify_interval_seconds` and `rc_archiver_verify_scheduled_timestamp_seconds`
let RcArchiverVerifyStale tell "never verified since the daemon started" from "verified lately".
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.triggers.cron import CronTrigger
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from archiver.cron import parse_cron
from archiver.errors import ArchiverError, event_name
from archiver.lifecycle import new_run_id
from archiver.logs import bind
from archiver.settings import Settings
from archiver.verify import VerifyResult, verify
from archiver.windows import plan_window, verify_until
from archiver.wiring import pass_services

log = structlog.get_logger(__name__)
JOB_ID = "verify"
RANGE = timedelta(days=90)  # `rc-archiver verify`'s default range
KINDS = ("missing", "corrupt", "unlisted", "only_copy", "chain", "unreadable")


def problems_by_kind(result: VerifyResult) -> dict[str, int]:
    """The verify's findings, one count per kind (`unreadable`: call-log days it could not read, so
    the recordings of those days went unchecked)."""
    return {
        "missing": len(result.missing),
        "corrupt": len(result.corrupt),
        "unlisted": len(result.unlisted) + len(result.deletions_unlisted),
        "only_copy": len(result.only_copy),
        "chain": len(result.chain_breaks),
        "unreadable": result.scan_errors,
    }


@dataclass(frozen=True)
class _Finished:
    at: datetime
    checked: int
    problems: dict[str, int]


class VerifyGauges(Collector):
    """Thread-safe: set by the verify job, read by /metrics."""

    def __init__(self, interval: float | None, scheduled_at: datetime) -> None:
        self._lock = threading.Lock()
        self._interval = interval
        self._scheduled_at = scheduled_at
        self._last: _Finished | None = None

    def record(self, result: VerifyResult, at: datetime) -> None:
        with self._lock:
            self._last = _Finished(at, result.checked, problems_by_kind(result))

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            last, interval = self._last, self._interval
        if interval is not None:
            yield GaugeMetricFamily(
                "rc_archiver_verify_interval_seconds",
                "Time between two scheduled verifies (RC_ARCHIVER_VERIFY_SCHEDULE)",
                value=interval,
            )
            yield GaugeMetricFamily(
                "rc_archiver_verify_scheduled_timestamp_seconds",
                "When this daemon began scheduling verifies (its start)",
                value=self._scheduled_at.timestamp(),
            )
        if last is None:
            return
        yield GaugeMetricFamily(
            "rc_archiver_last_verify_timestamp_seconds",
            "End of the last verify that finished checking (absent: none since the daemon started)",
            value=last.at.timestamp(),
        )
        yield GaugeMetricFamily(
            "rc_archiver_verify_checked_recordings",
            "Recordings the last verify checked",
            value=last.checked,
        )
        family = GaugeMetricFamily(
            "rc_archiver_verify_problems",
            "Problems the last verify found, by kind: missing, corrupt, unlisted (in no manifest), "
            "only_copy (damaged and gone at the source), chain (manifest chain breaks), unreadable "
            "(call-log days it could not read)",
            labels=["kind"],
        )
        for kind in KINDS:
            family.add_metric([kind], last.problems[kind])
        yield family


def schedule_interval(trigger: CronTrigger, now: datetime) -> float:
    """Seconds between the schedule's next two fire times: its period, for the staleness alert (a
    schedule with uneven gaps, e.g. `0 12 * * 1,4`, gives the gap after the next fire)."""
    first = trigger.get_next_fire_time(None, now)
    second = trigger.get_next_fire_time(first, first) if first is not None else None
    if first is None or second is None:
        return 0.0
    return float((second - first).total_seconds())


def register(registry: CollectorRegistry, settings: Settings, now: datetime) -> VerifyGauges:
    interval = None
    if settings.verify_schedule:
        interval = schedule_interval(parse_cron(settings.verify_schedule, settings.tz), now)
    gauges = VerifyGauges(interval, now)
    registry.register(gauges)
    return gauges


EXAMPLES = 10  # per kind in verify_summary: enough to start looking, bounded on a badly damaged archive


def _examples(result: VerifyResult) -> dict[str, list[str]]:
    """The first few recordings of each kind, "id: why", so an operator (and a test) can look."""
    found = {
        "missing": [f"{rid}: {why}" for rid, why in result.missing[:EXAMPLES]],
        "corrupt": [f"{rid}: {why}" for rid, why in result.corrupt[:EXAMPLES]],
        "only_copy": [f"{rid}: {why}" for rid, why in result.only_copy[:EXAMPLES]],
        "unlisted": result.unlisted[:EXAMPLES] + result.deletions_unlisted[:EXAMPLES],
        "chain": result.chain_breaks[:EXAMPLES],
    }
    return {kind: lines for kind, lines in found.items() if lines}


def run_verify(settings: Settings, cancel: threading.Event, gauges: VerifyGauges) -> VerifyResult | None:
    """One scheduled verify, logged as `verify_started` and `verify_summary` (or `verify_failed`)
    under a run_id of its own; None when it could not run (the state lock held by a one-shot run,
    the login refused, the destination unreachable): the gauges keep the last result, and
    RcArchiverVerifyStale notices if that lasts."""
    bind(run_id="verify-" + new_run_id())
    try:
        if cancel.is_set():  # queued behind a run when the daemon was asked to stop
            return None
        now = datetime.now(UTC)
        log.info("verify_started", sample_percent=settings.verify_sample, manifests=True)
        with pass_services(settings, 0.0, cancel) as services:
            until = verify_until(now, services.state.watermark(), settings.settle_delay)
            window = plan_window(now, None, now - RANGE, until, settings.lookback, settings.settle_delay)
            result = verify(
                services,
                window,
                settings.verify_sample,
                repair=False,
                manifests=True,
                cancel=cancel,
            )
        if cancel.is_set():  # stopped part-way: a partial count is no verify result
            log.info("verify_stopped", checked=result.checked)
            return None
        gauges.record(result, datetime.now(UTC))
        problems = problems_by_kind(result)
        event = log.info if result.ok else log.error
        event(
            "verify_summary",
            ok=result.ok,
            checked=result.checked,
            rehashed=result.rehashed,
            lost=result.lost,
            late=result.late,
            manifests=result.manifests,
            problems=problems,
            examples=_examples(result),
            fix=None
            if result.ok
            else "run `rc-archiver verify --manifests --repair` (deploy/README.md, RcArchiverVerifyProblems)",
        )
        return result
    except ArchiverError as exc:
        log.error("verify_failed", reason=event_name(exc), error=str(exc), fix=exc.hint or None)
        return None
    finally:
        structlog.contextvars.unbind_contextvars("run_id")
