"""`rc-archiver state compact`: drop the raw call-log records the archive already keeps.

A recording's raw call-log record (recording_sources, about 0.2-0.4 KB packed) is needed for one
thing: writing its sidecar. Once the recording is archived (its sidecar is written: both ways to
`archived` write or find it) and RingCentral no longer holds it (deleted at the source, or its
deletion deadline passed more than `grace` ago), no sidecar of it can be written again (a requeue
would find nothing to download), so the record is dropped from the state: the sidecar in the
archive keeps it, and `index rebuild` and `find` do not need it.

What stays: every recordings row (verify checks the archive of recordings deleted at the source
whatever its range, `find` answers from the rows and the parties, the tally counts them, the
deletion proof and the manifests name them), the parties, the runs. Whole rows are never dropped.

In batches of rowids, each its own transaction (flat memory, a kill loses one batch); then VACUUM
gives the freed pages back to the file system (it needs free disk about the state's size; skipped
with `vacuum=False`, and the pages are then reused by the next recordings instead).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from archiver.models import format_time
from archiver.state.rows import Rows

log = structlog.get_logger(__name__)

DEFAULT_GRACE = timedelta(days=30)  # after the deletion deadline: RingCentral's own deletion may lag
_BATCH = 5000

# Archived (its sidecar written), no re-upload asked for, and gone from RingCentral: deleted there
# (settled: no DELETE in flight), or its deadline long passed.
_COMPACTABLE = (
    "status = 'archived' AND force_upload = 0 "
    "AND ((deleted_at IS NOT NULL AND delete_intent IS NULL) OR deadline < ?)"
)


@dataclass(frozen=True)
class Compacted:
    """What `state compact` dropped (or, with dry_run, would drop)."""

    records: int  # raw call-log records
    record_bytes: int  # their stored (packed) size
    file_bytes_before: int
    file_bytes_after: int  # the same as before in a dry run, or without VACUUM


class Compaction(Rows):
    def compact(
        self, now: datetime, grace: timedelta = DEFAULT_GRACE, dry_run: bool = False, vacuum: bool = True
    ) -> Compacted:
        """Drop the raw records of recordings archived and gone from RingCentral (see the module); a
        dry run only counts them (one read, no write: a read-only state will do)."""
        cutoff = format_time(now - grace)
        before = self._file_bytes()
        if dry_run:
            row = self._one(
                "SELECT COUNT(*), COALESCE(SUM(length(source)), 0) FROM recording_sources "  # noqa: S608
                f"JOIN recordings USING (recording_id) WHERE {_COMPACTABLE}",
                (cutoff,),
            )
            records, size = (int(row[0]), int(row[1])) if row else (0, 0)
            result = Compacted(records, size, before, before)
            log.info("state_compaction_planned", **vars(result))
            return result
        records = size = after = 0
        # NOT INDEXED: the batch is a rowid range; the planner would otherwise walk every archived row of
        # the status index for each batch (quadratic over a million rows).
        chosen = (
            "SELECT recording_id FROM recordings NOT INDEXED "  # noqa: S608 - fixed text
            f"WHERE rowid > ? AND rowid <= ? AND {_COMPACTABLE}"
        )
        while True:
            with self._tx() as db:
                high = db.execute(
                    "SELECT MAX(rowid) FROM "
                    "(SELECT rowid FROM recordings WHERE rowid > ? ORDER BY rowid LIMIT ?)",
                    (after, _BATCH),
                ).fetchone()[0]
                if high is None:
                    break
                found = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(length(source)), 0) FROM recording_sources "  # noqa: S608
                    f"WHERE recording_id IN ({chosen})",
                    (after, high, cutoff),
                ).fetchone()
                records, size = records + int(found[0]), size + int(found[1])
                db.execute(
                    f"DELETE FROM recording_sources WHERE recording_id IN ({chosen})",  # noqa: S608
                    (after, high, cutoff),
                )
                after = int(high)
        if records and vacuum:
            self.vacuum()
        result = Compacted(records, size, before, self._file_bytes())
        log.info("state_compacted", **vars(result))
        return result

    def _file_bytes(self) -> int:
        row = self._one("SELECT page_count * page_size FROM pragma_page_count, pragma_page_size")
        return int(row[0]) if row else 0
