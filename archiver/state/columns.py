"""The state's recording columns, derived from `models.Recording`'s fields: one column per field, named
by the field (or its `stored_as`), encoded by its type; plus `deadline`, computed from the retention.

A new Recording field gets its column here without an edit; the migration that adds the column to
existing files is the one other edit (state/schema.py's MIGRATIONS). Migrations already written name
their own columns: they describe the schema as it was, not as the dataclass is now.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, get_type_hints

from archiver.models import Recording, format_time, parse_time, stored_name

DEADLINE = "deadline"  # not a field: retention_start + the retention, recomputed when that changes


def _same(value: Any) -> Any:
    return value


# How each field type is written to SQLite and read back; a field of another type has no column yet.
_CODECS: dict[object, tuple[Callable[[Any], object], Callable[[Any], Any]]] = {
    str: (_same, _same),
    int: (_same, _same),
    bool: (int, bool),
    datetime: (format_time, parse_time),
}


@dataclass(frozen=True)
class Column:
    name: str  # in the recordings table
    field: str  # of Recording
    encode: Callable[[Any], object]
    decode: Callable[[Any], Any]


def columns_of(cls: type[Recording] = Recording) -> tuple[Column, ...]:
    """One column per field of `cls`, in field order (worked out once per class: rows are read by
    the million)."""
    known = _COLUMNS.get(cls)
    if known is not None:
        return known
    hints = get_type_hints(cls)
    out = []
    for item in fields(cls):
        codec = _CODECS.get(hints[item.name])
        if codec is None:
            raise TypeError(
                f"Recording.{item.name}: a {hints[item.name]} has no column encoding; "
                "add one to state/columns.py's _CODECS"
            )
        out.append(Column(stored_name(item), item.name, *codec))
    _COLUMNS[cls] = tuple(out)
    return _COLUMNS[cls]


_COLUMNS: dict[type[Recording], tuple[Column, ...]] = {}


def names_of(cls: type[Recording] = Recording) -> tuple[str, ...]:
    """The columns a new row's recording fills: one per field, and its deadline."""
    return (*(column.name for column in columns_of(cls)), DEADLINE)


RECORDING_COLUMNS = names_of(Recording)


def values(
    recording: Recording, retention: timedelta, names: Sequence[str] = RECORDING_COLUMNS
) -> tuple[object, ...]:
    """The values of the columns `names` (default: every recording column) for this recording."""
    by_name = {column.name: column for column in columns_of(type(recording))}
    deadline = format_time(recording.retention_start + retention)
    return tuple(
        deadline if name == DEADLINE else by_name[name].encode(getattr(recording, by_name[name].field))
        for name in names
    )


def recording_of(row: sqlite3.Row | Mapping[str, Any], cls: type[Recording] = Recording) -> Recording:
    """The Recording a row holds (a sqlite3.Row or any mapping by column name)."""
    # Positional, in field order, with nothing called for a column stored as is: rows are read by the
    # million (a verify walk, a deletion pass), and this is most of their Python time.
    readers = _READERS.get(cls)
    if readers is None:
        readers = _READERS[cls] = tuple(
            (column.name, None if column.decode is _same else column.decode) for column in columns_of(cls)
        )
    return cls(*[row[name] if decode is None else decode(row[name]) for name, decode in readers])


_READERS: dict[type[Recording], tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {}


def insert_sql(names: Sequence[str]) -> str:
    """`INSERT INTO recordings (<names>) VALUES (?, ...)`, one placeholder per name."""
    return f"INSERT INTO recordings ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"  # noqa: S608
