"""Will tonight's backlog beat RingCentral's deletion cliff? A pure function of the backlog's deadlines
(in archive order: earliest first), the time and the pace the archiver can keep.

Each recording costs one Heavy request; the pace is the Heavy budget RingCentral reports (limit per
window), or the downloads' own measured pace when that is slower. Walking the backlog in deadline
order, a recording whose turn would come after its deadline is projected lost and costs nothing (the
archiver does not spend budget on it before the live ones), so the projection is what the pass will do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from archiver.models import format_time


@dataclass(frozen=True)
class Forecast:
    backlog: int
    clears_at: datetime
    projected_loss: int
    first_loss_at: datetime | None
    per_second: float
    seconds_to_clear: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "clears_at": format_time(self.clears_at),
            "projected_loss": self.projected_loss,
            "first_loss_at": format_time(self.first_loss_at) if self.first_loss_at else None,
            "seconds_to_clear": round(self.seconds_to_clear, 1),
            "per_minute": round(self.per_second * 60, 2),
        }


def forecast(deadlines: Iterable[datetime], now: datetime, per_second: float) -> Forecast:
    """Project the pass: when the backlog clears, how many recordings reach their deadline first."""
    step = 1.0 / per_second if per_second > 0 else math.inf
    elapsed = 0.0
    backlog = lost = 0
    first_loss: datetime | None = None
    for deadline in deadlines:
        backlog += 1
        turn = elapsed + step
        # In seconds, not datetimes: a turn that never comes (no budget) is lost, not an overflow.
        if turn > (deadline - now).total_seconds():
            lost += 1
            first_loss = deadline if first_loss is None else min(first_loss, deadline)
            continue
        elapsed = turn  # never past the latest deadline, so always a datetime
    clears = now + timedelta(seconds=elapsed)
    return Forecast(backlog, clears, lost, first_loss, per_second, elapsed)


def pace_needed(deadlines: list[datetime], now: datetime, current: float) -> float | None:
    """The smallest pace (requests a second) at which nothing still savable is lost, or None when even
    an unlimited pace cannot save them (their deadline has passed)."""
    savable = [d for d in deadlines if d > now]
    if not savable or forecast(savable, now, current).projected_loss == 0:
        return None
    # Some finite pace always saves them (each deadline is ahead); from no budget at all, start at
    # one request a day.
    low = max(current, 0.0)
    high = low * 2 if low > 0 else 1 / 86400
    while forecast(savable, now, high).projected_loss > 0:
        high *= 2
        if high > 1e9:
            return None
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if forecast(savable, now, middle).projected_loss > 0 else (low, middle)
    return high


def advice(result: Forecast, needed: float | None, window: float) -> str:
    """What would prevent a projected loss, and by how much."""
    if result.projected_loss == 0:
        return ""
    parts = []
    if needed is not None:
        limit = math.ceil(round(needed * window, 6))  # the bisection ends a hair above the need
        current = result.per_second * window
        parts.append(
            f"ask RingCentral to raise the app's Heavy limit from {current:.0f} to at least {limit} per "
            f"{window:.0f} s (it saves every recording that can still be saved)"
        )
    parts.append(
        "delete archived recordings at the source (RC_ARCHIVER_DELETE_FROM_SOURCE) to stay under the cap"
    )
    parts.append("widen the schedule so runs are not cut short, and start a backfill early")
    return "; ".join(parts)
