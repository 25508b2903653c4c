"""The state file: a SQLite database (WAL) that lets a run stop anywhere and the next carry on.

One row per recording, with the call-log fields the archive needs as columns and its deletion deadline
at RingCentral; the raw call-log record, needed only for the sidecar, is kept packed in a table of its
own (sources.py) until `state compact` drops it (compaction.py). A recording moves
    pending -> archived (-> deleted at the source, opt in)
    pending -> failed (attempts and the last error; still retried) -> archived
    pending | failed -> lost (its deadline passed, or RingCentral deleted it, before it was archived)
and is `exhausted` (a view, not a status) once it has failed RC_ARCHIVER_MAX_ATTEMPTS times: it is then
retried only every RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL. The scanned day slices, the runs, the
watermark, the manifest chain's head and the journal of multipart uploads live here too. Every
transition is committed as it happens, so a kill between two statements loses at most the step in
flight, which the next run redoes. Schema changes are numbered migrations keyed on PRAGMA user_version.

One run at a time per state file: an exclusive OS lock (flock) on `<state>.lock`, held for the run.
"""

from __future__ import annotations

from archiver.state.compaction import Compaction
from archiver.state.holds import Holds
from archiver.state.lock import FileLock, lock_for, prepare_folder
from archiver.state.parties import Finding
from archiver.state.recordings import Recordings
from archiver.state.reports import Reports
from archiver.state.rows import ARCHIVED, FAILED, LOST, PENDING, RecordingRow, Seen
from archiver.state.runs import Runs
from archiver.state.schema import DEFAULT_RETENTION, MIGRATIONS, SCHEMA_VERSION
from archiver.state.source_deletions import SourceDeletions
from archiver.state.transitions import Transitions, Uploads


class StateStore(
    Recordings, Transitions, SourceDeletions, Uploads, Runs, Reports, Finding, Holds, Compaction
):
    """The state, as intention-revealing operations (each family in its own module)."""


__all__ = [
    "ARCHIVED",
    "DEFAULT_RETENTION",
    "FAILED",
    "LOST",
    "MIGRATIONS",
    "PENDING",
    "SCHEMA_VERSION",
    "FileLock",
    "RecordingRow",
    "Seen",
    "StateStore",
    "lock_for",
    "prepare_folder",
]
