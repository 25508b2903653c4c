"""A pass's progress: a `progress` event every interval off a terminal, a bar (tqdm) on one.

It reads numbers through a callable and owns nothing of the pass. The ETA comes from the rate budget:
each remaining recording (and each day still to scan) costs one Heavy request, and the budget, not the
machine, is what bounds a RingCentral archive. On a terminal, log lines are written above the bar
(logs.set_console_writer), so the bar stays at the bottom.
"""

from __future__ import annotations

import contextvars
import math
import threading
import time
from collections.abc import Callable
from typing import IO, Any

import structlog
from tqdm import tqdm

from archiver.archive.tally import Progress

log = structlog.get_logger(__name__)


class ProgressReporter:
    def __init__(
        self,
        numbers: Callable[[], Progress],
        days_total: int,
        interval: float,
        budget_per_second: float,
        bar_stream: IO[str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._numbers = numbers
        self._interval = interval
        self._budget = budget_per_second
        self._clock = clock
        self._started = clock()
        self._stream = bar_stream
        self.days_total = days_total
        self.days_done = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="progress", daemon=True)
        self._bar: tqdm[Any] | None = None

    def day_done(self) -> None:
        self.days_done += 1

    def start(self) -> None:
        if self._stream is not None:
            from archiver.logs import set_console_writer

            self._bar = tqdm(total=0, file=self._stream, unit="rec", dynamic_ncols=True, leave=True)
            set_console_writer(lambda line: tqdm.write(line.rstrip("\n"), file=self._stream))
        if self._interval > 0:
            # In a copy of this context, so every progress event carries the run's bound run_id.
            context = contextvars.copy_context()
            self._thread = threading.Thread(
                target=context.run, args=(self._loop,), name="progress", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._bar is not None:
            from archiver.logs import set_console_writer

            self.report()
            self._bar.close()
            set_console_writer(None)

    def _loop(self) -> None:
        interval = min(self._interval, 1.0) if self._bar is not None else self._interval
        while not self._stop.wait(interval):
            self.report()

    def numbers(self) -> dict[str, Any]:
        progress = self._numbers()
        elapsed = max(1e-6, self._clock() - self._started)
        remaining = max(0, progress.total - progress.done) + (self.days_total - self.days_done)
        return {
            "done": progress.done,
            "total": progress.total,
            "bytes": progress.bytes,
            "rate": round(progress.done / elapsed, 2),
            "eta_seconds": math.ceil(remaining / self._budget) if self._budget > 0 else None,
            "days_scanned": self.days_done,
            "days_total": self.days_total,
        }

    def report(self) -> None:
        numbers = self.numbers()
        if self._bar is None:
            log.info("progress", **numbers)
            return
        self._bar.total = max(numbers["total"], numbers["done"])
        self._bar.n = numbers["done"]
        self._bar.set_postfix_str(
            f"{numbers['bytes'] / 1e6:.1f} MB, days {numbers['days_scanned']}/{numbers['days_total']}",
            refresh=False,
        )
        self._bar.refresh()
