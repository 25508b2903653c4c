"""`state compact` (issue 22): the raw call-log records of recordings archived and gone from RingCentral
leave the state; status, find, verify and a following run behave as before (a run re-seeing a
compacted recording does not download it again), and what is not safe to drop stays."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from archiver.emulator import DataOptions
from archiver.find import find
from archiver.models import ArchivedObject
from archiver.ringcentral.calllog import recordings_in
from archiver.state import StateStore
from archiver.state.parties import Filters
from tests.harness.archiver_process import SINCE
from tests.helpers import ArchivedFolder, archived_folder, run_subprocess
from tests.integration.older_states import T0, call_record

DATA = DataOptions(seed=5, calls=30, days=2, bytes_per_second=40, transfer_fraction=0.2)
LATER = datetime.now(UTC) + timedelta(days=200)  # every deadline (90 days) long passed


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchivedFolder]:
    with archived_folder(tmp_path_factory.mktemp("compact"), DATA) as archived:
        yield archived


def _status(archive: ArchivedFolder) -> dict[str, object]:
    done = run_subprocess(archive.env, "status", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    report["forecast"].pop("clears_at")  # now + the backlog's time: moves with the clock
    return dict(report)


def _found(state: Path, number: str) -> list[dict[str, object]]:
    store = StateStore(state, read_only=True)
    try:
        return list(find(store, Filters(number=number)))
    finally:
        store.close()


def test_compaction_changes_nothing_status_find_verify_or_a_run_can_see(archive: ArchivedFolder) -> None:
    number = archive.emulator.state.data.calls[0].from_party.phone_number
    status, matches = _status(archive), _found(archive.state, number)
    assert matches
    planned = run_subprocess(archive.env, "state", "compact", "--dry-run")
    assert planned.returncode == 0 and "would drop 0 raw call-log record(s)" in planned.stdout, planned
    store = StateStore(archive.state)
    rows = {rid: store.get(rid) for rid in archive.archived}
    plan = store.compact(LATER, dry_run=True)
    assert plan.records == len(archive.archived) and plan.file_bytes_after == plan.file_bytes_before
    assert store.source_of(next(iter(archive.archived)))[0]  # a dry run dropped nothing
    done = store.compact(LATER)
    assert (done.records, done.record_bytes) == (plan.records, plan.record_bytes)
    assert done.file_bytes_after <= done.file_bytes_before
    assert all(store.source_of(rid) == ({}, None) for rid in archive.archived)
    assert {rid: store.get(rid) for rid in archive.archived} == rows  # every row kept as it was
    store.close()

    assert _status(archive) == status
    assert _found(archive.state, number) == matches
    verified = run_subprocess(archive.env, "verify", "--since", SINCE)
    assert verified.returncode == 0, verified.stdout[-2000:] + verified.stderr[-2000:]
    downloads = dict(archive.emulator.stats.snapshot()["downloads"])
    again = run_subprocess(archive.env, "run", "--since", SINCE)
    assert again.returncode == 0, again.stderr[-2000:]
    assert dict(archive.emulator.stats.snapshot()["downloads"]) == downloads  # nothing fetched again
    assert _status(archive)["counts"] == status["counts"]
    again = run_subprocess(archive.env, "state", "compact")  # the command, under the run lock
    assert again.returncode == 0 and "dropped 0 raw call-log record(s)" in again.stdout, again


def test_compaction_keeps_what_a_sidecar_may_still_need(tmp_path: Path) -> None:
    """Dropped: archived and deleted at the source (settled), or archived past its deadline + grace.
    Kept: pending, failed, a re-upload asked for (its sidecar is written again), and an archived
    recording RingCentral may still hold (a DELETE in flight included)."""
    store = StateStore(tmp_path / "state.db")
    found = [item for n in range(8) for item in recordings_in(call_record(n))][:8]
    store.note_found(found, "run-1")
    ids = [item.recording_id for item in found]
    stored = ArchivedObject("k.mp3", "audio/mpeg", 1, "ab" * 32)
    for rid in ids[1:]:
        store.mark_archived(rid, stored)
    store.requeue(ids[1], "verify: missing")
    store.record_failure(ids[1], "HTTP 503", max_attempts=5)  # failed again after a requeue
    store.requeue(ids[2], "verify: corrupt", force_upload=True)
    store.mark_deleted([ids[3]], T0, "us")  # deleted at the source, settled
    store._db.execute("UPDATE recordings SET delete_intent = 'run-2' WHERE recording_id = ?", (ids[4],))
    deadline = found[5].recording.retention_start + timedelta(days=90)
    # ids[5..7]: archived, RingCentral's deadline passing at `deadline`
    kept_at = store.compact(deadline + timedelta(days=29), dry_run=True)
    assert kept_at.records == 1  # only the deleted one: the others' deadline passed under 30 days ago
    done = store.compact(deadline + timedelta(days=31))
    gone = {rid for rid in ids if store.source_of(rid) == ({}, None)}
    assert gone == {ids[3], *ids[4:]} and done.records == len(gone)
    store.close()
