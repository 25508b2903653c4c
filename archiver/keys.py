"""Object keys: the only place the archive's layout is defined.

A key is the rendered RC_ARCHIVER_KEY_TEMPLATE. Every value substituted into it comes from the call
log, which may hold anything ('../', '/', '\\', control characters, huge strings), so each value is
sanitised to a single safe path segment, and the finished key is checked once more: it can never
escape the destination's prefix or root.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from datetime import datetime

from archiver.errors import SettingsError

PLACEHOLDERS = frozenset(
    {
        "recording_id",
        "call_id",
        "session_id",
        "telephony_session_id",
        "start",
        "direction",
        "from_number",
        "to_number",
        "from_name",
        "to_name",
        "extension_id",
        "ext",
    }
)
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


def extension_for(content_type: str) -> str:
    """mp3 for audio/mpeg, wav for audio/wav (and its aliases), else 'bin'."""
    return _EXTENSIONS.get(content_type.split(";", maxsplit=1)[0].strip().lower(), "bin")


def validate_template(template: str) -> None:
    """Raise ValueError unless the template is renderable and names {recording_id}."""
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
    segments = key.split("/")
    if (
        not key
        or key.startswith("/")
        or any(seg in ("", ".", "..") for seg in segments)
        or "\\" in key
        or _UNSAFE.sub("", key.replace("/", "")) != key.replace("/", "")
        or len(key.encode()) > MAX_KEY
    ):
        raise SettingsError(
            f"RC_ARCHIVER_KEY_TEMPLATE renders an unsafe key {key[:120]!r}",
            hint="use placeholders for variable parts and keep literal text free of '..', '//' and '\\'",
        )
    return key


def sidecar_key(audio_key: str) -> str:
    """`<key without extension>.json`."""
    head, slash, name = audio_key.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}{slash}{stem}.json"
