"""`rc-archiver hold`: S3 legal holds on the matching recordings' audio and sidecar, recorded in the state.

    hold [filters] --reason TEXT              legal hold ON for every match, recorded with the query
    hold --release [filters] --reason TEXT    lifted (from one hold only with --hold-id)
    hold --list                               the holds in force: why, since when, the query, objects

A legal hold keeps an object from deletion or overwrite, in any bucket with Object Lock, until it is
lifted; it has no end date. A folder, or a bucket without Object Lock, cannot hold: exit 2, one line.
Deleting at the source never waits on a hold (what is held is the archive's copy). `verify` reports an
object a hold covers whose legal hold is gone (holds_lost).

S3 has one switch per object; the state keeps which hold covers which object, so lifting one hold
leaves the switch on where another hold in force still covers the object.
Order of effects: S3 first, then the state when holding (a crash leaves an object held and unrecorded:
over-held, never under-held); the state first, then S3 when releasing (the same direction).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from archiver.destinations.base import Destination
from archiver.destinations.s3_hold import lockable, set_legal_hold
from archiver.errors import SettingsError
from archiver.keys import sidecar_key
from archiver.state import StateStore
from archiver.state.holds import Hold
from archiver.state.parties import Filters


@dataclass(frozen=True)
class HoldDone:
    hold_ids: list[int]
    recordings: int
    objects: int  # objects whose legal hold was switched


def _objects(state: StateStore, filters: Filters) -> list[tuple[str, str]]:
    if filters.empty:
        raise SettingsError(
            "hold: give at least one filter", hint="e.g. --number +16505550100 --since 2026-03-01"
        )
    objects = []
    for row in state.find(filters):
        assert row.key is not None  # find lists archived recordings only
        objects += [(row.recording_id, row.key), (row.recording_id, sidecar_key(row.key))]
    if not objects:
        raise SettingsError("hold: no archived recording matches the filters", hint="try `rc-archiver find`")
    return objects


def place_hold(state: StateStore, destination: Destination, filters: Filters, reason: str) -> HoldDone:
    bucket = lockable(destination)
    objects = _objects(state, filters)
    for _, key in objects:
        set_legal_hold(bucket, key, on=True)
    hold_id = state.record_hold(reason, filters.as_dict(), objects)
    return HoldDone([hold_id], len(objects) // 2, len(objects))


def release_hold(
    state: StateStore, destination: Destination, filters: Filters, reason: str, hold_id: int | None = None
) -> HoldDone:
    bucket = lockable(destination)
    keys = [key for _, key in _objects(state, filters)]
    touched = state.release_objects(keys, reason, hold_id)
    still = state.held_keys()
    lifted = [key for key in keys if key not in still]
    for key in lifted:
        set_legal_hold(bucket, key, on=False)
    return HoldDone(touched, len(keys) // 2, len(lifted))


def holds_lost(destination: Destination, held: Mapping[str, list[int]]) -> list[tuple[str, str]]:
    """Objects a hold in force covers whose legal hold is off (or which are gone): for `verify`."""
    lost = []
    for key, hold_ids in sorted(held.items()):
        stored = destination.stat(key)
        holds = ", ".join(f"#{h}" for h in hold_ids)
        if stored is None:
            lost.append((key, f"held by {holds}, but the object is missing"))
        elif not stored.legal_hold:
            lost.append((key, f"held by {holds}, but its S3 legal hold is off"))
    return lost


def render_holds(holds: list[Hold]) -> str:
    if not holds:
        return "no hold in force"
    lines = []
    for hold in holds:
        query = " ".join(f"--{name.replace('_', '-')} {value}" for name, value in sorted(hold.query.items()))
        lines.append(
            f"#{hold.hold_id}  since {hold.placed_at}  {hold.objects} object(s)  reason: {hold.reason}"
        )
        lines.append(f"     query: {query}")
    return "\n".join(lines)
