"""`rc-archiver find`: which archived recordings involve a number, an extension, a name, a call, a time.

Answered from the state alone (the parties table and its indexes: state/parties.py), with no service
and no RingCentral. The output carries personal data (numbers, names): a table for a person, or JSON
Lines for a program; an object's URL (an S3 presigned GET) only when asked for with --url, never
otherwise, and never a credential.

    rc-archiver find --number +16505550100 --since 2026-03-01 --until 2026-06-01 --json
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any

from archiver.models import format_time
from archiver.ringcentral.calllog import Party
from archiver.state import RecordingRow, StateStore
from archiver.state.parties import Filters


def e164(digits: str) -> str:
    """The state's normalised digits as an E.164 number ('' stays '')."""
    return f"+{digits}" if digits else ""


def describe(row: RecordingRow, parties: Iterable[Party]) -> dict[str, Any]:
    """One archived recording as `find --json` and the archive's index show it (one shape for both)."""
    recording = row.recording
    parties = list(parties)
    return {
        "recording_id": recording.recording_id,
        "call_id": recording.call_id,
        "session_id": recording.session_id,
        "telephony_session_id": recording.telephony_session_id,
        "start_time": format_time(recording.start),
        "call_start_time": format_time(recording.retention_start),
        "duration": recording.duration,
        "direction": recording.direction,
        "from_number": recording.from_number,
        "to_number": recording.to_number,
        "from_name": recording.from_name,
        "to_name": recording.to_name,
        "numbers": sorted({e164(p.number) for p in parties if p.number}),
        "extension_numbers": sorted({p.extension for p in parties if p.extension}),
        "key": row.key,
        "size": row.size,
        "sha256": row.sha256,
        "content_type": row.content_type,
        "archived_at": format_time(row.archived_at) if row.archived_at else None,
        "deleted_at_source": format_time(row.deleted_at) if row.deleted_at else None,
    }


def find(state: StateStore, filters: Filters) -> Iterator[dict[str, Any]]:
    """Every archived recording matching `filters`, described, by call start."""
    for row in state.find(filters):
        yield describe(row, state.parties_of(row.recording_id))


def as_json_line(entry: dict[str, Any], url: str | None = None) -> str:
    """`find --json`: the described recording with `from` and `to`, and `url` only when one was made."""
    line = {**entry, "from": entry["from_number"], "to": entry["to_number"]}
    if url is not None:
        line["url"] = url
    return json.dumps(line, ensure_ascii=False, sort_keys=True)


_COLUMNS = ("call start (UTC)", "secs", "direction", "from", "to", "recording", "key")


def table_row(entry: dict[str, Any]) -> tuple[str, ...]:
    start = str(entry["call_start_time"])
    return (
        start[:19].replace("T", " "),
        str(entry["duration"]),
        str(entry["direction"]),
        f"{entry['from_number']} {entry['from_name']}".strip(),
        f"{entry['to_number']} {entry['to_name']}".strip(),
        str(entry["recording_id"]),
        str(entry["key"]),
    )


def render_table(entries: list[dict[str, Any]]) -> str:
    rows = [_COLUMNS, *(table_row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:-1], widths, strict=True)), r[-1]]) for r in rows]
    lines.append(f"{len(entries)} recording(s)")
    return "\n".join(lines)


def print_found(
    state: StateStore,
    filters: Filters,
    *,
    as_json: bool,
    presign: Callable[[str], str] | None,
    write: Callable[[str], None] = print,
) -> int:
    """The command's output: a table, or JSON Lines (with URLs only when `presign` is given); returns
    how many recordings matched."""
    entries = find(state, filters)
    if not as_json:
        found = list(entries)
        write(render_table(found))
        return len(found)
    count = 0
    for entry in entries:
        url = presign(str(entry["key"])) if presign is not None else None
        write(as_json_line(entry, url))
        count += 1
    return count


def url_expiry(value: str) -> timedelta:
    """--url's expiry: seconds, or a number with s, m, h or d; at most 7 days (S3's limit)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = value.strip().lower()
    scale = units.get(text[-1:], 0)
    number = float(text[:-1] if scale else text)
    seconds = number * (scale or 1)
    if not 0 < seconds <= 7 * 86400:
        raise ValueError(f"an expiry between 1 s and 7 days, not {value!r}")
    return timedelta(seconds=seconds)
