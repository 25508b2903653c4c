"""`rc-archiver verify`: prove the archive is complete for a range, and queue what is not for repair.

What it checks is driven by the call log AND by our own records, so a recording the call log stops
listing (after a deletion, under reading B of docs/ringcentral-api.md#u10-after-a-deletion) or one older
than the range is still checked:
- every recording the call log lists in the range (this catches those the state never knew about);
- every recording the state has archived or deleted at the source in the range;
- every recording deleted at the source, whatever the range, unless a range was asked for: its archive is
  the only copy.
Each is checked in the destination: the object with the recorded size and sha256 (the state's, the
object's metadata and the sidecar, which must name the same key, size and sha256); a sample is read back
in full and re-hashed. Recordings RingCentral deleted before we could archive them are reported as lost.
With --manifests it walks the manifests' hash chain and lists archived recordings no manifest names, and
recordings deleted at the source that no manifest lists as deleted.

--repair queues what is missing or corrupt to be archived again, for any recording RingCentral still
serves, whatever the state says (a recording recorded as deleted is asked about: one look at its content).
A damaged copy of a recording RingCentral no longer has is reported loudly as the only copy, with what
can still be done.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain

import structlog

from archiver.archive.breaker import OutageBreaker
from archiver.archive.context import PassContext
from archiver.archive.deletion import at_source
from archiver.archive.layout import META_SHA256, Layout
from archiver.archive.manifest import HEAD, walk_chain
from archiver.archive.proof import HEAD_BYTES, audio_head_ok, plausible
from archiver.archive.scan import scan_window
from archiver.hold import holds_lost
from archiver.settings import Settings
from archiver.state import LOST, RecordingRow
from archiver.windows import day_slices

log = structlog.get_logger(__name__)


@dataclass
class VerifyResult:
    checked: int = 0
    rehashed: int = 0
    lost: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (recording id, why)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    chain_breaks: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # archived, but in no manifest
    deletions_unlisted: list[str] = field(default_factory=list)  # deleted at the source, in no manifest
    only_copy: list[tuple[str, str]] = field(default_factory=list)  # damaged and gone at the source
    manifests: int = 0
    scan_errors: int = 0
    # Listed by the call log only after the last run's scan (records appear once a call ends), within the
    # lookback the next run rescans: not missing, recorded now and archived by the next run.
    late: int = 0
    holds_lost: list[tuple[str, str]] = field(default_factory=list)  # (key, why): held, hold gone (issue 20)

    @property
    def ok(self) -> bool:
        return not (
            self.missing
            or self.corrupt
            or self.scan_errors
            or self.chain_breaks
            or self.unlisted
            or self.deletions_unlisted
            or self.holds_lost
        )


def _rehash(services: PassContext, key: str) -> tuple[str, bytes]:
    """The object's sha256 and its first bytes, read back in full."""
    digest, head = hashlib.sha256(), b""
    with services.destination.open(key) as stream:
        while chunk := stream.read(1024 * 1024):
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
    return digest.hexdigest(), head


def _check_one(
    services: PassContext, layout: Layout, row: RecordingRow, rehash: bool
) -> tuple[str, str] | None:
    """('missing' | 'corrupt', why) for a recording whose archive is not intact, else None; with
    `rehash` the object is read back in full and hashed."""
    if row.status == "archived" and row.key and row.size is not None and row.sha256:
        key, size, sha256 = row.key, row.size, row.sha256
    else:
        found = layout.find_stored(services.destination, row.recording)
        if found is None:
            return "missing", "not in the destination"
        key, size, sha256 = found.archived.key, found.archived.size, found.archived.sha256
    why = plausible(row) if row.status == "archived" else ""
    if why:
        return "corrupt", why
    stored = services.destination.stat(key)
    if stored is None:
        return "missing", f"object {key} is missing"
    if stored.size != size:
        return "corrupt", f"{key} has {stored.size} bytes, expected {size}"
    if stored.metadata.get(META_SHA256) not in (None, sha256):
        return "corrupt", f"{key} metadata sha256 differs from the recorded one"
    sidecar_key = layout.sidecar_key(key)
    sidecar = layout.read_sidecar(services.destination, sidecar_key)
    if sidecar is None:
        return "missing", f"sidecar {sidecar_key} is missing"
    expected = {"recording_id": row.recording_id, "key": key, "size": size, "sha256": sha256}
    wrong = [name for name, value in expected.items() if sidecar.get(name) != value]
    if wrong:
        return "corrupt", f"sidecar {sidecar_key} disagrees on {', '.join(wrong)}"
    if rehash:
        digest, head = _rehash(services, key)
        if digest != sha256:
            return "corrupt", f"{key} content does not hash to the recorded sha256"
        if row.content_type and not audio_head_ok(row.content_type, head):
            return "corrupt", f"{key} content does not begin like {row.content_type}"
    return None


def verify(
    services: PassContext,
    window: tuple[datetime, datetime],
    sample_percent: float,
    repair: bool,
    manifests: bool = False,
    rng: random.Random | None = None,
    all_deleted: bool = True,
    cancel: threading.Event | None = None,
) -> VerifyResult:
    """Check the archive (this module's docstring); `all_deleted` adds every recording deleted at the
    source, whatever `window` says (the default when no range was asked for)."""
    rng = rng or random.Random()
    cancel = cancel or threading.Event()  # set: the scan stops and the walk ends early (a stopping daemon)
    settings, state, layout, result = services.settings, services.state, services.layout, VerifyResult()
    scan_id = f"verify-{rng.getrandbits(32):08x}"
    scan = scan_window(
        day_slices(*window, settings.tz),
        client=services.client,
        state=state,
        run_id=scan_id,
        retention=settings.source_retention,
        cancel=cancel,
        breaker=OutageBreaker(cancel),
        mark_done=False,
    )
    result.scan_errors = scan.days_unreadable
    rows = chain(state.seen_in(scan_id), state.archive_in(*window, skip_run=scan_id))
    if all_deleted:
        rows = chain(rows, state.deleted_outside(*window, skip_run=scan_id))
    damaged: list[tuple[RecordingRow, str]] = []
    rescanned_from = _next_run_rescans_from(state.watermark(), settings)
    for row in rows:
        if cancel.is_set():
            break
        result.checked += 1
        if row.status == LOST:
            result.lost += 1
            continue
        if _late_record(row, rescanned_from):
            result.late += 1
            continue
        rehash = rng.random() * 100 < sample_percent
        problem = _check_one(services, layout, row, rehash)
        result.rehashed += rehash and (problem is None or "content" in problem[1])
        if problem is not None:
            kind, why = problem
            (result.missing if kind == "missing" else result.corrupt).append((row.recording_id, why))
            damaged.append((row, kind))
    if manifests:
        _check_manifests(services, result)
    result.holds_lost = holds_lost(services.destination, state.held_keys())
    for row, kind in damaged:
        if row.deleted_at is None and row.delete_intent is None:
            if repair:  # force: an object under the key that is wrong must be replaced
                state.requeue(row.recording_id, f"verify: {kind}", force_upload=kind == "corrupt")
            continue
        _damaged_after_deletion(services, row, repair, result)
    return result


def _next_run_rescans_from(watermark: datetime | None, settings: Settings) -> datetime | None:
    """Where the next run's window begins (windows.plan_window): it rescans the last `lookback` before
    the watermark, because records appear late (a call is logged once it ends)."""
    return watermark - settings.lookback if watermark is not None else None


def _late_record(row: RecordingRow, rescanned_from: datetime | None) -> bool:
    """A recording no run has reached yet (pending, never attempted) whose call started where the next
    run rescans: its record appeared after the last scan. Anything older that no run saw is missing:
    the runs' scans should have seen it."""
    return (
        rescanned_from is not None
        and row.status == "pending"
        and row.attempts == 0
        and row.recording.start >= rescanned_from
    )


def _damaged_after_deletion(
    services: PassContext, row: RecordingRow, repair: bool, result: VerifyResult
) -> None:
    """A damaged archive of a recording recorded as deleted at the source, or with a DELETE in flight:
    RingCentral may still serve it (a deletion recorded wrongly by an older version, a DELETE that
    never happened): then it is queued; if not, this was the only copy, and the operator hears so with
    what can still be done (an intent is left for the next run to settle and list)."""
    held = at_source(services.client, row) if repair else None
    if held:
        services.state.requeue(
            row.recording_id, "verify: damaged, and RingCentral still serves it", force_upload=True
        )
        log.warning("verify_requeued_deleted", recording_id=row.recording_id, key=row.key)
        return
    deleted = row.deleted_at.isoformat() if row.deleted_at else "by a DELETE not yet settled"
    fix = (
        f"restore {row.key} (sha256 {row.sha256}) from the bucket's object versions "
        "(aws s3api list-object-versions) or from a backup of the destination"
    )
    why = f"the archive is the only copy (deleted at the source {deleted}); {fix}"
    if held is None and repair:
        why += "; RingCentral's answer about it was unclear: run verify --repair again later"
    result.only_copy.append((row.recording_id, why))
    log.error("archive_only_copy_damaged", recording_id=row.recording_id, key=row.key, error=why)


def _check_manifests(services: PassContext, result: VerifyResult) -> None:
    state = services.state
    walked = walk_chain(services.destination, state.meta_json(HEAD))
    result.manifests, result.chain_breaks = walked.parts, walked.breaks
    if walked.ok:
        result.unlisted = [rid for rid in state.archived_ids() if rid not in walked.listed]
        result.deletions_unlisted = [rid for rid in state.deleted_ids() if rid not in walked.deleted]


def render_verify(result: VerifyResult, manifests: bool, repair: bool) -> str:
    """What `rc-archiver verify` prints: a line per problem, then the counts."""
    lines = [f"missing  {recording_id}  {why}" for recording_id, why in result.missing]
    lines += [f"corrupt  {recording_id}  {why}" for recording_id, why in result.corrupt]
    lines += [f"chain    {why}" for why in result.chain_breaks]
    lines += [
        f"unlisted {recording_id}  archived, but no manifest lists it" for recording_id in result.unlisted
    ]
    lines += [
        f"unlisted {recording_id}  deleted at the source, but no manifest lists the deletion"
        for recording_id in result.deletions_unlisted
    ]
    lines += [f"ONLY COPY {recording_id}  {why}" for recording_id, why in result.only_copy]
    lines += [f"hold lost {key}  {why}" for key, why in result.holds_lost]
    repaired = " (queued for the next run)" if repair and (result.missing or result.corrupt) else ""
    lines.append(
        f"checked {result.checked}, missing {len(result.missing)}, corrupt {len(result.corrupt)}, "
        f"re-hashed {result.rehashed}, lost {result.lost}, call-log days unreadable {result.scan_errors}"
        + (f", listed late {result.late} (the next run archives them)" if result.late else "")
        + (f", manifests {result.manifests}, chain breaks {len(result.chain_breaks)}" if manifests else "")
        + repaired
    )
    return "\n".join(lines)
