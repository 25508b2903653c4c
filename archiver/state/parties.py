"""The parties of each call, and the queries people ask of the archive: `find`, the index's bookkeeping.

Each recording row has the parties of its whole call beside it (the record's `from` and `to` and every
leg's, a transfer's target included), one row per party in `parties`, numbers normalised to the digits
of their E.164 form (calllog.normalise_number) and kept reversed too, so that a number written in its
national form (a suffix of the E.164 digits) is a range on an index, like the E.164 form itself:

    +16505550100 -> number_rev '00105550561': '6505550100' matches the range ['0010555056', '0010555056:')

The table is filled when a recording is first recorded in the state (recordings.note_found), widened
when another record of the same call lists it (an internal call is logged once per extension), and, for
rows older than this schema, by the migration in party_tables.py from each row's stored call-log record.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime

from archiver.errors import SettingsError
from archiver.models import format_time
from archiver.ringcentral.calllog import Party, normalise_number
from archiver.state.party_tables import note_parties
from archiver.state.rows import RecordingRow, Rows

MIN_NUMBER_DIGITS = 7  # fewer is an extension (--extension) or a typo: it would match half the archive


@dataclass(frozen=True)
class Filters:
    """What `find`, `export` and `hold` select: every given filter must hold (AND)."""

    number: str | None = None  # E.164 ('+16505550100': exactly) or national ('6505550100': a suffix)
    extension: str | None = None
    name: str | None = None  # case-insensitive substring of any party's name
    direction: str | None = None  # Inbound | Outbound
    call_id: str | None = None
    session_id: str | None = None  # the sessionId or the telephonySessionId
    since: datetime | None = None  # call start, inclusive
    until: datetime | None = None  # call start, exclusive

    def as_dict(self) -> dict[str, str]:
        """The filters given, as text (what a hold records as its query)."""
        return {
            name: format_time(value) if isinstance(value, datetime) else str(value)
            for name, value in asdict(self).items()
            if value is not None
        }

    @property
    def empty(self) -> bool:
        return not self.as_dict()


def _number_condition(number: str) -> tuple[str, list[object]]:
    digits = normalise_number(number)
    if len(digits) < MIN_NUMBER_DIGITS:
        raise SettingsError(
            f"--number {number!r}: a phone number needs at least {MIN_NUMBER_DIGITS} digits",
            hint="give the E.164 form (+16505550100) or the national one (6505550100); "
            "for an extension use --extension",
        )
    if number.strip().startswith("+"):
        return "number_rev = ?", [digits[::-1]]
    national = "".join(ch for ch in number if ch.isdigit())  # the suffix as written, no country assumed
    return "number_rev >= ? AND number_rev < ?", [national[::-1], national[::-1] + ":"]


def _party_conditions(filters: Filters) -> list[tuple[str, list[object]]]:
    """Conditions on `parties`, most selective first (the first drives the query through its index)."""
    conditions: list[tuple[str, list[object]]] = []
    if filters.number is not None:
        conditions.append(_number_condition(filters.number))
    if filters.extension is not None:
        conditions.append(("extension = ?", [filters.extension.strip()]))
    if filters.name is not None:
        conditions.append(("instr(lower(name), lower(?)) > 0", [filters.name]))  # a scan: no index helps
    return conditions


def where(
    filters: Filters, party_conditions: list[tuple[str, list[object]]] | None = None
) -> tuple[str, list[object]]:
    """The SQL condition on `recordings r` for the filters (fixed text with parameters); the party
    conditions are the filters' unless given (those the caller has not applied already)."""
    parts = ["r.status = 'archived'", "r.key IS NOT NULL"]
    params: list[object] = []
    for condition, values in _party_conditions(filters) if party_conditions is None else party_conditions:
        # Correlated: a look-up by the parties' primary key (recording_id first) per candidate row.
        parts.append(
            f"EXISTS (SELECT 1 FROM parties p WHERE p.recording_id = r.recording_id AND {condition})"  # noqa: S608
        )
        params += values
    if filters.direction is not None:
        parts.append("lower(r.direction) = lower(?)")
        params.append(filters.direction)
    if filters.call_id is not None:
        parts.append("r.call_id = ?")
        params.append(filters.call_id)
    if filters.session_id is not None:
        parts.append("(r.session_id = ? OR r.telephony_session_id = ?)")
        params += [filters.session_id, filters.session_id]
    if filters.since is not None:
        parts.append("r.retention_start >= ?")
        params.append(format_time(filters.since))
    if filters.until is not None:
        parts.append("r.retention_start < ?")
        params.append(format_time(filters.until))
    return " AND ".join(parts), params


class Finding(Rows):
    """The state's answers to `find` (and export and hold), and the index's bookkeeping."""

    def find(self, filters: Filters, batch: int = 500) -> Iterator[RecordingRow]:
        """Archived recordings matching every filter, by call start then id, in batches (flat memory).

        With a number or an extension, the parties index finds the candidates first (an index range)
        and only their ids are sorted; a name alone scans the parties; otherwise (a name within a time
        range too) a keyset walk on the call-start index checks each row's parties by key."""
        conditions = _party_conditions(filters)
        by_time = filters.since is not None or filters.until is not None
        if filters.number is not None or filters.extension is not None or (conditions and not by_time):
            yield from self._find_by_party(filters, conditions, batch)
            return
        condition, params = where(filters)
        cursor: tuple[str, str] = ("", "")
        while True:
            rows = self._query(
                f"SELECT r.* FROM recordings r INDEXED BY recordings_call_start WHERE {condition} "  # noqa: S608
                "AND (r.retention_start, r.recording_id) > (?, ?) "
                "ORDER BY r.retention_start, r.recording_id LIMIT ?",
                [*params, *cursor, batch],
            )
            if not rows:
                return
            yield from (self._row(r) for r in rows)
            cursor = (rows[-1]["retention_start"], rows[-1]["recording_id"])

    def _find_by_party(
        self, filters: Filters, conditions: list[tuple[str, list[object]]], batch: int
    ) -> Iterator[RecordingRow]:
        driver = conditions[0]
        condition, params = where(filters, conditions[1:])
        ids = [
            str(r[0])
            for r in self._query(
                "SELECT r.recording_id FROM (SELECT DISTINCT recording_id FROM parties "  # noqa: S608 - fixed text
                f"WHERE {driver[0]}) p CROSS JOIN recordings r ON r.recording_id = p.recording_id "
                f"WHERE {condition} ORDER BY r.retention_start, r.recording_id",
                [*driver[1], *params],
            )
        ]
        for first in range(0, len(ids), batch):
            chunk = ids[first : first + batch]
            marks = ", ".join("?" * len(chunk))
            rows = {
                r["recording_id"]: r
                for r in self._query(f"SELECT * FROM recordings WHERE recording_id IN ({marks})", chunk)  # noqa: S608
            }
            yield from (self._row(rows[i]) for i in chunk if i in rows)

    def parties_of(self, recording_id: str) -> list[Party]:
        rows = self._query(
            "SELECT number_rev, extension, name FROM parties WHERE recording_id = ? "
            "ORDER BY number_rev, extension, name",
            (recording_id,),
        )
        return [Party(r["number_rev"][::-1], r["extension"], r["name"]) for r in rows]

    def add_parties(self, recording_id: str, parties: Iterable[Party]) -> None:
        with self._tx() as db:
            note_parties(db, recording_id, parties)

    # -- the archive's index (index_files.py) -------------------------------------------------------
    def unindexed(self) -> list[str]:
        """Archived recordings no index part lists yet (archived by a run killed before its part)."""
        rows = self._query("SELECT recording_id FROM index_owed ORDER BY recording_id")  # its primary key
        return [str(r[0]) for r in rows]

    def mark_indexed(self, recording_ids: Iterable[str], part: str) -> None:
        listed = list(recording_ids)
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO index_listed (recording_id, part) VALUES (?, ?)",
                [(r, part) for r in listed],
            )
            db.executemany("DELETE FROM index_owed WHERE recording_id = ?", [(r,) for r in listed])
