"""A recording's fields are declared once (models.Recording): the state's columns and row mapping, the key
template's placeholders, the key's values and the sidecar follow from them, on a real SQLite file.

"Adding a call-log field is one edit plus a migration" is shown with a Recording extended by one field:
it reaches every derived list without an edit anywhere else."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import field, fields, make_dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from archiver.archive.layout import Layout, key_values
from archiver.keys import PLACEHOLDERS, placeholders_of
from archiver.models import ArchivedObject, Recording, roles
from archiver.state import StateStore
from archiver.state.columns import RECORDING_COLUMNS, columns_of, insert_sql, names_of, recording_of, values
from tests.integration.test_state import record, ref

RETENTION = timedelta(days=90)
ARCHIVED = ArchivedObject("2026/11/27/r1.mp3", "audio/mpeg", 10, "ab" * 32)


def extended(*extra: tuple[str, type, Any]) -> type[Recording]:
    """Recording with more fields, as a contributor would add them."""
    return make_dataclass("Extended", list(extra), bases=(Recording,), frozen=True)


def whole(cls: type[Recording], **extra: object) -> Recording:
    """r1's recording as `cls`, with the extra fields' values."""
    base = ref("r1").recording
    return cls(**{f.name: getattr(base, f.name) for f in fields(Recording)}, **extra)


def sidecar_of(recording: Recording) -> dict[str, Any]:
    layout = Layout("{recording_id}.{ext}", ZoneInfo("UTC"))
    return dict(json.loads(layout.sidecar(recording, (record("r1"), None), ARCHIVED, recording.start)))


def columns_in(path: Path) -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {row[1] for row in db.execute("PRAGMA table_info(recordings)")}


def test_recording_fields_every_field_has_its_column_in_a_migrated_state(tmp_path: Path) -> None:
    StateStore(tmp_path / "state.db").close()
    missing = set(RECORDING_COLUMNS) - columns_in(tmp_path / "state.db")
    assert not missing, f"Recording fields without a column (write their migration): {sorted(missing)}"


def test_recording_fields_a_row_read_back_is_the_whole_recording_and_its_object(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    found = ref("r1")
    store.note_found([found], "run-1")
    row = store.get("r1")
    assert row is not None and row.recording == found.recording and row.archived is None
    store.mark_archived("r1", ARCHIVED)
    row = store.get("r1")
    assert row is not None and row.archived == ARCHIVED
    assert (row.key, row.content_type, row.size, row.sha256) == (
        "2026/11/27/r1.mp3",
        "audio/mpeg",
        10,
        "ab" * 32,
    )


def test_recording_fields_a_new_field_reaches_the_columns_the_row_the_key_and_the_sidecar(
    tmp_path: Path,
) -> None:
    cls = extended(("queue_name", str, field()))
    recording = whole(cls, queue_name="Sales")
    assert names_of(cls) == (*RECORDING_COLUMNS[:-1], "queue_name", "deadline")
    # The migration a contributor writes, then the state's own INSERT and row mapping, derived.
    StateStore(tmp_path / "state.db").close()
    with closing(sqlite3.connect(tmp_path / "state.db")) as db:
        db.row_factory = sqlite3.Row
        db.execute("ALTER TABLE recordings ADD COLUMN queue_name TEXT NOT NULL DEFAULT ''")
        names = (*names_of(cls), "status", "first_seen", "updated_at")
        db.execute(insert_sql(names), (*values(recording, RETENTION, names_of(cls)), "pending", "x", "x"))
        row = db.execute("SELECT * FROM recordings").fetchone()
    assert row["queue_name"] == "Sales" and recording_of(row, cls) == recording
    # The key template may name it, and the sidecar carries it.
    assert "queue_name" in placeholders_of(cls) and "queue_name" not in PLACEHOLDERS
    assert key_values(recording, "mp3")["queue_name"] == "Sales"
    assert sidecar_of(recording)["queue_name"] == "Sales"


def test_recording_fields_roles_rename_the_column_and_keep_a_field_out_of_the_key_and_the_sidecar() -> None:
    cls = extended(
        ("queue_name", str, field(metadata=roles(stored_as="queue", placeholder=False, sidecar=False)))
    )
    recording = whole(cls, queue_name="Sales")
    assert "queue" in names_of(cls) and "queue_name" not in names_of(cls)
    assert "queue_name" not in placeholders_of(cls) and "queue_name" not in key_values(recording, "mp3")
    doc = sidecar_of(recording)
    assert "queue_name" not in doc and "queue" not in doc


def test_recording_fields_today_s_lists_are_the_ones_the_code_used_to_spell_out() -> None:
    """What the derivation replaced, listed once more: the key's placeholders and the sidecar's fields."""
    expected = (
        "recording_id call_id session_id telephony_session_id start direction from_number to_number "
        "from_name to_name extension_id ext"
    )
    assert placeholders_of(Recording) == PLACEHOLDERS == set(expected.split())
    doc = sidecar_of(ref("r1").recording)
    carried = (
        "recording_id call_id session_id telephony_session_id recording_type start_time duration direction"
    )
    assert set(carried.split()) <= set(doc)
    assert not {"from_number", "content_uri", "on_leg_only", "retention_start", "start"} & set(doc)


def test_recording_fields_a_type_without_a_column_encoding_is_refused() -> None:
    cls = extended(("score", float, field()))
    with pytest.raises(TypeError, match=r"Recording.score: .*float.* _CODECS"):
        columns_of(cls)
