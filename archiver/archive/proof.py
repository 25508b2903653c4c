"""The proof an archived recording must pass before RingCentral's copy may be deleted.

Deleting at the source cannot be undone: afterwards the archive is the only copy. So the proof compares
the archive with what RingCentral served, never only with our own records:

- provenance: the state's sha256 must come from our own download path, every body check passed
  (`downloaded`), or have been reproduced by a fresh download (`reproved`); rows adopted from the
  destination after a lost state, or migrated from an older state, are re-proved first (deletion.py);
- plausibility: more than 0 bytes, an audio content type, and the first bytes of an MP3 or WAV what
  such a file begins with;
- the object: present, of the recorded size, its metadata sha256 (if any) the recorded one, read back
  in full and hashed to the recorded sha256;
- the sidecar: present, naming this recording, this key, size and sha256;
- Object Lock, where configured: locked at least as strongly as the settings say (LockRequirement).

A reason is returned for the first check that fails ('' when all pass); nothing here writes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from archiver.archive.layout import META_SHA256, Layout
from archiver.destinations.base import Destination, StoredObject
from archiver.settings import Settings
from archiver.state import RecordingRow

CHUNK = 1024 * 1024
HEAD_BYTES = 12  # enough for "RIFF....WAVE" and an ID3 tag or an MPEG frame header
# Our own clock set the retain-until date when the object was written (s3.py); the destination dates
# the write. This much disagreement between the two clocks is tolerated, no more.
CLOCK_SLACK = timedelta(hours=1)
_STRENGTH = {"GOVERNANCE": 1, "COMPLIANCE": 2}
_MPEG = ("audio/mpeg", "audio/mp3", "audio/mpeg3", "audio/x-mpeg")
_WAV = ("audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave")


@dataclass(frozen=True)
class LockRequirement:
    """How strongly an object must be locked before its recording may be deleted at the source: the
    Object Lock settings, in the one place that reads them for that purpose."""

    mode: str = ""  # "", GOVERNANCE or COMPLIANCE
    days: int = 0
    legal_hold: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> LockRequirement:
        return cls(settings.s3_object_lock_mode, settings.s3_object_lock_days or 0, settings.s3_legal_hold)

    @property
    def required(self) -> bool:
        return bool(self.mode or self.legal_hold)

    def shortfall(self, stored: StoredObject, now: datetime) -> str:
        """'' when `stored` is locked at least as strongly as required, else why not. A legal hold
        always suffices; a retention must be of the configured mode or stronger, still running by the
        local clock, and reach `days` past the write as the destination dates it."""
        if not self.required or stored.legal_hold:
            return ""
        key = stored.key
        if not self.mode:
            return f"object {key} has no legal hold (RC_ARCHIVER_S3_LEGAL_HOLD is on)"
        if stored.retained_until is None or stored.lock_mode not in _STRENGTH:
            return f"object {key} has no Object Lock retention in place"
        if _STRENGTH[stored.lock_mode] < _STRENGTH[self.mode]:
            return (
                f"object {key} is locked in {stored.lock_mode} mode, weaker than the configured {self.mode}"
            )
        if stored.retained_until <= now:
            return f"object {key}'s retention ended {stored.retained_until.isoformat()}"
        written = stored.modified or now
        needed = written + timedelta(days=self.days) - CLOCK_SLACK
        if stored.retained_until < needed:
            return (
                f"object {key} is retained until {stored.retained_until.isoformat()}, less than the "
                f"configured {self.days} days after it was written ({written.isoformat()})"
            )
        return ""


def audio_head_ok(content_type: str, head: bytes) -> bool:
    """Whether an object's first bytes are what its audio type begins with (MP3: an ID3 tag or an
    MPEG frame sync; WAV: RIFF....WAVE). Other audio types have no cheap check and pass."""
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _MPEG:
        return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    if media in _WAV:
        return head[:4] == b"RIFF" and head[8:12] == b"WAVE"
    return True


def plausible(row: RecordingRow) -> str:
    """'' when the state's record of the archive could be a recording, else why not."""
    if not row.key or not row.sha256 or row.size is None:
        return "no archived key, size and sha256 in the state"
    if row.size <= 0:
        return f"object {row.key} is recorded with {row.size} bytes"
    content_type = (row.content_type or "").split(";", 1)[0].strip().lower()
    if not content_type.startswith("audio/"):
        return f"object {row.key} is recorded as {content_type or 'no content type'}, not audio"
    return ""


def prove(
    destination: Destination, layout: Layout, row: RecordingRow, lock: LockRequirement, now: datetime
) -> str:
    """'' when the archived copy of `row` passes every check of this module's docstring (provenance
    is the caller's), else the first reason it does not."""
    why = plausible(row)
    if why:
        return why
    key, size, sha256 = row.key or "", row.size or 0, row.sha256 or ""
    stored = destination.stat(key)
    if stored is None:
        return f"object {key} is missing"
    if stored.size != size:
        return f"object {key} has {stored.size} bytes, expected {size}"
    if stored.metadata.get(META_SHA256) not in (None, sha256):
        return f"object {key}'s metadata names another sha256"
    why = lock.shortfall(stored, now)
    if why:
        return why
    sidecar_key = layout.sidecar_key(key)
    sidecar = layout.read_sidecar(destination, sidecar_key)
    if sidecar is None:
        return f"sidecar {sidecar_key} is missing"
    expected = {"recording_id": row.recording_id, "key": key, "size": size, "sha256": sha256}
    wrong = [name for name, value in expected.items() if sidecar.get(name) != value]
    if wrong:
        return f"sidecar {sidecar_key} disagrees on {', '.join(wrong)}"
    digest, head = hashlib.sha256(), b""
    with destination.open(key) as stream:
        while chunk := stream.read(CHUNK):
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return f"object {key} does not hash to the sha256 recorded at download"
    if not audio_head_ok(row.content_type or "", head):
        return f"object {key} does not begin like {row.content_type}"
    return ""
