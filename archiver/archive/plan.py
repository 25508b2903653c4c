"""`run --dry-run`: what a run would archive and delete, and the forecast. Downloads and writes nothing;
the state gains only the recordings seen in the call log (the scan cache), never a window, watermark,
run or result."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from archiver.archive.breaker import OutageBreaker
from archiver.archive.context import PassContext
from archiver.archive.deletion import delete_proven
from archiver.archive.forecast import Forecast
from archiver.archive.manifest import ManifestWriter
from archiver.archive.run_pass import content_pace, forecast_backlog
from archiver.archive.scan import scan_window
from archiver.windows import day_slices


@dataclass(frozen=True)
class Planned:
    recording_id: str
    key: str
    start: datetime
    deadline: datetime


@dataclass(frozen=True)
class Plan:
    would_archive: int
    would_delete: list[str]
    would_reprove: int  # adopted or migrated rows a run would download again before deleting them
    forecast: Forecast
    advice: str
    days_unreadable: int


def plan_pass(
    ctx: PassContext, *, window: tuple[datetime, datetime], emit: Callable[[Planned], None]
) -> Plan:
    """Scan into the scan cache, then emit each recording a run would archive, in the run's order."""
    settings, state, layout = ctx.settings, ctx.state, ctx.layout
    run_id = f"dry-run-{ctx.now():%Y%m%dT%H%M%S}"
    scan = scan_window(
        day_slices(*window, settings.tz),
        client=ctx.client,
        state=state,
        run_id=run_id,
        retention=settings.source_retention,
        cancel=ctx.cancel,
        # Its own stop event: a failing day is counted (days_unreadable), never a reason to stop the plan.
        breaker=OutageBreaker(threading.Event()),
        mark_done=False,
    )
    count = 0
    for row in state.due(settings.max_attempts, ctx.now()):
        if ctx.cancel.is_set():
            break
        if not row.force_upload and layout.find_stored(ctx.destination, row.recording) is not None:
            continue
        count += 1
        key = layout.candidate_keys(row.recording)[0]
        emit(Planned(row.recording_id, key, row.recording.start, row.deadline))
    would_delete: list[str] = []
    would_reprove = 0
    if settings.delete_from_source:
        # Verification reads objects back but writes nothing; the manifest writer is never flushed.
        manifest = ManifestWriter(ctx.destination, state, layout, run_id)
        result = delete_proven(ctx, run_id=run_id, manifest=manifest, dry_run=True)
        would_delete, would_reprove = result.would_delete, result.would_reprove
    forecast, advice = forecast_backlog(state, settings.max_attempts, content_pace(ctx.client), ctx.now())
    return Plan(count, would_delete, would_reprove, forecast, advice, scan.days_unreadable)


def render_planned(item: Planned) -> str:
    """One line of the dry run, printed as the plan is made."""
    return f"would archive {item.recording_id}  {item.start:%Y-%m-%d %H:%M}  -> {item.key}"


def render_plan(plan: Plan, delete_from_source: bool) -> str:
    """The dry run's closing report: deletions, totals, re-proofs and the forecast."""
    lines = [f"would delete at the source {recording_id}" for recording_id in plan.would_delete]
    lines.append(
        f"{plan.would_archive} recording(s) would be archived; sizes are unknown until download "
        "(the call log does not carry them); nothing was downloaded or written"
    )
    if delete_from_source:
        lines.append(
            f"{len(plan.would_delete)} recording(s) would be deleted at RingCentral after verification"
        )
        if plan.would_reprove:
            lines.append(
                f"{plan.would_reprove} archived recording(s) adopted from the destination or migrated would "
                "first be downloaded again to re-prove their sha256 (one Heavy request each)"
            )
    forecast = plan.forecast.as_dict()
    lines.append(
        f"forecast: backlog {forecast['backlog']}, clears at {forecast['clears_at']}, "
        f"projected loss {forecast['projected_loss']}"
        + (f", first loss at {forecast['first_loss_at']}" if forecast["first_loss_at"] else "")
    )
    if plan.advice:
        lines.append(f"to prevent the loss: {plan.advice}")
    return "\n".join(lines)
