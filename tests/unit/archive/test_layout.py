"""archive/layout.py: keys, sidecars, manifest lines and "is it already stored?", on a real folder
destination in tmp_path."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from archiver import __version__
from archiver.archive.layout import SIDECAR_CONTENT_TYPE, Layout, Stored
from archiver.destinations.local import LocalDestination
from archiver.models import ArchivedObject, Recording
from archiver.ringcentral.calllog import Found, found_in, recording_from

TEMPLATE = "{start:%Y/%m/%d}/{recording_id}.{ext}"
START = "2026-03-04T03:30:00.000Z"  # the 3rd of March in New York
AUDIO = b"ID3" + bytes(range(256)) * 8
SHA = hashlib.sha256(AUDIO).hexdigest()
ARCHIVED_AT = datetime(2026, 3, 5, 1, 2, 3, tzinfo=UTC)


def record(recording_id: str = "1000417008", *, on_leg: bool = False) -> dict[str, Any]:
    recording = {
        "id": recording_id,
        "contentUri": f"https://media.example/{recording_id}/content",
        "type": "Automatic",
    }
    leg = {
        "startTime": START,
        "duration": 42,
        "direction": "Inbound",
        "from": {"phoneNumber": "+15550001111", "name": "Leg Caller"},
        "to": {"extensionNumber": "101", "name": "Desk 101"},
        "recording": recording,
    }
    return {
        "id": "call-1",
        "sessionId": "sess-1",
        "telephonySessionId": "tel-1",
        "startTime": START,
        "duration": 60,
        "direction": "Inbound",
        "from": {"phoneNumber": "+15550009999", "name": "Record Caller"},
        "to": {"phoneNumber": "+15550002222"},
        **({"legs": [leg]} if on_leg else {"recording": recording}),
    }


def found(recording_id: str = "1000417008", *, on_leg: bool = False) -> Found:
    raw = record(recording_id, on_leg=on_leg)
    return found_in(raw, raw["legs"][0] if on_leg else None)


@pytest.fixture
def layout() -> Layout:
    return Layout(TEMPLATE, ZoneInfo("America/New_York"))


@pytest.fixture
def folder(tmp_path: Path) -> LocalDestination:
    root = tmp_path / "archive"
    root.mkdir()
    destination = LocalDestination(root.as_uri())
    destination.probe()
    return destination


def store(
    folder: LocalDestination,
    layout: Layout,
    recording: Recording,
    *,
    content_type: str = "audio/mpeg",
    metadata: dict[str, str] | None = None,
    sidecar: bytes | None = None,
) -> str:
    """Write the audio as the archiver does (metadata included unless given), and optionally a sidecar."""
    key = layout.key_for(recording, content_type)
    meta = layout.object_metadata(recording, SHA) if metadata is None else metadata
    folder.put(key, AUDIO, content_type=content_type, metadata=meta)
    if sidecar is not None:
        folder.put(layout.sidecar_key(key), sidecar, content_type=SIDECAR_CONTENT_TYPE)
    return key


def sidecar_for(layout: Layout, item: Found, key: str, **changes: Any) -> bytes:
    archived = ArchivedObject(key, "audio/mpeg", len(AUDIO), SHA)
    doc = json.loads(layout.sidecar(item.recording, (item.record, item.leg), archived, ARCHIVED_AT))
    doc.update(changes)
    return json.dumps(doc).encode()


# -- keys --------------------------------------------------------------------------------------------
def test_layout_key_is_the_template_in_the_local_day_with_the_content_types_extension(layout: Layout) -> None:
    recording = found().recording
    assert layout.key_for(recording, "audio/mpeg") == "2026/03/03/1000417008.mp3"
    assert layout.key_for(recording, "audio/x-wav; charset=binary") == "2026/03/03/1000417008.wav"
    assert layout.key_for(recording, "application/octet-stream") == "2026/03/03/1000417008.bin"
    assert Layout(TEMPLATE, ZoneInfo("UTC")).key_for(recording, "audio/mpeg") == "2026/03/04/1000417008.mp3"


def test_layout_candidate_keys_cover_every_extension_with_bin_last(layout: Layout) -> None:
    keys = layout.candidate_keys(found().recording)
    assert keys == ["2026/03/03/1000417008.mp3", "2026/03/03/1000417008.wav", "2026/03/03/1000417008.bin"]


def test_layout_sidecar_key_replaces_the_extension_and_never_equals_the_audio_key(layout: Layout) -> None:
    for key in layout.candidate_keys(found().recording):
        side = layout.sidecar_key(key)
        assert side == key.rsplit(".", 1)[0] + ".json" and side != key


def test_layout_hostile_values_stay_one_segment_inside_the_prefix() -> None:
    hostile = Layout("{from_name}/{recording_id}.{ext}", ZoneInfo("UTC"))
    raw = record("../../etc/passwd")
    raw["from"] = {"name": "../../..", "phoneNumber": "+1"}
    key = hostile.key_for(recording_from(raw, None), "audio/mpeg")
    assert ".." not in key.split("/") and not key.startswith("/") and key.count("/") == 1


def test_layout_manifest_key_and_entry() -> None:
    assert (
        Layout.manifest_key("20261202T010203Z-abcd1234", 7)
        == "_manifests/20261202T010203Z-abcd1234-00007.jsonl"
    )
    entry = Layout.manifest_entry(
        "archived", "r1", ArchivedObject("k.mp3", "audio/mpeg", 3, "ab"), call_id="c1"
    )
    assert entry == {
        "event": "archived",
        "recording_id": "r1",
        "key": "k.mp3",
        "size": 3,
        "sha256": "ab",
        "call_id": "c1",
    }


# -- the sidecar -------------------------------------------------------------------------------------
def test_layout_sidecar_document_describes_the_recording_without_ringcentral(layout: Layout) -> None:
    item = found(on_leg=True)
    key = layout.key_for(item.recording, "audio/mpeg")
    archived = ArchivedObject(key, "audio/mpeg", len(AUDIO), SHA)
    doc = json.loads(layout.sidecar(item.recording, (item.record, item.leg), archived, ARCHIVED_AT))
    assert doc["recording_id"] == "1000417008" and doc["key"] == key
    assert (doc["size"], doc["sha256"], doc["content_type"]) == (len(AUDIO), SHA, "audio/mpeg")
    assert (doc["call_id"], doc["session_id"], doc["telephony_session_id"]) == ("call-1", "sess-1", "tel-1")
    assert doc["start_time"] == START and doc["archived_at"] == "2026-03-05T01:02:03.000Z"
    assert doc["from"]["name"] == "Leg Caller"  # the leg's parties: it is the leg's recording
    assert doc["to"] == {"extensionNumber": "101", "name": "Desk 101"}
    assert doc["call_log_record"]["id"] == "call-1" and doc["call_log_leg"]["recording"]["id"] == "1000417008"
    assert doc["archiver_version"] == __version__


def test_layout_sidecar_of_a_top_level_recording_uses_the_records_parties(layout: Layout) -> None:
    item = found()
    archived = ArchivedObject("k.mp3", "audio/mpeg", 1, SHA)
    doc = json.loads(layout.sidecar(item.recording, (item.record, None), archived, ARCHIVED_AT))
    assert doc["from"]["name"] == "Record Caller" and doc["call_log_leg"] is None


# -- is it already stored? ---------------------------------------------------------------------------
def test_layout_find_stored_with_a_sidecar(layout: Layout, folder: LocalDestination) -> None:
    item = found()
    recording = item.recording
    key = layout.key_for(recording, "audio/mpeg")
    store(folder, layout, recording, sidecar=sidecar_for(layout, item, key))
    assert layout.find_stored(folder, recording) == Stored(
        ArchivedObject(key, "audio/mpeg", len(AUDIO), SHA), sidecar_missing=False
    )


def test_layout_find_stored_with_metadata_only_owes_the_sidecar(
    layout: Layout, folder: LocalDestination
) -> None:
    recording = found().recording
    key = store(folder, layout, recording, content_type="audio/wav")  # killed before the sidecar
    assert layout.find_stored(folder, recording) == Stored(
        ArchivedObject(key, "audio/wav", len(AUDIO), SHA), sidecar_missing=True
    )
    assert key.endswith(".wav")  # found through the candidate keys


@pytest.mark.parametrize(
    "changes",
    [
        {"recording_id": "someone-else"},
        {"size": len(AUDIO) + 1},  # the object was cut or replaced since
        {"sha256": "0" * 64},  # disagrees with the object's own metadata
        {"sha256": None},
    ],
    ids=["other-recording", "other-size", "other-sha256", "no-sha256"],
)
def test_layout_find_stored_refuses_a_mismatching_sidecar(
    layout: Layout, folder: LocalDestination, changes: dict[str, Any]
) -> None:
    item = found()
    recording = item.recording
    key = layout.key_for(recording, "audio/mpeg")
    store(folder, layout, recording, sidecar=sidecar_for(layout, item, key, **changes))
    assert layout.find_stored(folder, recording) is None  # downloaded and uploaded again


@pytest.mark.parametrize(
    "metadata",
    [{}, {"recording-id": "someone-else", "sha256": SHA}, {"recording-id": "1000417008"}],
    ids=["none", "other-recording", "no-sha256"],
)
def test_layout_find_stored_without_a_sidecar_needs_metadata_naming_the_recording(
    layout: Layout, folder: LocalDestination, metadata: dict[str, str]
) -> None:
    recording = found().recording
    store(folder, layout, recording, metadata=metadata)
    assert layout.find_stored(folder, recording) is None


def test_layout_find_stored_nothing_there(layout: Layout, folder: LocalDestination) -> None:
    assert layout.find_stored(folder, found().recording) is None


@pytest.mark.parametrize("body", [b"not json {", b"[1, 2, 3]"], ids=["not-json", "not-an-object"])
def test_layout_an_unreadable_sidecar_falls_back_to_the_objects_metadata(
    layout: Layout, folder: LocalDestination, body: bytes
) -> None:
    recording = found().recording
    key = store(folder, layout, recording, sidecar=body)
    assert Layout.read_sidecar(folder, layout.sidecar_key(key)) is None
    assert layout.find_stored(folder, recording) == Stored(
        ArchivedObject(key, "audio/mpeg", len(AUDIO), SHA), sidecar_missing=True
    )
