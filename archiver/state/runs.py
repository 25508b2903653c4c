"""The runs, the watermark and the scanned day slices."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from archiver.models import format_time, parse_time
from archiver.state.database import Database
from archiver.state.schema import _now


class Runs(Database):
    # -- runs ---------------------------------------------------------------------------------------
    def begin_run(self, run_id: str) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO runs (run_id, started_at) VALUES (?, ?)", (run_id, _now()))

    def finish_run(self, run_id: str, outcome: str, exit_code: int, summary: dict[str, Any]) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE runs SET ended_at = ?, outcome = ?, exit_code = ?, summary_json = ? WHERE run_id = ?",
                (_now(), outcome, exit_code, json.dumps(summary), run_id),
            )

    def last_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        rows = self._query("SELECT * FROM runs ORDER BY started_at DESC LIMIT ?", (limit,))
        return [
            {**dict(row), "summary_json": None, "summary": json.loads(row["summary_json"] or "null")}
            for row in rows
        ]

    def last_success(self) -> datetime | None:
        """When the last run that archived everything it found ended."""
        row = self._one("SELECT MAX(ended_at) FROM runs WHERE outcome IN ('ok', 'complete')")
        return parse_time(row[0]) if row and row[0] else None

    # -- watermark and windows ----------------------------------------------------------------------
    def watermark(self) -> datetime | None:
        value = self._meta("watermark")
        return parse_time(value) if value else None

    def advance_watermark(self, until: datetime) -> None:
        """Moves forward only: a backfill of an old range never pulls the nightly window back."""
        current = self.watermark()
        if current is None or current < until:
            self._set_meta("watermark", format_time(until))

    def window_done(self, start: datetime, end: datetime) -> bool:
        found = self._one(
            "SELECT 1 FROM windows WHERE start = ? AND end = ?", (format_time(start), format_time(end))
        )
        return found is not None

    def mark_window_done(self, start: datetime, end: datetime, run_id: str) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO windows (start, end, scanned_at, run_id) VALUES (?, ?, ?, ?)",
                (format_time(start), format_time(end), _now(), run_id),
            )
