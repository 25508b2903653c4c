"""Tell a failing world from a failing recording.

A failure that is not about one recording (RingCentral unreachable or answering 5xx after every
retry, the destination failing, the spool disk full) is never charged to the recording: it counts
here. After THRESHOLD consecutive such failures with no success in between, the breaker trips: the
run stops taking work, lets what is in flight finish or abandon, and ends with the world's error
(exit 6 for RingCentral, 4 for the destination or the spool), naming the cause and the fix.
"""

from __future__ import annotations

import threading

import structlog

from archiver.errors import (
    REFUSED_BY_DESTINATION,
    ArchiverError,
    DestinationError,
    RingCentralUnavailable,
    SpoolError,
)

log = structlog.get_logger(__name__)
THRESHOLD = 3  # each failure has already been retried with backoff (about a minute for RingCentral)
RINGCENTRAL, DESTINATION, SPOOL = "ringcentral", "destination", "spool"


def _error_for(world: str, reason: str) -> ArchiverError:
    if world == RINGCENTRAL:
        return RingCentralUnavailable(
            f"RingCentral is unreachable or failing ({reason})",
            hint="check the network and RingCentral's status page; no recording was charged an attempt, "
            "the next run carries on",
        )
    if world == SPOOL:
        return SpoolError(
            f"the spool folder cannot be written ({reason})",
            hint="free space in RC_ARCHIVER_SPOOL_DIR or point it at a larger, writable disk",
        )
    if REFUSED_BY_DESTINATION in reason:  # it answered: reachable, and refusing (a 5xx, throttling)
        return DestinationError(
            f"the destination keeps failing requests: {reason}",
            hint="the server is reachable and answered with errors: see its status and log, and check "
            "that it supports the S3 options set (RC_ARCHIVER_S3_SSE, RC_ARCHIVER_S3_STORAGE_CLASS, "
            "RC_ARCHIVER_S3_TAGS, Object Lock); no recording was charged an attempt",
        )
    return DestinationError(
        f"the destination is failing ({reason})",
        hint="check the bucket or folder, the network and the disk; no recording was charged an attempt",
    )


class OutageBreaker:
    def __init__(self, cancel: threading.Event, threshold: int = THRESHOLD) -> None:
        self._cancel = cancel
        self._threshold = threshold
        self._lock = threading.Lock()
        # Counted per world: downloads that succeed say nothing about a destination that keeps failing.
        self._consecutive: dict[str, int] = {}
        self.tripped: ArchiverError | None = None

    def success(self, world: str | None = None) -> None:
        """`world` answered (every world, when None): its count of consecutive failures starts over."""
        with self._lock:
            if world is None:
                self._consecutive.clear()
            else:
                self._consecutive.pop(world, None)

    def failure(self, world: str, reason: str) -> None:
        with self._lock:
            self._consecutive[world] = self._consecutive.get(world, 0) + 1
            if self._consecutive[world] < self._threshold or self.tripped is not None:
                return
            self.tripped = _error_for(world, reason)
        log.warning("outage_detected", world=world, reason=reason, consecutive=self._threshold)
        self._cancel.set()

    def stop_with(self, error: ArchiverError) -> None:
        """A failure no retry can fix (a missing bucket, a missing permission): stop at once."""
        with self._lock:
            if self.tripped is None:
                self.tripped = error
        self._cancel.set()
