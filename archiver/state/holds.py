"""Legal holds as the state records them: why, when, the query that chose them, and the objects held.

S3 has one legal-hold switch per object, but several holds (two cases) may cover one object: releasing
a hold lifts the switch only on the objects no other active hold still covers (`still_held`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from archiver.models import format_time
from archiver.state.rows import Rows


@dataclass(frozen=True)
class Hold:
    hold_id: int
    reason: str
    query: dict[str, str]
    placed_at: str
    objects: int
    released_at: str | None = None
    release_reason: str | None = None


class Holds(Rows):
    def record_hold(self, reason: str, query: dict[str, str], objects: Iterable[tuple[str, str]]) -> int:
        """A hold placed on `objects` ((recording id, key) pairs); returns its id."""
        with self._tx() as db:
            cursor = db.execute(
                "INSERT INTO holds (reason, query_json, placed_at) VALUES (?, ?, ?)",
                (reason, json.dumps(query, sort_keys=True), format_time(datetime.now(UTC))),
            )
            hold_id = int(cursor.lastrowid or 0)
            db.executemany(
                "INSERT OR IGNORE INTO held_objects (hold_id, key, recording_id) VALUES (?, ?, ?)",
                [(hold_id, key, recording_id) for recording_id, key in objects],
            )
        return hold_id

    def release_objects(self, keys: Iterable[str], reason: str, hold_id: int | None = None) -> list[int]:
        """Release the claim on `keys` of every hold in force (or of `hold_id` only); a hold left with
        no object is released whole. Returns the holds touched."""
        keys = list(keys)
        now = format_time(datetime.now(UTC))
        with self._tx() as db:
            touched = sorted(
                {
                    int(r[0])
                    for key in keys
                    for r in db.execute(
                        "SELECT o.hold_id FROM held_objects o JOIN holds h USING (hold_id) "
                        "WHERE o.key = ? AND h.released_at IS NULL AND (? IS NULL OR o.hold_id = ?)",
                        (key, hold_id, hold_id),
                    )
                }
            )
            for touched_id in touched:
                db.executemany(
                    "DELETE FROM held_objects WHERE hold_id = ? AND key = ?", [(touched_id, k) for k in keys]
                )
                left = db.execute("SELECT COUNT(*) FROM held_objects WHERE hold_id = ?", (touched_id,))
                if left.fetchone()[0] == 0:
                    db.execute(
                        "UPDATE holds SET released_at = ?, release_reason = ? WHERE hold_id = ?",
                        (now, reason, touched_id),
                    )
        return touched

    def held_keys(self) -> dict[str, list[int]]:
        """Every object an active hold covers, with the holds that cover it."""
        rows = self._query(
            "SELECT o.key, o.hold_id FROM held_objects o JOIN holds h USING (hold_id) "
            "WHERE h.released_at IS NULL ORDER BY o.key, o.hold_id"
        )
        held: dict[str, list[int]] = {}
        for row in rows:
            held.setdefault(str(row["key"]), []).append(int(row["hold_id"]))
        return held

    def holds(self, *, include_released: bool = False) -> list[Hold]:
        condition = "" if include_released else "WHERE h.released_at IS NULL"
        rows = self._query(
            "SELECT h.*, (SELECT COUNT(*) FROM held_objects o WHERE o.hold_id = h.hold_id) AS objects "  # noqa: S608
            f"FROM holds h {condition} ORDER BY h.hold_id"
        )
        return [
            Hold(
                int(r["hold_id"]),
                r["reason"],
                json.loads(r["query_json"]),
                r["placed_at"],
                int(r["objects"]),
                r["released_at"],
                r["release_reason"],
            )
            for r in rows
        ]
