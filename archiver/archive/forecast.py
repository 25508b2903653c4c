"""Will tonight's backlog beat RingCentral's deletion cliff? A pure function of the backlog's deadlines
(in archive order: earliest first), the time and the pace the archiver can keep.

Each recording costs one Heavy request; the pace is the Heavy budget RingCentral reports (limit per
window), or the downloads' own measured pace when that is slower. Walking the backlog in deadline
order, a recording whose turn would come after its deadline is projected lost and costs nothing (the
archiver does not spend budget on it before the live ones), so the projection is what the pass will do.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
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


# The backlog as a histogram: (deadline, how many recordings have it), earliest first. The state
# hands it out by the minute (each bucket at its earliest deadline: a projection at most a minute
# pessimistic), so memory and time follow the minutes a backlog spans, not its million rows.
Histogram = Sequence[tuple[datetime, int]]
_EPSILON = 1e-9  # a turn a float's hair past its deadline is on time (n turns are added at once)


def forecast(deadlines: Iterable[datetime], now: datetime, per_second: float) -> Forecast:
    """Project the pass: when the backlog clears, how many recordings reach their deadline first."""
    return forecast_histogram([(deadline, 1) for deadline in deadlines], now, per_second)


def forecast_histogram(backlog: Histogram, now: datetime, per_second: float) -> Forecast:
    """forecast() over a histogram: each bucket's recordings take their turns until its deadline."""
    step = 1.0 / per_second if per_second > 0 else math.inf
    elapsed = 0.0
    total = lost = 0
    first_loss: datetime | None = None
    for deadline, count in backlog:
        total += count
        # In seconds, not datetimes: a turn that never comes (no budget) is lost, not an overflow.
        room = (deadline - now).total_seconds() - elapsed
        in_time = 0 if room < 0 or step == math.inf else min(count, math.floor(room / step + _EPSILON))
        if in_time < count:
            lost += count - in_time
            first_loss = deadline if first_loss is None else min(first_loss, deadline)
        if in_time:  # (0 turns of an infinite step cost nothing)
            elapsed += in_time * step  # never past the latest deadline, so always a datetime
    clears = now + timedelta(seconds=elapsed)
    return Forecast(total, clears, lost, first_loss, per_second, elapsed)


def pace_needed(deadlines: list[datetime], now: datetime, current: float) -> float | None:
    """pace_needed_histogram() of a list of deadlines."""
    return pace_needed_histogram([(deadline, 1) for deadline in deadlines], now, current)


def pace_needed_histogram(backlog: Histogram, now: datetime, current: float) -> float | None:
    """The smallest pace (requests a second) at which nothing still savable is lost, or None when even
    an unlimited pace cannot save them (their deadline has passed). In one pass, no search: nothing
    is lost when the k-th savable recording's turn, k / pace, comes by its deadline, for every k."""
    savable = [(deadline, count) for deadline, count in backlog if deadline > now]
    if not savable or forecast_histogram(savable, now, current).projected_loss == 0:
        return None
    queued, needed = 0, 0.0
    for deadline, count in savable:
        queued += count
        needed = max(needed, queued / (deadline - now).total_seconds())
    needed *= 1 + _EPSILON  # a hair above, as the turns are float sums
    return needed if needed <= 1e9 else None


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
