"""Items gathered as a run goes and written to the destination in parts: every `batch` items or
`interval` seconds, and at close. The manifest (archive/manifest.py) and the archive's index
(index_files.py) are written this way, so a killed run has written all but its last few items, and the
state says which are still owed (the next run writes those)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class PartWriter(Generic[Item]):
    """Thread-safe: the recordings' workers add items side by side."""

    def __init__(self, batch: int, interval: float, clock: Callable[[], float]) -> None:
        self._batch = batch
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: list[Item] = []
        self._part = 0  # parts written by this run
        self._last_flush = clock()
        self.written = 0  # items written

    def add(self, item: Item) -> None:
        with self._lock:
            self._pending.append(item)
            if len(self._pending) >= self._batch or self._clock() - self._last_flush >= self._interval:
                self._flush_locked()

    def flush(self) -> bool:
        """Write what was added so far now; False when some of it is still owed (the destination
        refused a part: it is tried again at the next flush)."""
        with self._lock:
            self._flush_locked()
            return not self._pending

    def close(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        self._last_flush = self._clock()
        if self._pending:
            self._pending = self._write(self._pending)

    def _write(self, items: list[Item]) -> list[Item]:
        """Write `items` as one or more parts; return those to keep for the next flush."""
        raise NotImplementedError
