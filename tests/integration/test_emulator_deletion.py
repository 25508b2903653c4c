"""RingCentral's deletion cliff in the emulator: retention, the delete endpoint, and what follows."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
import requests

from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.emulator.data import iso
from tests.helpers import SUBSET_SPEC, token, validate

SPEC = SUBSET_SPEC
ALL_TIME = {"dateFrom": "2000-01-01T00:00:00Z"}
CAN_DELETE = "ReadCallLog ReadCallRecording EditCallLog"
DAY = 86400.0


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def delete(emu: Emulator, tok: str, body: Any) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.delete(
        f"{emu.url}/restapi/v1.0/account/~/call-recordings",
        data=data,
        headers={**auth(tok), "Content-Type": "application/json"},
        timeout=10,
    )


def content(emu: Emulator, tok: str, recording_id: str) -> requests.Response:
    url = f"{emu.media_url}/restapi/v1.0/account/~/recording/{recording_id}/content"
    return requests.get(url, headers=auth(tok), timeout=10)


def metadata(emu: Emulator, tok: str, recording_id: str) -> requests.Response:
    url = f"{emu.url}/restapi/v1.0/account/~/recording/{recording_id}"
    return requests.get(url, headers=auth(tok), timeout=10)


def listed_recordings(emu: Emulator, tok: str) -> set[str]:
    reply = requests.get(
        f"{emu.url}/restapi/v1.0/account/~/call-log",
        params={"view": "Detailed", "perPage": "max", **ALL_TIME},
        headers=auth(tok),
        timeout=10,
    )
    ids = set()
    for record in reply.json()["records"]:
        for item in [record, *record.get("legs", [])]:
            if "recording" in item:
                ids.add(item["recording"]["id"])
    return ids


def assert_gone(emu: Emulator, tok: str, recording_id: str) -> None:
    for reply in (content(emu, tok, recording_id), metadata(emu, tok, recording_id)):
        assert reply.status_code == 404
        validate("ApiErrorResponseModel", reply.json())
        assert reply.json()["errors"][0]["errorCode"] == "CMN-102"


def test_emulator_retention_deletes_content_at_call_start_plus_retention(
    emulator_factory: Callable[..., Emulator],
) -> None:
    now = [1_800_000_000.0]
    emu = emulator_factory(
        data=DataOptions(seed=4, calls=40, days=3, bytes_per_second=10),
        retention=2 * DAY,
        clock=lambda: now[0],
    )
    tok = token(emu)
    truth = {item["recordingId"]: item for item in emu.ground_truth()}
    starts = {
        rec_id: min(c.start for c in calls) for rec_id, calls in emu.state.data.calls_by_recording.items()
    }
    for rec_id, item in truth.items():
        assert item["deadline"] == iso(starts[rec_id] + 2 * DAY)
    aged = {rec_id for rec_id, start in starts.items() if start + 2 * DAY <= now[0]}
    kept = set(truth) - aged
    assert aged and kept
    for rec_id in aged:
        assert truth[rec_id]["deletedBy"] == "retention"
        assert truth[rec_id]["deletedAt"] == truth[rec_id]["deadline"]
    assert_gone(emu, tok, next(iter(aged)))
    survivor = min(kept, key=lambda r: starts[r])  # the next one to go
    assert content(emu, tok, survivor).status_code == 200
    assert truth[survivor]["deletedAt"] is None

    now[0] = starts[survivor] + 2 * DAY  # its deadline: the content is gone from this instant
    tok = token(emu)  # the clock moved past the first token's lifetime
    assert_gone(emu, tok, survivor)
    assert set(truth) <= listed_recordings(emu, tok)  # the call log keeps listing every record
    deleted = requests.get(f"{emu.url}/_emulator/deleted", timeout=10).json()["deleted"]
    # A transferred call's two recordings share the call's start, so they go together.
    assert {d["recordingId"] for d in deleted} == {
        r for r, start in starts.items() if start <= now[0] - 2 * DAY
    }
    assert survivor in {d["recordingId"] for d in deleted}
    assert [d["deletedAt"] for d in deleted] == sorted(d["deletedAt"] for d in deleted)
    assert {d["deletedBy"] for d in deleted} == {"retention"}


def test_emulator_keeps_recordings_without_retention(emulator: Emulator) -> None:
    truth = emulator.ground_truth()
    assert truth and all(item["deadline"] is None and item["deletedAt"] is None for item in truth)
    assert emulator.deleted() == []


def test_emulator_delete_endpoint_removes_content_and_keeps_the_log(
    emulator_factory: Callable[..., Emulator],
) -> None:
    # Reading A of what the log shows (U10), reading B of a batch naming a deleted id: this test
    # checks both, so it states both rather than take them from the suite's switch.
    emu = emulator_factory(
        scope=CAN_DELETE, heavy=GroupLimit(50, 60.0, 60.0), deleted_listing="kept", delete_unknown="refuse"
    )
    tok = token(emu)
    victims = sorted(emu.state.data.recordings)[:3]
    body = {"records": victims}
    validate("CallRecordingIds", body)
    reply = delete(emu, tok, body)
    assert reply.status_code == 204
    assert reply.content == b""
    assert reply.headers["X-Rate-Limit-Group"] == "heavy"  # a Heavy request
    assert reply.headers["X-Rate-Limit-Remaining"] == "49"
    for rec_id in victims:
        assert_gone(emu, tok, rec_id)
    survivor = sorted(emu.state.data.recordings)[3]
    assert content(emu, tok, survivor).status_code == 200
    assert set(victims) <= listed_recordings(emu, tok)
    stats = emu.stats.snapshot()
    assert set(stats["deleted"]) == set(victims)
    assert stats["requests"]["delete-recordings 204"] == 1
    truth = {item["recordingId"]: item for item in emu.ground_truth()}
    assert {r for r, item in truth.items() if item["deletedBy"] == "api"} == set(victims)
    assert {d["recordingId"] for d in emu.deleted()} == set(victims)
    again = delete(emu, tok, body)  # already gone: not found, as for any unknown id
    assert again.status_code == 404
    assert again.json()["errors"][0]["errorCode"] == "CMN-102"


def test_emulator_delete_endpoint_needs_edit_call_log(emulator: Emulator) -> None:
    tok = token(emulator)  # the default scope: read only
    victim = next(iter(emulator.state.data.recordings))
    reply = delete(emulator, tok, {"records": [victim]})
    assert reply.status_code == 403
    validate("ApiErrorResponseModel", reply.json())
    assert reply.json()["permissionName"] == "EditCallLog"
    assert reply.json()["errors"][0]["errorCode"] == "CMN-401"
    assert content(emulator, tok, victim).status_code == 200
    assert emulator.stats.snapshot()["deleted"] == {}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "CMN-103"),
        ({"ids": ["1"]}, 400, "CMN-101"),
        ({"records": []}, 400, "CMN-101"),
        ({"records": [1, 2]}, 400, "CMN-101"),
        ({"records": [str(n) for n in range(101)]}, 400, "CMN-101"),
        ({"records": ["no-such-recording"]}, 404, "CMN-102"),
    ],
)
def test_emulator_delete_endpoint_refuses_bad_requests_and_deletes_nothing(
    emulator_factory: Callable[..., Emulator], body: Any, status: int, code: str
) -> None:
    emu = emulator_factory(scope=CAN_DELETE, delete_unknown="refuse")  # the unknown id: reading B of U10
    tok = token(emu)
    if isinstance(body, dict) and "records" in body and len(body["records"]) > 100:
        with pytest.raises(jsonschema.ValidationError):
            validate("CallRecordingIds", body)  # the limit is the spec's own
    if isinstance(body, dict) and body.get("records") == ["no-such-recording"]:
        body = {"records": [next(iter(emu.state.data.recordings)), "no-such-recording"]}
    reply = delete(emu, tok, body)
    assert reply.status_code == status
    schema = "ParameterizedErrorResponseModel" if status == 400 else "ApiErrorResponseModel"
    validate(schema, reply.json())
    assert reply.json()["errors"][0]["errorCode"] == code
    assert emu.stats.snapshot()["deleted"] == {}
    assert emu.deleted() == []


def test_emulator_delete_endpoint_counts_in_heavy(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(scope=CAN_DELETE, heavy=GroupLimit(2, 60.0, 60.0), media_group="heavy")
    tok = token(emu)
    ids = sorted(emu.state.data.recordings)
    assert delete(emu, tok, {"records": ids[:1]}).status_code == 204
    assert content(emu, tok, ids[1]).status_code == 200
    refused = delete(emu, tok, {"records": ids[2:3]})
    assert refused.status_code == 429
    assert content(emu, tok, ids[2]).status_code == 429  # same budget
    assert set(emu.stats.snapshot()["deleted"]) == {ids[0]}


def call_log_records(emu: Emulator, tok: str, **params: str) -> list[dict[str, Any]]:
    reply = requests.get(
        f"{emu.url}/restapi/v1.0/account/~/call-log",
        params={"view": "Detailed", "perPage": "max", **ALL_TIME, **params},
        headers=auth(tok),
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    records: list[dict[str, Any]] = reply.json()["records"]
    return records


def shown_on(records: list[dict[str, Any]], recording_id: str) -> list[str]:
    """Where the log shows a recording: "<call id>" for a record, "<call id>/leg<n>" for a leg."""
    places = []
    for record in records:
        if record.get("recording", {}).get("id") == recording_id:
            places.append(record["id"])
        for n, leg in enumerate(record.get("legs", [])):
            if leg.get("recording", {}).get("id") == recording_id:
                places.append(f"{record['id']}/leg{n}")
    return places


SHAPES = DataOptions(seed=3, calls=120, days=3, bytes_per_second=10, transfer_fraction=0.3)


@pytest.mark.parametrize("listing", ["kept", "dropped"])
def test_emulator_deleted_recording_in_the_call_log_under_both_readings(
    emulator_factory: Callable[..., Emulator], listing: str
) -> None:
    emu = emulator_factory(
        scope=CAN_DELETE,
        data=SHAPES,
        deleted_listing=listing,
        media_group="heavy",
        filter_top_level_only=False,  # reading A of U1: the filter below also sees leg recordings
    )
    tok = token(emu)
    # A transferred call: its own recording is on the record and a leg, the second one only on a leg.
    call = next(
        c
        for c in emu.state.data.calls
        if c.recording is not None and len(c.recordings()) == 2 and emu.state.visible(c, emu.config.clock())
    )
    own, second = call.recordings()
    before = call_log_records(emu, tok)
    own_places, second_places = shown_on(before, own.id), shown_on(before, second.id)
    assert call.id in own_places and any("/leg" in p for p in own_places)
    assert second_places and all("/leg" in p for p in second_places)

    assert delete(emu, tok, {"records": [own.id]}).status_code == 204
    after = call_log_records(emu, tok)
    assert call.id in {r["id"] for r in after}  # the call itself is listed under both readings
    assert shown_on(after, second.id) == second_places  # what was not deleted is untouched
    filtered = {r["id"] for r in call_log_records(emu, tok, recordingType="All")}
    assert call.id in filtered  # its second recording still makes it match
    if listing == "kept":
        assert shown_on(after, own.id) == own_places
        assert_gone(emu, tok, own.id)  # listed, but its content answers 404 CMN-102
    else:
        assert shown_on(after, own.id) == []  # gone from the record and from its leg
    for record in after:
        validate("CallLogRecord", record)  # a record without its recording is still a valid record

    assert delete(emu, tok, {"records": [second.id]}).status_code == 204
    filtered = {r["id"] for r in call_log_records(emu, tok, recordingType="All")}
    # The filter sees what the record shows: with nothing left on it, it no longer matches under B.
    assert (call.id in filtered) == (listing == "kept")
    assert call.id in {r["id"] for r in call_log_records(emu, tok)}


def test_emulator_deleted_listing_drops_only_api_deletions(emulator_factory: Callable[..., Emulator]) -> None:
    now = [1_800_000_000.0]
    emu = emulator_factory(
        data=DataOptions(seed=4, calls=40, days=3, bytes_per_second=10),
        retention=2 * DAY,
        clock=lambda: now[0],
        deleted_listing="dropped",
    )
    aged = {item["recordingId"] for item in emu.ground_truth() if item["deletedBy"] == "retention"}
    assert aged
    # U10 is about the delete endpoint: what retention removed stays on its record under both readings.
    assert aged <= listed_recordings(emu, token(emu))


def test_emulator_delete_unknown_ignore_deletes_the_ones_that_exist(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(scope=CAN_DELETE, delete_unknown="ignore", media_group="heavy")
    tok = token(emu)
    ids = sorted(emu.state.data.recordings)
    assert delete(emu, tok, {"records": ids[:1]}).status_code == 204
    batch = [ids[0], "no-such-recording", ids[1], ids[2], ids[1]]  # deleted, unknown, two new, repeated
    reply = delete(emu, tok, {"records": batch})
    assert reply.status_code == 204 and reply.content == b""
    for rec_id in ids[:3]:
        assert_gone(emu, tok, rec_id)
    assert content(emu, tok, ids[3]).status_code == 200
    stats = emu.stats.snapshot()
    assert set(stats["deleted"]) == set(ids[:3])
    assert stats["requests"]["delete-recordings 204"] == 2
    assert [d["recordingId"] for d in emu.deleted()] == sorted(ids[:3], key=lambda r: stats["deleted"][r])
    assert {d["deletedBy"] for d in emu.deleted()} == {"api"}


def test_emulator_delete_unknown_refuse_deletes_nothing(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(scope=CAN_DELETE, delete_unknown="refuse", media_group="heavy")
    tok = token(emu)
    ids = sorted(emu.state.data.recordings)
    assert delete(emu, tok, {"records": ids[:1]}).status_code == 204
    refused = delete(emu, tok, {"records": [ids[1], ids[0]]})  # one already deleted
    assert refused.status_code == 404
    validate("ApiErrorResponseModel", refused.json())
    assert refused.json()["errors"][0]["errorCode"] == "CMN-102"
    assert content(emu, tok, ids[1]).status_code == 200  # not deleted
    assert set(emu.stats.snapshot()["deleted"]) == {ids[0]}
    assert [d["recordingId"] for d in emu.deleted()] == [ids[0]]


def test_emulator_delete_fault_misroute_answers_404_and_deletes_nothing(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(scope=CAN_DELETE, delete_fault="misroute", media_group="heavy")
    tok = token(emu)
    victims = sorted(emu.state.data.recordings)[:3]
    for _ in range(2):
        reply = delete(emu, tok, {"records": victims})
        assert reply.status_code == 404
        validate("ApiErrorResponseModel", reply.json())
        assert reply.json()["errors"][0]["errorCode"] == "CMN-102"
    for rec_id in victims:
        assert content(emu, tok, rec_id).status_code == 200  # still served: nothing was deleted
    stats = emu.stats.snapshot()
    assert stats["deleted"] == {} and emu.deleted() == []
    assert stats["requests"]["delete-recordings 404"] == 2
    assert all(item["deletedAt"] is None for item in emu.ground_truth())


@pytest.mark.parametrize(("asked", "deleted"), [(1, 1), (2, 1), (5, 2), (100, 50)])
def test_emulator_delete_fault_partial_deletes_the_first_half_and_answers_207(
    emulator_factory: Callable[..., Emulator], asked: int, deleted: int
) -> None:
    emu = emulator_factory(
        scope=CAN_DELETE,
        delete_fault="partial",
        data=DataOptions(seed=11, calls=130, days=3, bytes_per_second=10),
        media_group="heavy",
    )
    tok = token(emu)
    ids = sorted(emu.state.data.recordings)[:asked]
    assert len(ids) == asked
    reply = delete(emu, tok, {"records": ids})
    assert reply.status_code == 207
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {
        "records": [{"id": i, "status": 204} for i in ids[:deleted]]
        + [
            {"id": i, "status": 500, "errorCode": "CMN-500", "message": "Recording was not deleted"}
            for i in ids[deleted:]
        ]
    }
    assert_gone(emu, tok, ids[0])
    if deleted < asked:
        assert content(emu, tok, ids[-1]).status_code == 200
    stats = emu.stats.snapshot()
    assert set(stats["deleted"]) == set(ids[:deleted])
    assert {d["recordingId"] for d in emu.deleted()} == set(ids[:deleted])
    assert stats["requests"]["delete-recordings 207"] == 1


def test_emulator_delete_fault_lost_deletes_and_never_answers(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(
        scope=CAN_DELETE, delete_fault="lost", delete_unknown="refuse", media_group="heavy"
    )
    tok = token(emu)
    victims = sorted(emu.state.data.recordings)[:3]
    with requests.Session() as session:
        url = f"{emu.url}/restapi/v1.0/account/~/call-recordings"
        assert session.get(f"{emu.url}/_emulator/stats", timeout=10).status_code == 200  # a live connection
        with pytest.raises(requests.ConnectionError):
            session.delete(url, json={"records": victims}, headers=auth(tok), timeout=10)
        # The retry RingCentral then gets names ids it no longer has: under "refuse", a 404 that is
        # lost as well; nothing more is deleted, nothing is counted twice.
        with pytest.raises(requests.ConnectionError):
            session.delete(url, json={"records": victims}, headers=auth(tok), timeout=10)
        assert session.get(f"{emu.url}/_emulator/stats", timeout=10).status_code == 200  # served again
    for rec_id in victims:
        assert_gone(emu, tok, rec_id)
    stats = emu.stats.snapshot()
    assert set(stats["deleted"]) == set(victims)
    assert {d["recordingId"] for d in emu.deleted()} == set(victims)
    assert {k: n for k, n in stats["requests"].items() if k.startswith("delete-recordings")} == {
        "delete-recordings lost": 2
    }
