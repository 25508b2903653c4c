"""Cron expressions, parsed in one place: the 5 fields operators write (`0 2 * * *`), or 6 with a
leading field of seconds (`*/10 * * * * *`), which the tests use to fire every few seconds.

APScheduler 3's own crontab reading is kept field for field (its day-of-week counts from Monday=0, as
`from_crontab` does); only the seconds field is added.
"""

from __future__ import annotations

from datetime import tzinfo

from apscheduler.triggers.cron import CronTrigger


def parse_cron(expression: str, tz: tzinfo | None = None) -> CronTrigger:
    """The trigger for `expression`; ValueError naming what is wrong."""
    fields = expression.split()
    if len(fields) == 6:
        second, minute, hour, day, month, day_of_week = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            timezone=tz,
        )
    if len(fields) != 5:
        raise ValueError(f"{len(fields)} fields: a cron expression has 5 (or 6, seconds first)")
    return CronTrigger.from_crontab(expression, timezone=tz)
