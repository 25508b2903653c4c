"""Object keys: the only place the archive's layout is defined.

A key is the rendered RC_ARCHIVER_KEY_TEMPLATE. Every value substituted into it comes from the call
log, which may hold anything ('../', '/', '\\', control characters, huge strings), so each value is
sanitised to a single safe path segment, and the finished key is checked once more: it can never
escape the destination's prefix or root.

The template itself is proven at load time (`validate_template`): it is rendered with hostile values in
every placeholder, and refused if any rendering could escape the prefix, hold an empty or `..` segment,
grow too long, or collide with its sidecar. The template must end in `.{ext}`; the sidecar key is the key
with that `.{ext}` replaced by `.json`, and `ext` is never `json` (see EXTENSIONS), so an audio key and a
sidecar key can never be the same.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from archiver.errors import SettingsError
from archiver.models import Recording, placeholder_names


def placeholders_of(recording: type[Recording]) -> frozenset[str]:
    """What a key template may name: the recording's fields marked so (models.Recording), and {ext}."""
    return frozenset({*placeholder_names(recording), "ext"})


PLACEHOLDERS = placeholders_of(Recording)
MAX_SEGMENT = 80
MAX_KEY = 900  # S3 allows 1024 bytes; leave room for a prefix
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\:*?\"<>|]+")
_EXTENSIONS = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
}


_UNKNOWN_EXTENSION = "bin"
# Every value `{ext}` can take. Never "json": that is the sidecar's, and the two must not collide.
EXTENSIONS = frozenset(_EXTENSIONS.values()) | {_UNKNOWN_EXTENSION}
# What a call log may hold at its worst, tried in every placeholder before a template is accepted. A
# small list of our own (inspired by the emulator's): the archiver never imports its test double.
HOSTILE_VALUES = (
    "1234567890",  # first, so an error shows the template's own fault with a plain value
    "",
    ".",
    "..",
    "../../../../etc/passwd",
    "/absolute/path",
    "back\\slash\\..\\..\\windows",
    "ctrl\x00nul\x1b[31mred\x07bell\r\nnewline",
    "x" * 3000,
    "Zoë 名前 🎧 Ñandú",
    " . ",
    "%2e%2e%2f%2e%2e%2f",
    "CON",
    "json",
)
# Call starts tried for {start:...}: a two-digit and a one-digit day and month, both ends of a year.
_PROBE_STARTS = (
    datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2027, 1, 2, 3, 4, 5, tzinfo=UTC),
)


def extension_for(content_type: str) -> str:
    """mp3 for audio/mpeg, wav for audio/wav (and its aliases), else 'bin'."""
    return _EXTENSIONS.get(content_type.split(";", maxsplit=1)[0].strip().lower(), _UNKNOWN_EXTENSION)


def validate_template(template: str) -> None:
    """Raise ValueError unless every key the template can render is safe, unique and not a sidecar's.

    Checked once, at load time, so a bad template stops the run before anything happens instead of
    failing (and being charged to) every recording.
    """
    _check_syntax(template)
    for key in _probe_renderings(template):
        reason = unsafe_reason(key)
        if reason.startswith("longer"):
            raise ValueError(
                f"the key template can render keys {reason} when call-log values are long; "
                f"use fewer placeholders (each value may take up to {MAX_SEGMENT} characters)"
            )
        if reason:
            raise ValueError(
                f"the key template can render an unsafe key ({reason}), e.g. {key[:80]!r}; "
                "use placeholders for variable parts and keep literal text free of '..', '//' and '\\'"
            )
        if sidecar_key(key) == key:  # unreachable while the template ends in .{ext}; kept as a guard
            raise ValueError(f"the key template renders {key[:80]!r}, which is also its sidecar's key")


def _check_syntax(template: str) -> None:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"key template is malformed: {exc}") from None
    fields = [(name, spec, conv) for _, name, spec, conv in parsed if name is not None]
    names = {name for name, _, _ in fields}
    unknown = sorted(names - PLACEHOLDERS)
    if unknown:
        raise ValueError(f"unknown placeholders {unknown}; known: {', '.join(sorted(PLACEHOLDERS))}")
    if "recording_id" not in names:
        raise ValueError("the key template must contain {recording_id}, or two recordings could share a key")
    for name, spec, conv in fields:
        if conv:
            raise ValueError(f"conversions such as !{conv} are not allowed in the key template")
        if spec and name != "start":
            raise ValueError(f"only {{start}} takes a format, not {{{name}:{spec}}}")
    if template.startswith("/"):
        raise ValueError("the key template must be relative (no leading '/')")
    literal, last, spec, _ = parsed[-1]
    if last != "ext" or spec or not literal.endswith("."):
        # The sidecar is the key with .{ext} replaced by .json; any other ending could make the audio
        # key and its sidecar's the same (e.g. '{recording_id}.json'), and the sidecar would overwrite it.
        raise ValueError(
            "the key template must end in '.{ext}' (e.g. '{start:%Y/%m/%d}/{recording_id}.{ext}'), "
            "so a recording's key can never be its sidecar's (.json)"
        )


def _probe_renderings(template: str) -> Iterator[str]:
    """The template rendered with a plain value, then hostile ones, in every placeholder at once."""
    for start in _PROBE_STARTS:
        for value in HOSTILE_VALUES:
            for ext in sorted(EXTENSIONS):
                values = {name: value for name in PLACEHOLDERS if name not in ("start", "ext")}
                safe = {name: sanitise_segment(raw) for name, raw in values.items()}
                try:
                    yield template.format(start=start, ext=ext, **safe)
                except (KeyError, ValueError, IndexError) as exc:
                    raise ValueError(f"the key template cannot be rendered: {exc}") from None


def sanitise_segment(value: object) -> str:
    """One safe path segment: no separators, no control characters, no dot-only names, bounded."""
    text = unicodedata.normalize("NFC", str(value))
    text = _UNSAFE.sub("_", text).strip(" .")
    if len(text) > MAX_SEGMENT:
        text = text[:MAX_SEGMENT].rstrip(" .")
    return text or "_"


def render_key(template: str, values: Mapping[str, object], start: datetime) -> str:
    """Render the template with sanitised values; {start:<strftime>} formats the call's start time."""
    safe = {name: sanitise_segment(values.get(name) or "") for name in PLACEHOLDERS if name != "start"}
    try:
        key = template.format(start=start, **safe)
    except (KeyError, ValueError, IndexError) as exc:
        raise SettingsError(
            f"RC_ARCHIVER_KEY_TEMPLATE cannot be rendered: {exc}", hint="fix the template"
        ) from None
    return check_key(key)


def check_key(key: str) -> str:
    """The last line of defence: a key that could escape the root is refused, never written."""
    reason = unsafe_reason(key)
    if reason:
        raise SettingsError(
            f"RC_ARCHIVER_KEY_TEMPLATE renders an unsafe key {key[:120]!r} ({reason})",
            hint="use placeholders for variable parts and keep literal text free of '..', '//' and '\\'",
        )
    return key


def unsafe_reason(key: str) -> str:
    """Why a key is unsafe to write ('' when it is safe)."""
    if not key:
        return "empty"
    if key.startswith("/"):
        return "absolute"
    if any(seg in ("", ".", "..") for seg in key.split("/")):
        return "an empty, '.' or '..' segment"
    if "\\" in key or _UNSAFE.sub("", key.replace("/", "")) != key.replace("/", ""):
        return 'a character keys may not hold: \\ : * ? " < > | or a control character'
    if len(key.encode()) > MAX_KEY:
        return f"longer than {MAX_KEY} bytes"
    return ""


def sidecar_key(audio_key: str) -> str:
    """The key with its `.{ext}` replaced by `.json` (`<key without extension>.json`)."""
    head, slash, name = audio_key.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}{slash}{stem}.json"
