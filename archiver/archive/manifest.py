"""The run's manifest, written as the run goes, and the hash chain that links every run's manifests.

A manifest part is `_manifests/<run-id>-<part>.jsonl`: a header line naming the part before it (key and
sha256: this run's previous part, or the last part of the run before), then one line per recording
archived, found already stored, about to be deleted at the source (`delete_intent`: written before the
DELETE is sent) or deleted there (`deleted`, with `by`: `us` or `source`). A part is written atomically
every BATCH lines or INTERVAL seconds, so a killed run has written the lines of all but its last few
recordings, and those (marked archived or deleted but not yet listed, a column in the state) are listed
by the next run.
The newest part's key and sha256 are the chain's head, kept in the state; `verify --manifests` walks
the chain back from it and names the first break.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from archiver.archive.layout import MANIFEST_CONTENT_TYPE, Layout
from archiver.archive.parts import PartWriter
from archiver.destinations.base import Destination
from archiver.errors import ArchiverError
from archiver.models import format_time, parse_time
from archiver.state import StateStore

log = structlog.get_logger(__name__)
BATCH = 200
INTERVAL = 30.0
HEAD = "manifest_head"
VERSION = 1


class ManifestWriter(PartWriter[dict[str, Any]]):
    """The manifest parts of one run: a line per recording archived, found stored or deleted."""

    def __init__(
        self,
        destination: Destination,
        state: StateStore,
        layout: Layout,
        run_id: str,
        batch: int = BATCH,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(batch, interval, clock)
        self._destination = destination
        self._state = state
        self._layout = layout
        self._run_id = run_id

    def adopt_unlisted(self) -> int:
        """List what a killed run marked archived (or deleted at the source) but never wrote into a
        manifest part."""
        rows = self._state.unmanifested()
        for row in rows:
            self.add(
                self._layout.manifest_entry(
                    "archived",
                    row.recording_id,
                    row.archived,
                    call_id=row.recording.call_id,
                    start_time=row.recording.start.isoformat(),
                    adopted=True,
                )
            )
            if row.deleted_at is not None:
                self.add(
                    self._layout.manifest_entry(
                        "deleted",
                        row.recording_id,
                        row.archived,
                        by=row.deleted_by,
                        deleted_at=format_time(row.deleted_at),
                        adopted=True,
                    )
                )
        return len(rows)

    def _write(self, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
        head = self._state.meta_json(HEAD)
        self._part += 1
        key = self._layout.manifest_key(self._run_id, self._part)
        header = {
            "manifest": VERSION,
            "run_id": self._run_id,
            "part": self._part,
            "written_at": format_time(datetime.now(UTC)),
            "previous": {"key": head["key"], "sha256": head["sha256"]} if head else None,
        }
        body = "".join(json.dumps(line, sort_keys=True) + "\n" for line in [header, *lines]).encode()
        try:
            self._destination.put(key, body, content_type=MANIFEST_CONTENT_TYPE)
        except ArchiverError as exc:
            # The recordings are archived; their lines stay owed (not marked listed) for the next run.
            self._part -= 1
            log.warning("manifest_deferred", key=key, reason=str(exc))
            return lines
        self._state.set_meta_json(HEAD, {"key": key, "sha256": hashlib.sha256(body).hexdigest()})
        self._state.mark_manifested(sorted({str(line["recording_id"]) for line in lines}))
        self.written += len(lines)
        log.info("manifest_written", key=key, lines=len(lines))
        return []


@dataclass
class ChainReport:
    parts: int = 0
    listed: set[str] = field(default_factory=set)  # archived or found stored
    deleted: set[str] = field(default_factory=set)  # deleted at the source (confirmed)
    breaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


def walk_chain(destination: Destination, head: dict[str, str] | None, limit: int = 1_000_000) -> ChainReport:
    """Follow the chain from its head back to the first part; stop at the first break, naming it."""
    report = ChainReport()
    if head is None:
        return report
    expected: dict[str, str] | None = head
    newer_written: datetime | None = None
    while expected is not None and report.parts < limit:
        key = expected["key"]
        if destination.stat(key) is None:
            report.breaks.append(f"manifest {key} is missing")
            break
        with destination.open(key) as stream:
            body = stream.read()
        if hashlib.sha256(body).hexdigest() != expected["sha256"]:
            report.breaks.append(f"manifest {key} was altered (its sha256 is not the one recorded after it)")
            break
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        header = lines[0] if lines else {}
        written = parse_time(str(header.get("written_at", "1970-01-01T00:00:00Z")))
        if header.get("manifest") != VERSION:
            report.breaks.append(f"manifest {key} has no manifest header")
            break
        if newer_written is not None and written > newer_written:
            report.breaks.append(f"manifest {key} is out of order (written after the part that follows it)")
            break
        newer_written = written
        report.parts += 1
        for line in lines[1:]:
            event = line.get("event")
            if event in ("archived", "found_stored"):
                report.listed.add(str(line["recording_id"]))
            elif event == "deleted":
                report.deleted.add(str(line["recording_id"]))
        expected = header.get("previous")
    return report
