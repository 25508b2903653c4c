"""Call-log records as the archiver needs them: the one place that reads RingCentral's JSON keys.

A record carries a recording at its top level and/or on its legs (a transferred call's second recording
often exists only on a leg: docs/ringcentral-api.md#records-legs-and-recordings), so every record yields the
distinct recordings of the record and of each leg: each a `Found`, the Recording (models.py) with the raw
record and leg beside it, kept only for the sidecar, which keeps what RingCentral said about the call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from archiver.models import Recording, parse_time


@dataclass(frozen=True)
class Party:
    """One party to a call, as `find` and the archive's index know it: its phone number normalised
    (normalise_number), its extension number and its name; any of them may be empty."""

    number: str
    extension: str
    name: str


_NON_DIGITS = re.compile(r"\D")
NANP_DIGITS = 10  # a national US/Canada number, RingCentral's home market: +1 is assumed before it


def normalise_number(raw: str) -> str:
    """A phone number as the digits of its E.164 form, without the '+': `+1 (650) 555-0100` and
    `6505550100` both become `16505550100`. A number written without '+' is taken as written, except a
    10-digit one, taken as a North American national number. Not a number at all: ''."""
    digits = _NON_DIGITS.sub("", raw)
    if not digits:
        return ""
    if not raw.strip().startswith("+") and len(digits) == NANP_DIGITS:
        return "1" + digits
    return digits


def _party(raw: object) -> Party | None:
    if not isinstance(raw, Mapping):
        return None
    party = Party(
        number=normalise_number(str(raw.get("phoneNumber") or "")),
        extension=str(raw.get("extensionNumber") or ""),
        name=str(raw.get("name") or ""),
    )
    return party if party.number or party.extension or party.name else None


def call_parties(record: Mapping[str, Any]) -> tuple[Party, ...]:
    """Every party to a call: the record's `from` and `to` and each leg's (a transfer's target is often
    only on its leg), deduplicated, in order of appearance."""
    found: dict[Party, None] = {}
    sources = [record, *(leg for leg in record.get("legs") or [] if isinstance(leg, Mapping))]
    for source in sources:
        for side in ("from", "to"):
            party = _party(source.get(side))
            if party is not None:
                found.setdefault(party)
    return tuple(found)


@dataclass(frozen=True)
class Found:
    """A recording found in the call log, with what only the call log has: the raw record (and leg)
    it came from, kept for its sidecar, and every party to the call (record and legs), for `find` and
    the index. The state keeps the Recording as columns and the raw JSON beside it."""

    recording: Recording
    record: dict[str, Any] = field(repr=False)
    leg: dict[str, Any] | None = field(repr=False)
    parties: tuple[Party, ...] = field(repr=False)

    @property
    def recording_id(self) -> str:
        return self.recording.recording_id


def parties_of(record: Mapping[str, Any], leg: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """The raw `from` and `to` of the leg (or the record) a recording belongs to, for its sidecar."""
    source = leg if leg is not None else record
    return source.get("from") or record.get("from"), source.get("to") or record.get("to")


def recording_from(record: Mapping[str, Any], leg: Mapping[str, Any] | None) -> Recording:
    """The recording on `leg` (or, without one, on the record itself), as the archive knows it."""
    source = leg if leg is not None else record
    recording = source["recording"]
    party_from = source.get("from") or record.get("from") or {}
    party_to = source.get("to") or record.get("to") or {}
    extension = source.get("extension") or record.get("extension") or {}
    top = record.get("recording")
    start = parse_time(str(source.get("startTime") or record["startTime"]))
    call_start = parse_time(str(record.get("startTime") or source["startTime"]))
    return Recording(
        recording_id=str(recording["id"]),
        content_uri=str(recording["contentUri"]),
        recording_type=str(recording.get("type", "")),
        call_id=str(record.get("id", "")),
        session_id=str(record.get("sessionId", "")),
        telephony_session_id=str(source.get("telephonySessionId") or record.get("telephonySessionId") or ""),
        start=start,
        duration=int(source.get("duration") or record.get("duration") or 0),
        direction=str(source.get("direction") or record.get("direction") or ""),
        from_number=str(party_from.get("phoneNumber") or party_from.get("extensionNumber") or ""),
        to_number=str(party_to.get("phoneNumber") or party_to.get("extensionNumber") or ""),
        from_name=str(party_from.get("name") or ""),
        to_name=str(party_to.get("name") or ""),
        extension_id=str(extension.get("id") or ""),
        on_leg_only=leg is not None
        and not (isinstance(top, dict) and str(top.get("id")) == str(recording["id"])),
        retention_start=min(start, call_start),
    )


def found_in(record: dict[str, Any], leg: dict[str, Any] | None) -> Found:
    """The recording on `leg` (or on the record) with the raw JSON and the call's parties."""
    return Found(recording_from(record, leg), record, leg, call_parties(record))


def recordings_in(record: dict[str, Any]) -> list[Found]:
    """Every recording of a call-log record: on the record itself and on each leg, deduplicated."""
    found: dict[str, Found] = {}
    if isinstance(record.get("recording"), dict):
        ref = found_in(record, None)
        found[ref.recording_id] = ref
    for leg in record.get("legs") or []:
        if isinstance(leg, dict) and isinstance(leg.get("recording"), dict):
            ref = found_in(record, leg)
            found.setdefault(ref.recording_id, ref)
    return list(found.values())


@dataclass(frozen=True)
class CallLogPage:
    """One page of the call log: how many records it held and the recordings found in them."""

    records: int
    recordings: list[Found]


def next_page_uri(page: dict[str, Any]) -> str | None:
    """The page's navigation.nextPage.uri, or None when there is no next page."""
    navigation = page.get("navigation")
    next_page = navigation.get("nextPage") if isinstance(navigation, dict) else None
    uri = next_page.get("uri") if isinstance(next_page, dict) else None
    return uri if isinstance(uri, str) and uri else None
