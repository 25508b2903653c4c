"""The archive's index, beside it, for any SQL engine: `_index/date=YYYY-MM-DD/<run-id>-<n>.jsonl.gz`.

One JSON line per archived recording (recording_id, call_id, start_time, duration, direction,
from_number, to_number, numbers: every party number of the call in E.164, extension_numbers, key, size,
sha256, content_type, archived_at, ...), gzip-compressed, Hive-partitioned by the call's date (UTC), so
Athena, Trino, Spark or DuckDB read the same files (deploy/athena/recordings.sql,
docs/how-to/find-hold-export.md). Numbers are personal data: give the index prefix the access the
recordings have.

Written as the run goes, like the manifests: a part every BATCH recordings or INTERVAL seconds, each
written atomically under a new key and never rewritten. The state records which recordings a part
lists, so what a killed run archived but never listed is listed by the next run (adopt_unlisted).
A recording archived twice (a repair) appears twice: the row with the latest archived_at is current.

`rc-archiver index rebuild` writes the whole index again from the sidecars alone (no state needed),
then removes the parts it replaced.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from archiver.archive.layout import MANIFEST_PREFIX, Layout
from archiver.archive.parts import PartWriter
from archiver.destinations.base import Destination
from archiver.destinations.listing import list_keys
from archiver.destinations.s3_errors import PROBE_PREFIX
from archiver.errors import ArchiverError
from archiver.find import describe
from archiver.models import ArchivedObject, parse_time
from archiver.ringcentral.calllog import call_parties, recording_from
from archiver.state import ARCHIVED, RecordingRow, StateStore

log = structlog.get_logger(__name__)
INDEX_PREFIX = "_index/"
INDEX_CONTENT_TYPE = "application/gzip"
BATCH = 1000
INTERVAL = 60.0
# The columns of the index, in order (deploy/athena/recordings.sql declares the same).
COLUMNS = (
    "recording_id",
    "call_id",
    "session_id",
    "telephony_session_id",
    "start_time",
    "call_start_time",
    "duration",
    "direction",
    "from_number",
    "to_number",
    "numbers",
    "extension_numbers",
    "key",
    "size",
    "sha256",
    "content_type",
    "archived_at",
)


def index_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A described recording (find.describe) as one line of the index."""
    return {name: entry[name] for name in COLUMNS}


def part_date(row: dict[str, Any]) -> str:
    return str(row["call_start_time"])[:10]


def part_key(date: str, label: str, part: int) -> str:
    return f"{INDEX_PREFIX}date={date}/{label}-{part:05d}.jsonl.gz"


def encode(rows: Iterable[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    return gzip.compress(text.encode(), mtime=0)


class IndexWriter(PartWriter[str]):
    """The index parts of one run: recordings added as they are archived, written in batches."""

    def __init__(
        self,
        destination: Destination,
        state: StateStore,
        run_id: str,
        batch: int = BATCH,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(batch, interval, clock)
        self._destination = destination
        self._state = state
        self._run_id = run_id

    def adopt_unlisted(self) -> int:
        """List what earlier runs archived and no index part lists (a run killed before its flush)."""
        owed = self._state.unindexed()
        for recording_id in owed:
            self.add(recording_id)
        return len(owed)

    def _write(self, owed: list[str]) -> list[str]:
        by_date: dict[str, list[dict[str, Any]]] = {}
        for recording_id in dict.fromkeys(owed):
            row = self._state.get(recording_id)
            if row is None or row.status != ARCHIVED:
                continue
            entry = index_row(describe(row, self._state.parties_of(recording_id)))
            by_date.setdefault(part_date(entry), []).append(entry)
        for date, rows in sorted(by_date.items()):
            self._part += 1
            key = part_key(date, self._run_id, self._part)
            try:
                self._destination.put(key, encode(rows), content_type=INDEX_CONTENT_TYPE)
            except ArchiverError as exc:
                # The recordings stay unlisted in the state: the next run lists them.
                log.warning("index_part_deferred", key=key, reason=str(exc))
                continue
            self._state.mark_indexed([r["recording_id"] for r in rows], key)
            self.written += len(rows)
            log.info("index_part_written", key=key, rows=len(rows))
        return []  # a part refused stays owed in the state, not here: the next run lists it


# -- rebuild from the sidecars --------------------------------------------------------------------
_NOT_SIDECARS = (INDEX_PREFIX, MANIFEST_PREFIX, PROBE_PREFIX)


@dataclass
class Rebuilt:
    rows: int = 0
    parts: int = 0
    removed: int = 0
    unreadable: list[str] | None = None


def row_from_sidecar(sidecar: dict[str, Any]) -> dict[str, Any] | None:
    """The index line of one sidecar (None if it is not a recording's sidecar)."""
    record = sidecar.get("call_log_record")
    if not isinstance(record, dict) or not sidecar.get("recording_id") or not sidecar.get("key"):
        return None
    content_type, size, sha256 = sidecar.get("content_type"), sidecar.get("size"), sidecar.get("sha256")
    if not (isinstance(content_type, str) and isinstance(size, int) and isinstance(sha256, str)):
        return None  # ours always name the object whole
    leg = sidecar.get("call_log_leg") if isinstance(sidecar.get("call_log_leg"), dict) else None
    recording = recording_from(record, leg)
    row = RecordingRow(
        recording=recording,
        status=ARCHIVED,
        attempts=0,
        last_error=None,
        archived=ArchivedObject(str(sidecar["key"]), content_type, size, sha256),
        deadline=recording.start,
        archived_at=parse_time(str(sidecar["archived_at"])) if sidecar.get("archived_at") else None,
    )
    return index_row(describe(row, call_parties(record)))


def rebuild_index(destination: Destination, now: datetime | None = None, batch: int = BATCH) -> Rebuilt:
    """Write the index again from every sidecar in the destination, then remove the parts it replaces."""
    label = f"rebuild-{(now or datetime.now(UTC)):%Y%m%dT%H%M%SZ}"
    old_parts, sidecars = [], []
    for key in list_keys(destination):
        if key.startswith(INDEX_PREFIX):
            old_parts.append(key)
        elif key.endswith(".json") and not key.startswith(_NOT_SIDECARS):
            sidecars.append(key)
    result = Rebuilt(unreadable=[])
    pending: dict[str, list[dict[str, Any]]] = {}

    def write(date: str) -> None:
        rows = pending.pop(date)
        result.parts += 1
        destination.put(part_key(date, label, result.parts), encode(rows), content_type=INDEX_CONTENT_TYPE)
        result.rows += len(rows)

    for key in sidecars:
        document = Layout.read_sidecar(destination, key)
        row = row_from_sidecar(document) if document is not None else None
        if row is None:
            assert result.unreadable is not None
            result.unreadable.append(key)
            continue
        date = part_date(row)
        pending.setdefault(date, []).append(row)
        if len(pending[date]) >= batch:
            write(date)
    for date in sorted(pending):
        write(date)
    for key in old_parts:
        destination.delete(key)
        result.removed += 1
    log.info("index_rebuilt", rows=result.rows, parts=result.parts, removed=result.removed)
    return result
