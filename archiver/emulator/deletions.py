"""Which recordings RingCentral no longer has: aged out at call start + retention, or deleted by the API.

Deleting a recording removes its file only; the call log keeps listing the record (the public spec's
deleteCompanyCallRecordings: "deletes the recording file itself, not the record of it in the call log").
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from archiver.emulator.data import CallLogData


class Deletions:
    def __init__(self, data: CallLogData, retention: float | None) -> None:
        self._retention = retention
        # A recording's clock starts with the earliest call that carries it (an internal call is
        # logged twice with one recording; both records have the same start).
        self._starts = {
            rec_id: min(call.start for call in calls) for rec_id, calls in data.calls_by_recording.items()
        }
        self._lock = threading.Lock()
        self._by_api: dict[str, float] = {}

    def deadline(self, recording_id: str) -> float | None:
        """When retention deletes the recording (None: kept for ever)."""
        if self._retention is None:
            return None
        return self._starts[recording_id] + self._retention

    def deleted_at(self, recording_id: str, now: float) -> tuple[float, str] | None:
        """(when, why) if the recording is gone at `now`: why is "api" or "retention"."""
        with self._lock:
            by_api = self._by_api.get(recording_id)
        deadline = self.deadline(recording_id)
        gone: list[tuple[float, str]] = []
        if by_api is not None:
            gone.append((by_api, "api"))
        if deadline is not None and deadline <= now:
            gone.append((deadline, "retention"))
        return min(gone) if gone else None

    def deleted_by_api(self, recording_id: str, now: float) -> bool:
        """Whether the delete endpoint removed the recording at or before `now` (retention aside)."""
        with self._lock:
            when = self._by_api.get(recording_id)
        return when is not None and when <= now

    def exists(self, recording_id: str, now: float) -> bool:
        """A recording RingCentral has (known, and gone neither by the API nor by retention)."""
        return recording_id in self._starts and self.deleted_at(recording_id, now) is None

    def delete(self, recording_ids: Iterable[str], now: float) -> list[str]:
        """Delete through the API; returns the ids this call removed, each once and in the order asked.

        Unknown ids and ids already gone (by the API or by retention) are skipped: the caller counts and
        reports only what really went, so the stats and /_emulator/deleted stay ground truth even when
        two batches race over one id."""
        removed: list[str] = []
        with self._lock:
            for rec_id in recording_ids:
                if rec_id not in self._starts or rec_id in self._by_api:
                    continue
                deadline = None if self._retention is None else self._starts[rec_id] + self._retention
                if deadline is not None and deadline <= now:
                    continue
                self._by_api[rec_id] = now
                removed.append(rec_id)
        return removed

    def by_api(self) -> dict[str, float]:
        with self._lock:
            return dict(self._by_api)

    def listing(self, now: float) -> list[tuple[str, float, str]]:
        """(recording id, when, why) of every recording gone at `now`, earliest first."""
        out = []
        for rec_id in self._starts:
            gone = self.deleted_at(rec_id, now)
            if gone is not None:
                out.append((rec_id, gone[0], gone[1]))
        return sorted(out, key=lambda e: (e[1], e[0]))
