"""`rc-archiver verify`: prove the archive is complete for a range, and queue what is not for repair.

It re-lists the call log (so it also catches recordings the state never knew about), checks that each
recording is in the destination with the recorded size and sha256 (from the state, the object's
metadata and the sidecar), and re-reads a sample of the objects in full to re-hash them. Recordings we
deleted at the source after archiving them are checked like any other (their archive is all there is);
recordings RingCentral deleted before we could archive them are reported as lost, not missing.
With --manifests it walks the manifests' hash chain and lists archived recordings no manifest names.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from datetime import datetime

from archiver.archive.breaker import OutageBreaker
from archiver.archive.layout import META_SHA256, Layout
from archiver.archive.manifest import HEAD, walk_chain
from archiver.archive.run_pass import PassServices
from archiver.archive.scan import scan_window
from archiver.settings import Settings
from archiver.state import LOST, RecordingRow
from archiver.windows import day_slices


@dataclass
class VerifyResult:
    checked: int = 0
    rehashed: int = 0
    lost: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (recording id, why)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    chain_breaks: list[str] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # archived, but in no manifest
    manifests: int = 0
    scan_errors: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.corrupt or self.scan_errors or self.chain_breaks or self.unlisted)


def _rehash(services: PassServices, key: str) -> str:
    digest = hashlib.sha256()
    with services.destination.open(key) as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _check_one(
    services: PassServices, layout: Layout, row: RecordingRow, rehash: bool
) -> tuple[str, str] | None:
    """('missing' | 'corrupt', why) for a recording whose archive is not intact, else None; with
    `rehash` the object is read back in full and hashed."""
    if row.status == "archived" and row.key and row.size is not None and row.sha256:
        key, size, sha256 = row.key, row.size, row.sha256
    else:
        found = layout.find_stored(services.destination, row.recording)
        if found is None:
            return "missing", "not in the destination"
        key, size, sha256 = found.key, found.size, found.sha256
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
    if sidecar.get("sha256") != sha256:
        return "corrupt", f"sidecar {sidecar_key} names another sha256"
    if rehash and _rehash(services, key) != sha256:
        return "corrupt", f"{key} content does not hash to the recorded sha256"
    return None


def verify(
    services: PassServices,
    settings: Settings,
    window: tuple[datetime, datetime],
    sample_percent: float,
    repair: bool,
    manifests: bool = False,
    rng: random.Random | None = None,
) -> VerifyResult:
    rng = rng or random.Random()
    state, layout, result = services.state, Layout(settings.key_template, settings.tz), VerifyResult()
    scan_id = f"verify-{rng.getrandbits(32):08x}"
    scan = scan_window(
        services.client, state, day_slices(*window, settings.tz), scan_id, settings.source_retention,
        threading.Event(), OutageBreaker(threading.Event()), lambda seen: None, mark_done=False,
    )  # fmt: skip
    result.scan_errors = scan.days_unreadable
    unrepairable: set[str] = set()
    for row in state.seen_in(scan_id):
        result.checked += 1
        if row.status == LOST:
            result.lost += 1
            continue
        rehash = rng.random() * 100 < sample_percent
        problem = _check_one(services, layout, row, rehash)
        result.rehashed += rehash and (problem is None or "content" in problem[1])
        if problem is not None:
            kind, why = problem
            if row.deleted_at is not None:
                # Our archive is all there is: no repair can download it again, so none is queued.
                why += f"; deleted at the source {row.deleted_at.isoformat()}: it cannot be downloaded again"
                unrepairable.add(row.recording_id)
            (result.missing if kind == "missing" else result.corrupt).append((row.recording_id, why))
    if manifests:
        chain = walk_chain(services.destination, state.meta_json(HEAD))
        result.manifests, result.chain_breaks = chain.parts, chain.breaks
        if chain.ok:
            result.unlisted = [
                recording_id for recording_id in state.archived_ids() if recording_id not in chain.listed
            ]
    if repair:
        for recording_id, why in result.missing:
            if recording_id not in unrepairable:
                state.requeue(recording_id, f"verify: {why}")
        for recording_id, why in result.corrupt:
            if recording_id in unrepairable:
                continue
            # force: the object under the key exists but is wrong, so it must be replaced
            state.requeue(recording_id, f"verify: {why}", force_upload=True)
    return result
