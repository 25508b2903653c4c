"""`rc-archiver status` and the metrics' view of the state: what the state file knows, with the
recordings RingCentral will soon delete, those it already has (lost), and the backlog's forecast."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from archiver.archive.forecast import Forecast
from archiver.archive.run_pass import META_CONTENT_BUDGET, forecast_backlog
from archiver.metrics import PROGRESS_RUNS, StateFacts, last_progress
from archiver.models import format_time, parse_time
from archiver.settings import Settings, format_duration, log_notices
from archiver.state import RecordingRow, StateStore, lock_for

LISTED = 100  # rows of each list in the report by default (`status --limit N`; 0 lists them all)


def backlog_forecast(state: StateStore, settings: Settings, now: datetime) -> tuple[Forecast, str]:
    """The forecast at the budget the last run measured (the settings' Heavy rate before any run)."""
    budget = state.meta_json(META_CONTENT_BUDGET)
    if not (isinstance(budget, list) and len(budget) == 2):
        limit, window = settings.heavy_rate
        budget = [limit / window, window]
    return forecast_backlog(state, settings.max_attempts, (float(budget[0]), float(budget[1])), now)


def state_facts(state: StateStore, settings: Settings, now: datetime) -> StateFacts:
    """Everything the gauges say, from the state alone: right from a daemon's first scrape."""
    log_notices(settings)  # e.g. RC_ARCHIVER_RISK_DAYS, deprecated: once per process
    runs = state.last_runs(1)
    last = runs[0] if runs and runs[0]["ended_at"] else None
    result, _ = backlog_forecast(state, settings, now)
    facts = StateFacts(
        counts=state.counts(settings.max_attempts),
        last_success=state.last_success(),
        last_run_end=parse_time(last["ended_at"]) if last else None,
        last_run_outcome=last["outcome"] if last else None,
        last_run_exit_code=last["exit_code"] if last else None,
        oldest_pending=state.oldest_unarchived(),
        at_risk=state.count_at_risk(now + settings.risk_window),
        backlog=result.backlog,
        projected_loss=result.projected_loss,
        seconds_to_clear=result.seconds_to_clear,
        source_recordings_seen=state.held_at_source(now),
    )
    return last_progress(facts, state.last_runs(PROGRESS_RUNS))  # the daemon's first scrape has it too


def _listed(row: RecordingRow, now: datetime) -> dict[str, Any]:
    return {
        "recording_id": row.recording_id,
        "status": row.status,
        "attempts": row.attempts,
        "reason": row.last_error,
        "start_time": format_time(row.recording.start),
        "deadline": format_time(row.deadline),
        "age_days": round((now - row.recording.start).total_seconds() / 86400, 1),
        "days_left": round((row.deadline - now).total_seconds() / 86400, 1),
    }


def status_report(
    state: StateStore, settings: Settings, now: datetime, limit: int = LISTED
) -> dict[str, Any]:
    """The report, each list its first `limit` rows (0: all) and `totals` how many each has: a state of
    a million recordings reads a few hundred rows, not every lost or at-risk one."""
    log_notices(settings)
    most = limit or None
    counts = state.counts(settings.max_attempts)
    risk_before = now + settings.risk_window
    watermark = state.watermark()
    result, remedy = backlog_forecast(state, settings, now)
    live = lock_for(state.path).held_by_another()
    runs: list[dict[str, Any]] = []
    for run in state.last_runs():
        outcome = run["outcome"] or ("running" if live and not runs else "killed")
        runs.append(
            {**{k: run[k] for k in ("run_id", "started_at", "ended_at", "summary")}, "outcome": outcome}
        )
    return {
        "state_path": str(state.path),
        "watermark": format_time(watermark) if watermark else None,
        "counts": counts,
        "last_runs": runs,
        "failed": [_listed(r, now) for r in state.failed_rows(settings.max_attempts, most)],
        "exhausted": [_listed(r, now) for r in state.exhausted(settings.max_attempts, most)],
        "lost": [_listed(r, now) for r in state.lost_rows(most)],
        "risk_window": format_duration(settings.risk_window),
        "risk_window_seconds": settings.risk_window.total_seconds(),
        "at_risk": [_listed(r, now) for r in state.at_risk(risk_before, most)],
        "totals": {
            "failed": counts["failed"],
            "exhausted": counts["exhausted"],
            "lost": counts["lost"],
            "at_risk": state.count_at_risk(risk_before),
        },
        "limit": limit,
        "forecast": {k: v for k, v in result.as_dict().items() if k in _FORECAST_KEYS},
        "forecast_advice": remedy or None,
    }


_FORECAST_KEYS = ("backlog", "clears_at", "projected_loss", "first_loss_at")


def _rows(title: str, rows: list[dict[str, Any]], total: int, line: str) -> list[str]:
    out = ["", f"{title} ({total})"]
    out += [line.format(**row) for row in rows]
    if total > len(rows):
        out.append(f"  ... and {total - len(rows):,} more (status --limit 0 lists them all)")
    return out


def render(report: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(report, indent=2, sort_keys=True)
    counts, forecast = report["counts"], report["forecast"]
    lines = [
        f"state file   {report['state_path']}",
        f"watermark    {report['watermark'] or '(none yet)'}",
        f"recordings   {counts['archived']} archived ({counts['deleted']} deleted at the source, "
        f"{counts['unproven']} unproven: adopted or migrated, downloaded again before any deletion), "
        f"{counts['pending']} pending, {counts['failed']} failed, {counts['exhausted']} exhausted, "
        f"{counts['lost']} lost",
        f"forecast     backlog {forecast['backlog']}, clears at {forecast['clears_at']}, "
        f"projected loss {forecast['projected_loss']}"
        + (f" (first at {forecast['first_loss_at']})" if forecast["first_loss_at"] else ""),
    ]
    if report["forecast_advice"]:
        lines.append(f"             to prevent it: {report['forecast_advice']}")
    lines += ["", "last runs"]
    for run in report["last_runs"]:
        summary = run["summary"] or {}
        lines.append(
            f"  {run['run_id']:<34} {run['outcome']:<12} archived {summary.get('archived', '-')}, "
            f"failed {summary.get('failed', '-')}, remaining {summary.get('remaining', '-')}"
        )
    item = "  {recording_id:<16} attempts {attempts:<3} {start_time}  {reason}"
    totals = report["totals"]
    lines += _rows("failed", report["failed"], totals["failed"], item)
    exhausted = "exhausted: retried every RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL"
    lines += _rows(exhausted, report["exhausted"], totals["exhausted"], item)
    lines += _rows(
        "LOST: deleted by RingCentral before they were archived", report["lost"], totals["lost"], item
    )
    lines += _rows(
        f"at risk: not archived, and RingCentral deletes them within {report['risk_window']} "
        "(RC_ARCHIVER_RISK_WINDOW)",
        report["at_risk"],
        totals["at_risk"],
        "  {recording_id:<16} {status:<8} {days_left:>6} days left, deleted by RingCentral after {deadline}",
    )
    return "\n".join(lines)
