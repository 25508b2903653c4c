"""`rc-archiver find` against an archive the archiver wrote from the emulator over HTTP.

The expected answers come from the emulator's own call data (every party of the record and of each leg),
never from the state, so a party the state failed to record (a transfer's target, only on its leg; the
second record of an internal call) shows as a missing recording.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from archiver.emulator import DataOptions
from archiver.emulator.data import Call, Party, iso
from archiver.find import find
from archiver.models import parse_time
from archiver.state import MIGRATIONS, SCHEMA_VERSION, StateStore
from archiver.state.parties import Filters
from archiver.state.party_tables import add_find_tables
from tests.helpers import ArchivedFolder as Archive
from tests.helpers import archived_folder, run_subprocess
from tests.integration.older_states import back_to_schema_6

DATA = DataOptions(
    seed=11, calls=80, days=3, bytes_per_second=40, transfer_fraction=0.2, internal_fraction=0.1
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    with archived_folder(tmp_path_factory.mktemp("find"), DATA) as archived:
        yield archived


def _parties(call: Call) -> list[Party]:
    return [call.from_party, call.to_party, *(p for leg in call.legs for p in (leg.from_party, leg.to_party))]


def expected(archive: Archive, match: object) -> set[str]:
    """Recordings of every call (and every record of it) that `match(call, parties)` accepts."""
    found = {
        rec.id
        for call in archive.emulator.state.data.calls
        if match(call, _parties(call))  # type: ignore[operator]
        for rec in call.recordings()
    }
    return found & archive.archived


def found(archive: Archive, filters: Filters) -> set[str]:
    state = StateStore(archive.state, read_only=True)
    try:
        ids = [entry["recording_id"] for entry in find(state, filters)]
    finally:
        state.close()
    assert len(ids) == len(set(ids)), "a recording listed twice"
    return set(ids)


def transfer_target(archive: Archive) -> tuple[Call, Party]:
    """A transferred call whose transfer target is a party on its transfer leg only."""
    for call in archive.emulator.state.data.calls:
        for leg in call.legs:
            if leg.leg_type == "TransferCall" and leg.to_party not in (call.from_party, call.to_party):
                return call, leg.to_party
    raise AssertionError("the data has no transferred call")


def test_find_number_matches_a_leg_only_party_in_both_forms(archive: Archive) -> None:
    call, target = transfer_target(archive)
    want = expected(archive, lambda c, parties: target.phone_number in {p.phone_number for p in parties})
    assert {r.id for r in call.recordings()} <= want and len(want) >= 2  # the record's and the leg's
    national = target.phone_number.removeprefix("+1")
    for form in (target.phone_number, national, f"({national[:3]}) {national[3:6]}-{national[6:]}"):
        done = run_subprocess(archive.env, "find", "--number", form, "--json")
        assert done.returncode == 0, done.stderr[-1000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert {line["recording_id"] for line in lines} == want, form
        assert all("url" not in line for line in lines)  # never without --url


def test_find_number_matches_every_number_of_the_account(archive: Archive) -> None:
    numbers = {p.phone_number for call in archive.emulator.state.data.calls for p in _parties(call)}
    assert len(numbers) > 50
    for number in sorted(numbers):
        want = expected(archive, lambda c, parties, n=number: n in {p.phone_number for p in parties})
        assert found(archive, Filters(number=number)) == want, number
        assert found(archive, Filters(number=number.removeprefix("+1"))) == want, number


def test_find_by_extension_name_direction_and_range(archive: Archive) -> None:
    calls = archive.emulator.state.data.calls
    _, target = transfer_target(archive)
    assert target.extension_number
    ext = expected(
        archive, lambda c, parties: target.extension_number in {p.extension_number for p in parties}
    )
    assert ext and found(archive, Filters(extension=target.extension_number)) == ext
    name = expected(archive, lambda c, parties: any("lovelace" in p.name.lower() for p in parties))
    assert name and found(archive, Filters(name="LoveLace")) == name
    starts = sorted(iso(c.start) for c in calls)
    low, high = starts[len(starts) // 4], starts[3 * len(starts) // 4]
    window = expected(archive, lambda c, parties: low <= iso(c.start) < high)
    got = found(archive, Filters(since=parse_time(low), until=parse_time(high)))
    assert window and got == window and got != archive.archived


def test_find_by_direction_splits_the_archive(archive: Archive) -> None:
    state = StateStore(archive.state, read_only=True)
    try:
        inbound = {e["recording_id"]: e["direction"] for e in find(state, Filters(direction="inbound"))}
        outbound = {e["recording_id"]: e["direction"] for e in find(state, Filters(direction="Outbound"))}
    finally:
        state.close()
    assert set(inbound.values()) == {"Inbound"} and set(outbound.values()) == {"Outbound"}
    assert set(inbound) | set(outbound) == archive.archived and not set(inbound) & set(outbound)


def test_find_by_call_id_and_session_id(archive: Archive) -> None:
    call, _ = transfer_target(archive)
    want = {r.id for r in call.recordings()} & archive.archived
    assert found(archive, Filters(call_id=call.id)) == want
    assert found(archive, Filters(session_id=call.telephony_session_id)) >= want


def test_find_table_on_a_terminal_and_bad_input(archive: Archive) -> None:
    call, target = transfer_target(archive)
    done = run_subprocess(archive.env, "find", "--number", target.phone_number)
    assert done.returncode == 0
    assert done.stdout.splitlines()[0].startswith("call start (UTC)")
    assert all(r.id in done.stdout for r in call.recordings())
    assert "http" not in done.stdout
    short = run_subprocess(archive.env, "find", "--number", "555")
    assert short.returncode == 2 and "at least 7 digits" in short.stderr
    backwards = run_subprocess(archive.env, "find", "--since", "2026-03-02", "--until", "2026-03-01")
    assert backwards.returncode == 2


def test_find_json_carries_the_fields(archive: Archive) -> None:
    done = run_subprocess(archive.env, "find", "--since", "2000-01-01", "--json")
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert {line["recording_id"] for line in lines} == archive.archived
    for field in (
        "recording_id",
        "call_id",
        "start_time",
        "duration",
        "direction",
        "from",
        "to",
        "key",
        "size",
    ):
        assert all(field in line for line in lines), field
    assert all(len(line["sha256"]) == 64 for line in lines)


def test_migration_fills_the_parties_from_the_stored_records(archive: Archive, tmp_path: Path) -> None:
    """A state of the schema before issue 20's migration gains the same answers from `source_json`."""
    copy = tmp_path / "old.db"
    state = StateStore(archive.state, read_only=True)
    state.snapshot(copy)
    state.close()
    position = MIGRATIONS.index(add_find_tables)
    assert position == SCHEMA_VERSION - 2, "later migrations: undo them here too"
    back_to_schema_6(copy)  # schema 7: the raw records back in the rows
    db = sqlite3.connect(copy)
    for table in ("parties", "index_listed", "index_owed", "holds", "held_objects"):
        db.execute(f"DROP TABLE {table}")
    db.execute("DROP INDEX recordings_call_start")
    db.execute(f"PRAGMA user_version = {position}")
    db.commit()
    db.close()
    migrated = StateStore(copy)  # migrates
    try:
        assert migrated.schema_version == SCHEMA_VERSION
    finally:
        migrated.close()
    _, target = transfer_target(archive)
    moved = replace(archive, state=copy)
    assert found(moved, Filters(number=target.phone_number)) == found(
        archive, Filters(number=target.phone_number)
    )
    # A row keeps the one record it was first seen on: a party only on an internal call's other record
    # (the call is logged once per extension) is known to a migrated row once a scan sees that record.
    before, after = found(moved, Filters(name="lovelace")), found(archive, Filters(name="lovelace"))
    by_recording = archive.emulator.state.data.calls_by_recording
    assert before <= after and all(len(by_recording[r]) == 2 for r in after - before)
    assert len(before) > len(after) / 2


@pytest.mark.parametrize(
    ("raw", "digits"),
    [
        ("+16505550100", "16505550100"),
        ("+1 (650) 555-0100", "16505550100"),
        ("6505550100", "16505550100"),  # a 10-digit national number: North American
        ("16505550100", "16505550100"),
        ("+442071234567", "442071234567"),
        ("02071234567", "02071234567"),  # another country's national form is kept as written
        ("101", "101"),
        ("anonymous", ""),
        ("", ""),
    ],
)
def test_normalise_number(raw: str, digits: str) -> None:
    from archiver.ringcentral.calllog import normalise_number

    assert normalise_number(raw) == digits


def test_call_parties_reads_the_record_and_every_leg_once() -> None:
    from archiver.ringcentral.calllog import Party, call_parties

    record = {
        "from": {"phoneNumber": "+16505550100", "name": "Ada"},
        "to": {"phoneNumber": "+16505550199", "extensionNumber": "101", "name": "Desk"},
        "legs": [
            {"from": {"phoneNumber": "+16505550100", "name": "Ada"}, "to": {"extensionNumber": "102"}},
            {"from": {"name": "Desk"}, "to": {"phoneNumber": "+16505550177", "name": "Grace"}},
            "not a leg",
        ],
    }
    assert call_parties(record) == (
        Party("16505550100", "", "Ada"),
        Party("16505550199", "101", "Desk"),
        Party("", "102", ""),
        Party("", "", "Desk"),
        Party("16505550177", "", "Grace"),
    )
