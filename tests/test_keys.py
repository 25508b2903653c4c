"""Key rendering: the archive's layout, and the guarantee that no call-log value escapes the root."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.emulator.data import HOSTILE_STRINGS
from archiver.errors import SettingsError
from archiver.keys import (
    check_key,
    extension_for,
    render_key,
    sanitise_segment,
    sidecar_key,
    validate_template,
)

START = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
DEFAULT = "{start:%Y/%m/%d}/{recording_id}.{ext}"


def test_keys_default_template_renders_date_folders() -> None:
    assert render_key(DEFAULT, {"recording_id": "123", "ext": "mp3"}, START) == "2026/03/04/123.mp3"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("../../etc/passwd", "_.._etc_passwd"),  # dots inside a segment are harmless
        ("..", "_"),
        ("a/b\\c", "a_b_c"),
        ("ctrl\x00\x1b[31m\r\nx", "ctrl_[31m_x"),
        ("  . hidden . ", "hidden"),
        ("Zoë 名前", "Zoë 名前"),
        ("", "_"),
        ("x" * 500, "x" * 80),
    ],
)
def test_keys_sanitise_segment(value: str, expected: str) -> None:
    assert sanitise_segment(value) == expected


@pytest.mark.parametrize("hostile", HOSTILE_STRINGS)
def test_keys_hostile_values_stay_one_safe_segment_each(hostile: str) -> None:
    template = "{from_name}/{to_number}/{recording_id}-{from_number}.{ext}"
    values = {
        "from_name": hostile,
        "to_number": hostile,
        "from_number": hostile,
        "recording_id": "1",
        "ext": "mp3",
    }
    key = render_key(template, values, START)
    segments = key.split("/")
    assert len(segments) == 3
    assert not any(seg in ("", ".", "..") for seg in segments)
    assert all(ord(ch) >= 32 and ch != "\\" for ch in key)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{start:%Y}/{call_id}.{ext}", "{recording_id}"),
        ("{recording_id}/{password}", "unknown placeholders"),
        ("{recording_id!r}", "conversions"),
        ("{recording_id:>10}", "only {start}"),
        ("/{recording_id}", "relative"),
        ("{recording_id", "malformed"),
    ],
)
def test_keys_invalid_templates_are_refused(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_template(template)


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "a\\b", "a/\x01", ""])
def test_keys_check_refuses_escaping_keys(key: str) -> None:
    with pytest.raises(SettingsError):
        check_key(key)


def test_keys_literal_dots_in_a_template_cannot_escape() -> None:
    with pytest.raises(SettingsError):
        render_key("{start:%Y}/../{recording_id}", {"recording_id": "1"}, START)


@pytest.mark.parametrize(
    ("content_type", "ext"),
    [
        ("audio/mpeg", "mp3"),
        ("audio/wav", "wav"),
        ("audio/x-wav", "wav"),
        ("AUDIO/MPEG; x=1", "mp3"),
        ("x/y", "bin"),
    ],
)
def test_keys_extension_for_content_type(content_type: str, ext: str) -> None:
    assert extension_for(content_type) == ext


def test_keys_sidecar_key_replaces_the_extension() -> None:
    assert sidecar_key("2026/03/04/123.mp3") == "2026/03/04/123.json"
    assert sidecar_key("flat") == "flat.json"
