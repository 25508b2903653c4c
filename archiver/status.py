"""`rc-archiver status`: what the state file knows, with the recordings RingCentral will soon delete."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.errors import StateError
from archiver.models import format_time, parse_time
from archiver.state import StateStore

RETENTION_DAYS = 90  # RingCentral deletes recordings after 90 days


def open_for_reading(path: Path) -> StateStore:
    """The state without taking the run lock (SQLite WAL lets a reader in beside a running writer)."""
    if not path.exists():
        raise StateError(
            f"no state file at {path}: no run has used it yet",
            hint="check RC_ARCHIVER_STATE_PATH, or run `rc-archiver run` first",
        )
    return StateStore(path)


def status_report(state: StateStore, risk_days: int, now: datetime) -> dict[str, Any]:
    watermark = state.watermark()
    failed = [
        {
            "recording_id": r.recording_id,
            "attempts": r.attempts,
            "reason": r.last_error,
            "start_time": r.start_time,
        }
        for r in state.failed_rows()
    ]
    at_risk = []
    for row in state.at_risk(now - timedelta(days=risk_days)):
        started = parse_time(row.start_time)
        at_risk.append(
            {
                "recording_id": row.recording_id,
                "status": row.status,
                "start_time": row.start_time,
                "age_days": round((now - started).total_seconds() / 86400, 1),
                "deleted_by_ringcentral_after": format_time(started + timedelta(days=RETENTION_DAYS)),
                "reason": row.last_error,
            }
        )
    return {
        "state_path": str(state.path),
        "watermark": format_time(watermark) if watermark else None,
        "counts": state.counts(),
        "last_runs": [
            {k: run[k] for k in ("run_id", "started_at", "ended_at", "outcome", "summary")}
            for run in state.last_runs()
        ],
        "failed": failed,
        "risk_days": risk_days,
        "at_risk": at_risk,
    }


def render(report: dict[str, Any], as_json: bool) -> str:
    if as_json:
        return json.dumps(report, indent=2, sort_keys=True)
    counts = report["counts"]
    lines = [
        f"state file   {report['state_path']}",
        f"watermark    {report['watermark'] or '(none yet)'}",
        f"recordings   {counts['archived']} archived, {counts['pending']} pending, {counts['failed']} failed",
        "",
        "last runs",
    ]
    for run in report["last_runs"]:
        summary = run["summary"] or {}
        lines.append(
            f"  {run['run_id']:<34} {run['outcome'] or 'running/killed':<14} "
            f"archived {summary.get('archived', '-')}, failed {summary.get('failed', '-')}, "
            f"pending {summary.get('pending', '-')}"
        )
    lines += ["", f"failed ({len(report['failed'])})"]
    lines += [
        f"  {f['recording_id']:<16} attempts {f['attempts']:<3} {f['start_time']}  {f['reason']}"
        for f in report["failed"][:50]
    ]
    lines += [
        "",
        f"at risk: not archived and older than {report['risk_days']} days ({len(report['at_risk'])})",
    ]
    lines += [
        f"  {r['recording_id']:<16} {r['status']:<8} {r['age_days']:>5} days old, "
        f"deleted by RingCentral after {r['deleted_by_ringcentral_after']}"
        for r in report["at_risk"][:50]
    ]
    return "\n".join(lines)
