"""The state at a million recordings (issue 22), proven at a small size: every walk is one range of an
index that gives its order (EXPLAIN QUERY PLAN of the statements the walks really run), the counts
come from a tally the triggers keep exact, quick_check runs only when due, and `status` lists are
bounded with their totals."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.errors import StateError
from archiver.models import ArchivedObject
from archiver.ringcentral.calllog import recordings_in
from archiver.state import SCHEMA_VERSION, StateStore, compaction
from archiver.state.database import CHECKED_AT, OPEN_SINCE
from archiver.state.indexes import add_walk_indexes_and_tally
from archiver.status import render, status_report
from tests.integration.test_state import record

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def _store(path: Path, size: int = 60) -> StateStore:
    """`size` recordings, one a minute back from NOW: archived, some deleted, failed, lost, pending."""
    store = StateStore(path)
    found = []
    for i in range(size):
        item = recordings_in(record(f"r{i:04d}"))[0]
        start = NOW - timedelta(days=100) + timedelta(hours=i * 12)
        found.append(replace(item, recording=replace(item.recording, start=start, retention_start=start)))
    store.note_found(found, "scan-1")
    for i, item in enumerate(found):
        if i % 10 == 1:
            store.record_failure(item.recording_id, "503", max_attempts=2)
        elif i % 10 == 2:
            store.mark_lost(item.recording_id, "deadline passed")
        elif i % 10 == 3:
            continue  # pending
        else:
            store.mark_archived(item.recording_id, ArchivedObject(f"k/{i}", "audio/mpeg", 10, "ab" * 32))
    archived = [f.recording_id for i, f in enumerate(found) if i % 10 not in (1, 2, 3)]
    store.mark_deleted(archived[::7], NOW, "us")
    store.intend_deletion(archived[1::9], "run-9")
    return store


def _plans(store: StateStore, walk: Callable[[], object]) -> list[list[str]]:
    """EXPLAIN QUERY PLAN of each SELECT on recordings a call really ran (SQLite's expanded text)."""
    ran: list[str] = []
    store._db.set_trace_callback(ran.append)
    try:
        walk()
    finally:
        store._db.set_trace_callback(None)
    selects = [sql for sql in ran if sql.lstrip().upper().startswith("SELECT") and "FROM recording" in sql]
    assert selects, "the walk ran no SELECT on the recordings"
    return [[str(r[3]) for r in store._db.execute(f"EXPLAIN QUERY PLAN {sql}")] for sql in selects]


def _drain(items: Iterator[Any]) -> int:
    return sum(1 for _ in items)


WALKS: list[tuple[str, Callable[[StateStore], object], str, str]] = [
    # (name, the walk, the index it must use, the bound each batch must be a range of)
    ("archived_ids (verify --manifests)", lambda s: _drain(s.archived_ids(batch=4)), "recordings_archived",
     "recording_id>?"),
    ("seen_in (verify's walk)", lambda s: _drain(s.seen_in("scan-1", batch=4)), "recordings_seen",
     "last_seen_run=? AND recording_id>?"),
    ("due (the run's loop)", lambda s: _drain(s.due(2, NOW, batch=2)), "recordings_backlog",
     "(deadline,recording_id)>(?,?)"),
    ("deletable (the deletion pass)", lambda s: _drain(s.deletable(NOW + timedelta(days=30), batch=4)),
     "recordings_deletable", "archived_at>?"),
    ("unsettled_intents", lambda s: _drain(s.unsettled_intents(batch=2)), "recordings_intents",
     "recording_id>?"),
    ("deleted_ids", lambda s: _drain(s.deleted_ids(batch=2)), "recordings_deleted", "recording_id>?"),
]  # fmt: skip


@pytest.mark.parametrize(("walk", "index", "bound"), [w[1:] for w in WALKS], ids=[w[0] for w in WALKS])
def test_scale_every_walk_is_a_range_of_the_index_that_orders_it(
    tmp_path: Path, walk: Callable[[StateStore], object], index: str, bound: str
) -> None:
    store = _store(tmp_path / "state.db")
    plans = _plans(store, lambda: walk(store))
    assert len(plans) > 2  # several batches: each one is checked
    for plan in plans:
        assert not any("TEMP B-TREE" in step for step in plan), plan  # no batch sorts what it read
        assert any(f"INDEX {index} (" in step and bound in step for step in plan), plan
    store.close()


@pytest.mark.parametrize(
    ("name", "read", "index"),
    [
        ("forecast histogram", lambda s: s.due_deadlines(2, NOW), "COVERING INDEX recordings_backlog"),
        ("count_due", lambda s: s.count_due(2, NOW), "COVERING INDEX recordings_backlog"),
        ("held_at_source", lambda s: s.held_at_source(NOW), "COVERING INDEX recordings_held (deadline>?)"),
        ("unmanifested", lambda s: s.unmanifested(), "INDEX recordings_unmanifested"),
        ("oldest_unarchived", lambda s: s.oldest_unarchived(), "COVERING INDEX recordings_backlog"),
        ("counts", lambda s: s.counts(2), "recording_tally"),
    ],
)
def test_scale_gauges_read_an_index_or_the_tally_never_the_rows(
    tmp_path: Path, name: str, read: Callable[[StateStore], object], index: str
) -> None:
    store = _store(tmp_path / "state.db")
    for plan in _plans(store, lambda: read(store)):
        assert any(index in step for step in plan), (name, plan)
        assert not any(step.startswith("SCAN recordings") and "INDEX" not in step for step in plan), plan
    store.close()


def _counted(path: Path, max_attempts: int) -> dict[str, int]:
    """counts() as the old full scan computed it: what the tally must always equal."""
    db = sqlite3.connect(path)
    row = db.execute(
        "SELECT SUM(status = 'pending' AND attempts < ?1), SUM(status = 'archived'), "
        "SUM(status = 'failed' AND attempts < ?1), SUM(status = 'lost'), "
        "SUM(status IN ('pending', 'failed') AND attempts >= ?1), SUM(deleted_at IS NOT NULL), "
        "SUM(status = 'archived' AND deleted_at IS NULL AND COALESCE(provenance, '') "
        "NOT IN ('downloaded', 'reproved')) FROM recordings",
        (max_attempts,),
    ).fetchone()
    db.close()
    names = ("pending", "archived", "failed", "lost", "exhausted", "deleted", "unproven")
    return {name: int(row[i] or 0) for i, name in enumerate(names)}


def test_scale_the_tally_stays_equal_to_a_full_count_through_every_transition(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = _store(path)
    steps: list[Callable[[], object]] = [
        lambda: store.record_failure("r0013", "again", max_attempts=2),
        lambda: store.record_failure("r0013", "again", max_attempts=2),  # exhausted now
        lambda: store.mark_archived(
            "r0011", ArchivedObject("k", "audio/mpeg", 1, "cd" * 32), provenance="adopted"
        ),
        lambda: store.mark_reproved("r0011"),
        lambda: store.mark_deleted(["r0011", "r0004"], NOW, "source"),
        lambda: store.undelete(["r0004"]),
        lambda: store.requeue("r0005", "verify found it corrupt", force_upload=True),
        lambda: store.retry(None),
        lambda: store.mark_lost("r0023", "gone"),
        lambda: store.note_found(recordings_in(record("new-1")), "scan-2"),
    ]
    assert store.counts(2) == _counted(path, 2)
    seen: set[str] = set()
    for step in steps:
        step()
        for max_attempts in (1, 2, 5):
            assert store.counts(max_attempts) == _counted(path, max_attempts)
            seen |= {name for name, n in store.counts(max_attempts).items() if n}
    assert seen == {"pending", "archived", "failed", "lost", "exhausted", "deleted", "unproven"}
    store.close()


def test_scale_the_migration_seeds_the_tally_from_an_older_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A state of the schema before issue 22 gains the indexes and a tally equal to a full count."""
    from archiver.state import schema

    path = tmp_path / "state.db"
    store = _store(path)
    expected = store.counts(2)
    store.close()
    db = sqlite3.connect(path)  # back to the schema before issue 22: no tally, no trigger, no index
    before = schema.MIGRATIONS.index(add_walk_indexes_and_tally)
    for name in ("recordings_archived", "recordings_backlog", "recordings_held"):
        db.execute(f"DROP INDEX {name}")
    for name in ("insert", "update", "delete"):
        db.execute(f"DROP TRIGGER recordings_tally_{name}")
    db.execute("DROP TABLE recording_tally")
    db.execute("DROP TABLE writer_marks")
    db.execute("DROP INDEX recordings_seen")
    db.execute("CREATE INDEX recordings_seen ON recordings (last_seen_run)")
    db.execute(f"PRAGMA user_version = {before}")
    db.commit()
    db.close()
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[: before + 1])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", before + 1)
    store = StateStore(path)
    assert store.schema_version == before + 1 <= SCHEMA_VERSION
    assert store.counts(2) == expected == _counted(path, 2)
    assert _drain(store.archived_ids()) == expected["archived"]
    store.close()


def _meta(path: Path, name: str) -> str | None:
    db = sqlite3.connect(path)
    row = db.execute("SELECT value FROM writer_marks WHERE name = ?", (name,)).fetchone()
    db.close()
    return str(row[0]) if row else None


def _set_meta(path: Path, name: str, value: str) -> None:
    db = sqlite3.connect(path)
    db.execute("INSERT OR REPLACE INTO writer_marks (name, value) VALUES (?, ?)", (name, value))
    db.commit()
    db.close()


def test_scale_quick_check_runs_after_an_unclean_shutdown_or_a_week_not_at_every_open(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    _store(path).close()
    checked = _meta(path, CHECKED_AT)
    assert checked is not None and _meta(path, OPEN_SINCE) is None  # a clean close clears the mark
    StateStore(path).close()
    assert _meta(path, CHECKED_AT) == checked  # a clean reopen within the week: no whole-file read
    _set_meta(path, CHECKED_AT, "2026-01-01T00:00:00.000Z")  # a week and more ago
    StateStore(path).close()
    assert _meta(path, CHECKED_AT) not in (None, "2026-01-01T00:00:00.000Z", checked)
    checked = _meta(path, CHECKED_AT)
    _set_meta(path, OPEN_SINCE, "2026-11-30T00:00:00.000Z")  # the last writer was killed
    StateStore(path).close()
    assert _meta(path, CHECKED_AT) != checked


def test_scale_corrupt_pages_are_found_at_the_open_after_an_unclean_shutdown(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = StateStore(path)
    store.note_found([recordings_in(record(f"r{i}"))[0] for i in range(200)], "run-1")
    store.close()
    _set_meta(path, OPEN_SINCE, "2026-11-30T00:00:00.000Z")  # killed: its mark is still there
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"state.db{suffix}").unlink(missing_ok=True)
    data = bytearray(path.read_bytes())
    data[4096 * 5 : 4096 * 6] = b"\xff" * 4096  # a page in the middle, the header and meta intact
    path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="corrupt"):
        StateStore(path)


def test_scale_status_lists_are_bounded_with_their_totals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from archiver.settings import load_settings

    for name in [n for n in os.environ if n.startswith("RC_")]:
        monkeypatch.delenv(name)
    store = _store(tmp_path / "state.db", size=120)
    settings = load_settings()
    report = status_report(store, settings, NOW, limit=2)
    assert report["totals"]["lost"] == 12 and len(report["lost"]) == 2
    assert "  ... and 10 more (status --limit 0 lists them all)" in render(report, as_json=False)
    every = status_report(store, settings, NOW, limit=0)
    assert len(every["lost"]) == every["totals"]["lost"] == 12
    assert "more (status --limit" not in render(every, as_json=False).split("LOST")[1].split("at risk")[0]
    store.close()


def test_scale_status_command_takes_a_limit(tmp_path: Path) -> None:
    """`rc-archiver status --json --limit 3` as a real process: three lost rows listed, all counted."""
    import json

    from tests.helpers import run_subprocess

    path = tmp_path / "state.db"
    _store(path, size=120).close()
    result = run_subprocess({"RC_ARCHIVER_STATE_PATH": str(path)}, "status", "--json", "--limit", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert len(report["lost"]) == 3 and report["totals"]["lost"] == 12 and report["limit"] == 3


def test_scale_compaction_takes_each_batch_as_a_rowid_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`state compact` walks the table in rowid ranges: the status index would hand every batch every
    archived row again (quadratic at a million recordings)."""
    monkeypatch.setattr(compaction, "_BATCH", 3)
    store = _store(tmp_path / "state.db")
    plans = _plans(store, lambda: store.compact(NOW + timedelta(days=400), vacuum=False))
    batches = [plan for plan in plans if any("recording_sources" in step for step in plan)]
    assert len(batches) > 2  # several batches: each one is checked
    for plan in batches:
        assert any("recordings USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)" in step for step in plan), (
            plan
        )
        assert not any("INDEX recordings_" in step for step in plan), plan
    store.close()
