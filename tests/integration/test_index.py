"""The archive's index (`_index/date=.../*.jsonl.gz`), read by DuckDB itself and compared with `find`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import duckdb
import pytest

from archiver.emulator import DataOptions
from archiver.emulator.data import iso
from archiver.find import find
from archiver.models import parse_time
from archiver.state import StateStore
from archiver.state.parties import Filters
from tests.helpers import ROOT, SINCE, archived_folder, run_subprocess
from tests.helpers import ArchivedFolder as Archive

DATA = DataOptions(
    seed=23, calls=70, days=3, bytes_per_second=40, transfer_fraction=0.2, internal_fraction=0.1
)


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    with archived_folder(tmp_path, DATA) as archived:
        yield archived


def query(root: Path, sql: str, *params: object) -> list[tuple[Any, ...]]:
    """SQL over the index, as anyone would run it (README: "The index with DuckDB")."""
    source = f"read_json_auto('{root}/_index/*/*.jsonl.gz', hive_partitioning = true)"
    with duckdb.connect() as db:
        return db.execute(sql.replace("INDEX", source), list(params)).fetchall()


def found(state_path: Path, filters: Filters) -> set[str]:
    state = StateStore(state_path, read_only=True)
    try:
        return {entry["recording_id"] for entry in find(state, filters)}
    finally:
        state.close()


def test_index_has_one_row_per_archived_recording_and_answers_like_find(archive: Archive) -> None:
    rows, distinct = query(archive.root, "SELECT count(*), count(DISTINCT recording_id) FROM INDEX")[0]
    assert rows == distinct == len(archive.archived)
    truth = {item["recordingId"]: item for item in archive.emulator.ground_truth()}
    for recording_id, size, sha256, key in query(
        archive.root, "SELECT recording_id, size, sha256, key FROM INDEX"
    ):
        assert (size, sha256) == (truth[recording_id]["size"], truth[recording_id]["sha256"])
        assert (archive.root / key).stat().st_size == size
    # Every party number of every call: the index and `find` give the same recordings.
    numbers = {n for (n,) in query(archive.root, "SELECT DISTINCT unnest(numbers) FROM INDEX")}
    calls = archive.emulator.state.data.calls
    assert numbers == {
        p.phone_number
        for c in calls
        if any(r.id in archive.archived for r in c.recordings())
        for p in (c.from_party, c.to_party, *(q for leg in c.legs for q in (leg.from_party, leg.to_party)))
    }
    for number in sorted(numbers):
        by_index = {
            r
            for (r,) in query(
                archive.root, "SELECT recording_id FROM INDEX WHERE list_contains(numbers, ?)", number
            )
        }
        assert by_index == found(archive.state, Filters(number=number)), number
    # Partitions are the call's date (UTC), and a range over them matches `find --since/--until`.
    for date, call_start in query(archive.root, "SELECT date, call_start_time FROM INDEX"):
        assert str(date) == call_start.astimezone(UTC).date().isoformat()
    starts = sorted(iso(c.start) for c in calls)
    low, high = starts[len(starts) // 3], starts[2 * len(starts) // 3]
    in_range = {
        r
        for (r,) in query(
            archive.root,
            "SELECT recording_id FROM INDEX WHERE call_start_time >= ? AND call_start_time < ?",
            parse_time(low),
            parse_time(high),
        )
    }
    assert in_range and in_range == found(
        archive.state, Filters(since=parse_time(low), until=parse_time(high))
    )


EVERY_COLUMN_BUT_THE_PARTIES = (
    "SELECT recording_id, call_id, start_time, duration, direction, from_number, to_number, key, size, "
    "sha256, content_type FROM INDEX"
)


def test_index_rebuild_from_the_sidecars_gives_the_same_rows(archive: Archive) -> None:
    before = sorted(query(archive.root, EVERY_COLUMN_BUT_THE_PARTIES))
    numbers_before = dict(query(archive.root, "SELECT recording_id, numbers FROM INDEX"))
    old_parts = sorted((archive.root / "_index").rglob("*.jsonl.gz"))
    done = run_subprocess(archive.env, "index", "rebuild")
    assert done.returncode == 0, done.stderr[-1000:]
    assert "old part(s) removed" in done.stdout
    new_parts = sorted((archive.root / "_index").rglob("*.jsonl.gz"))
    assert not set(old_parts) & set(new_parts)
    assert all("/rebuild-" in str(p) for p in new_parts)
    assert sorted(query(archive.root, EVERY_COLUMN_BUT_THE_PARTIES)) == before
    # A sidecar holds the record it was archived from: the parties of an internal call's other record
    # (logged once per extension) are the state's and the run-written index's only.
    by_recording = archive.emulator.state.data.calls_by_recording
    for recording_id, numbers in query(archive.root, "SELECT recording_id, numbers FROM INDEX"):
        if len(by_recording[recording_id]) == 1:
            assert numbers == numbers_before[recording_id], recording_id
        else:
            assert set(numbers) <= set(numbers_before[recording_id])


def test_a_recording_a_killed_run_never_indexed_is_indexed_by_the_next(archive: Archive) -> None:
    db = sqlite3.connect(archive.state)
    owed = [r for (r,) in db.execute("SELECT recording_id FROM index_listed ORDER BY recording_id LIMIT 5")]
    # As a run killed before its index flush leaves them: archived, owed, in no part.
    db.executemany("DELETE FROM index_listed WHERE recording_id = ?", [(r,) for r in owed])
    db.executemany("INSERT INTO index_owed (recording_id) VALUES (?)", [(r,) for r in owed])
    db.commit()
    db.close()
    state = StateStore(archive.state, read_only=True)
    assert state.unindexed() == owed
    state.close()
    done = run_subprocess(archive.env, "run", "--since", SINCE)
    assert done.returncode == 0
    state = StateStore(archive.state, read_only=True)
    assert state.unindexed() == []
    state.close()
    listed = query(archive.root, "SELECT recording_id, count(*) FROM INDEX GROUP BY 1 HAVING count(*) > 1")
    assert sorted(r for r, _ in listed) == owed  # listed again by the second run's part


def test_the_athena_table_declares_the_index_columns() -> None:
    """deploy/athena/recordings.sql must not drift from what the index files hold."""
    import re

    from archiver.index_files import COLUMNS

    sql = (ROOT / "deploy" / "athena" / "recordings.sql").read_text()
    body = sql.split("CREATE EXTERNAL TABLE IF NOT EXISTS rc_recordings (", 1)[1].split("\n)", 1)[0]
    declared = [re.sub(r"`", "", line.split()[0]) for line in body.strip().splitlines() if line.strip()]
    assert tuple(declared) == COLUMNS
    assert "projection.enabled' = 'true'" in sql and "date=${date}/" in sql
