"""What a pass works with: one frozen context of its collaborators and settings, built in one place
(wiring.pass_services; tests build one by keyword) and passed whole.

A run, a dry run (plan.py) and `verify` each receive one::

    ctx = PassContext(settings=settings, client=client, destination=destination, state=state,
                      spool=spool, cancel=cancel)
    run_pass(ctx, run_id=run_id, window=window)

What belongs to one run only (its id, its manifest writer, its outage breaker) is made by the pass
and handed on by keyword where it is needed (scan_window, RecordingArchiver, delete_proven).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from archiver.archive.layout import Layout
from archiver.destinations.base import Destination
from archiver.ringcentral.client import RingCentralClient
from archiver.settings import Settings
from archiver.state import StateStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class PassContext:
    """The collaborators of a pass and the settings that say how it works; `layout` follows from the
    settings (RC_ARCHIVER_KEY_TEMPLATE in RC_ARCHIVER_TIMEZONE)."""

    settings: Settings
    client: RingCentralClient
    destination: Destination
    state: StateStore
    spool: Path  # this state's own spool folder (wiring.spool_folder), emptied before the pass
    cancel: threading.Event = field(default_factory=threading.Event)  # set: the pass stops taking work
    now: Callable[[], datetime] = utc_now
    layout: Layout = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A derived field of a frozen dataclass: set once, here, so no caller builds a second Layout.
        object.__setattr__(self, "layout", Layout(self.settings.key_template, self.settings.tz))
