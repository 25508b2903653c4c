"""`rc-archiver verify`: prove the archive is complete for a range, and queue what is not for repair.

It re-lists the call log (so it also catches recordings the state never knew about), checks that
each recording is in the destination with the recorded size and sha256 (from the state, the S3
metadata and the sidecar), and re-reads a sample of the objects in full to re-hash them.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import datetime

from archiver.keys import sidecar_key
from archiver.runner import Runtime


@dataclass
class VerifyResult:
    checked: int = 0
    rehashed: int = 0
    missing: list[tuple[str, str]] = field(default_factory=list)  # (recording id, why)
    corrupt: list[tuple[str, str]] = field(default_factory=list)
    scan_errors: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing and not self.corrupt and not self.scan_errors


def _expected(rt: Runtime, recording_id: str) -> tuple[str, int, str] | None:
    """(key, size, sha256) the archive should hold, from the state or, failing that, the destination."""
    row = rt.state.get(recording_id)
    if row is None:
        return None
    if row.status == "archived" and row.key and row.size is not None and row.sha256:
        return row.key, row.size, row.sha256
    found = rt.archiver.find_stored(row.ref)
    if found is None:
        return None
    key, stored, sidecar = found
    sha256 = str(sidecar["sha256"]) if sidecar else stored.sha256
    return (key, stored.size, sha256) if sha256 else None


def _rehash(rt: Runtime, key: str) -> str:
    digest = hashlib.sha256()
    with rt.destination.open(key) as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def verify(
    rt: Runtime,
    start: datetime,
    end: datetime,
    sample_percent: float,
    repair: bool,
    rng: random.Random | None = None,
) -> VerifyResult:
    rng = rng or random.Random()
    result = VerifyResult()
    found, result.scan_errors = rt.archiver.scan_window(start, end)
    for recording_id in sorted(found):
        result.checked += 1
        expected = _expected(rt, recording_id)
        if expected is None:
            result.missing.append((recording_id, "not in the destination"))
            continue
        key, size, sha256 = expected
        stored = rt.destination.stat(key)
        if stored is None:
            result.missing.append((recording_id, f"object {key} is missing"))
            continue
        if stored.size != size:
            result.corrupt.append((recording_id, f"{key} has {stored.size} bytes, expected {size}"))
            continue
        if stored.sha256 is not None and stored.sha256 != sha256:
            result.corrupt.append((recording_id, f"{key} metadata sha256 differs from the recorded one"))
            continue
        sidecar = rt.archiver.read_sidecar(sidecar_key(key))
        if sidecar is None:
            result.missing.append((recording_id, f"sidecar {sidecar_key(key)} is missing"))
            continue
        if sidecar.get("sha256") != sha256:
            result.corrupt.append((recording_id, f"sidecar {sidecar_key(key)} names another sha256"))
            continue
        if rng.random() * 100 < sample_percent:
            result.rehashed += 1
            if _rehash(rt, key) != sha256:
                result.corrupt.append((recording_id, f"{key} content does not hash to the recorded sha256"))
    if repair:
        for recording_id, why in result.missing:
            rt.state.requeue(recording_id, f"verify: {why}")
        for recording_id, why in result.corrupt:
            # force: the object under the key exists but is wrong, so it must be replaced
            rt.state.requeue(recording_id, f"verify: {why}", force_upload=True)
    return result
