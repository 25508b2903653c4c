"""Two thread pools joined by a bounded number of slots: the first stage of a job (a download, bound
by RingCentral's rate budget) hands the second (an upload, bound by the destination) a continuation,
so a slow upload never holds up the rate budget, and the slots bound what lies in between (spool
files on disk). It knows nothing of recordings: a job is a callable that returns a result or a
`Then` to run in the second pool.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Then(Generic[T]):
    """The second stage of a job; `cleanup` runs after it whatever happens (removes the spool file)."""

    run: Callable[[], T]
    cleanup: Callable[[], None]


class TwoStagePool(Generic[T]):
    def __init__(
        self,
        first_workers: int,
        second_workers: int,
        slots: int,
        cancel: threading.Event,
        on_result: Callable[[T], None],
        queue_limit: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first = ThreadPoolExecutor(first_workers, thread_name_prefix="download")
        self._second = ThreadPoolExecutor(second_workers, thread_name_prefix="upload")
        self._slots = threading.BoundedSemaphore(slots)
        self._cancel = cancel
        self._on_result = on_result
        # Bound the work queued ahead of the first stage: memory, and a quick stop.
        self._queue_limit = queue_limit or first_workers * 4
        self._clock = clock
        self._idle = threading.Condition()
        self._active = 0

    def submit(self, job: Callable[[], T | Then[T]]) -> bool:
        """Queue a job (blocking while the queue is full); False when the run is stopping."""
        with self._idle:
            while self._active >= self._queue_limit and not self._cancel.is_set():
                self._idle.wait(0.5)
            if self._cancel.is_set():
                return False
            self._active += 1
        # Each job runs in a copy of the submitter's context, so bound log values (run_id) follow it.
        self._first.submit(contextvars.copy_context().run, self._run_first, job)
        return True

    def _acquire_slot(self) -> bool:
        while not self._slots.acquire(timeout=0.5):
            if self._cancel.is_set():
                return False
        return True

    def _run_first(self, job: Callable[[], T | Then[T]]) -> None:
        handed_off = False
        try:
            if self._cancel.is_set() or not self._acquire_slot():
                return
            try:
                result = job()
            except BaseException:
                self._slots.release()
                raise
            if isinstance(result, Then):
                self._second.submit(contextvars.copy_context().run, self._run_second, result)
                handed_off = True
            else:
                self._slots.release()
                self._on_result(result)
        except Exception:  # a job reports its own failures; this is a bug, never a lost recording
            log.exception("job_crashed")
        finally:
            if not handed_off:
                self._done()

    def _run_second(self, then: Then[T]) -> None:
        try:
            result = then.run()
            self._on_result(result)
        except Exception:
            log.exception("job_crashed")
        finally:
            try:
                then.cleanup()
            except Exception:  # a spool file that cannot be removed must not pin the job forever
                log.exception("cleanup_failed")
            finally:
                self._slots.release()
                self._done()

    def _done(self) -> None:
        with self._idle:
            self._active -= 1
            self._idle.notify_all()

    @property
    def active(self) -> int:
        with self._idle:
            return self._active

    def drain(self, stop_timeout: float) -> bool:
        """Wait for every job; once stopping, at most stop_timeout more. False if work was abandoned."""
        deadline: float | None = None
        with self._idle:
            while self._active > 0:
                if self._cancel.is_set() and deadline is None:
                    deadline = self._clock() + stop_timeout
                    log.info("stopping", in_flight=self._active, timeout=stop_timeout)
                if deadline is not None and self._clock() >= deadline:
                    return False
                self._idle.wait(0.2)
        return True

    def close(self) -> None:
        self._first.shutdown(wait=False, cancel_futures=True)
        self._second.shutdown(wait=False, cancel_futures=True)
