"""Key rendering: the archive's layout, and the guarantee that no call-log value escapes the root."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.emulator.data import HOSTILE_STRINGS
from archiver.errors import SettingsError
from archiver.keys import (
    EXTENSIONS,
    PLACEHOLDERS,
    check_key,
    extension_for,
    render_key,
    sanitise_segment,
    sidecar_key,
    unsafe_reason,
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


# -- the template is proven at load time -----------------------------------------------------------
ACCEPTED = (
    DEFAULT,
    "{recording_id}.{ext}",
    "{from_name}/{to_number}/{direction}/{call_id}-{recording_id}-{from_number}.{ext}",
    "{start:%Y-%m}/{extension_id}/{start:%d_%H%M%S}_{recording_id}.{ext}",
)


@pytest.mark.parametrize("template", ACCEPTED)
def test_keys_accepted_templates_are_valid(template: str) -> None:
    validate_template(template)


@pytest.mark.parametrize(
    "template",
    [
        "{recording_id}.json",  # the sidecar key would be the audio key: the audio is overwritten
        "{recording_id}.{ext}.json",
        "{recording_id}",
        "{recording_id}{ext}",
        "{recording_id}.{ext}/",
        "{ext}/{recording_id}",
        "{recording_id}-{from_name}",  # a caller-controlled ending could be 'json'
    ],
)
def test_keys_templates_not_ending_in_ext_are_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"must end in '\.\{ext\}'"):
        validate_template(template)


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{start:%Y}/../{recording_id}.{ext}", "segment"),
        ("../{recording_id}.{ext}", "segment"),
        ("a//{recording_id}.{ext}", "segment"),
        ("./{recording_id}.{ext}", "segment"),
        ("{start:%Y/}/{recording_id}.{ext}", "segment"),  # only strftime's output makes the '//'
        ("{start:..}/{recording_id}.{ext}", "segment"),
        ("a\\b/{recording_id}.{ext}", "character"),
        ("{start:%H:%M}/{recording_id}.{ext}", "character"),
        ("{from_name}" * 12 + "/{recording_id}.{ext}", "longer than 900 bytes"),
    ],
)
def test_keys_templates_that_could_render_unsafe_keys_are_refused(template: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        validate_template(template)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("template", ACCEPTED)
@pytest.mark.parametrize("hostile", HOSTILE_STRINGS)
def test_keys_accepted_templates_render_safe_keys_apart_from_their_sidecars(
    template: str, hostile: str
) -> None:
    # The emulator's hostile list is independent of the one keys.py probes with: a template accepted
    # by that probe must hold against these too, for every extension a recording can get.
    values = {name: hostile for name in PLACEHOLDERS} | {"recording_id": "42"}
    for ext in EXTENSIONS:
        key = render_key(template, values | {"ext": ext}, START)
        assert key.endswith(f".{ext}")
        assert sidecar_key(key) != key and sidecar_key(key).endswith(".json")


def test_keys_ext_is_never_json() -> None:
    assert "json" not in EXTENSIONS
    assert extension_for("application/json") == "bin"
    assert {extension_for(t) for t in ("audio/mpeg", "audio/wav", "text/html")} <= EXTENSIONS


def test_keys_unsafe_reason_is_empty_only_for_safe_keys() -> None:
    assert unsafe_reason("2026/03/04/123.mp3") == ""
    assert unsafe_reason("a//b.mp3") and unsafe_reason("../x") and unsafe_reason("x" * 901)
