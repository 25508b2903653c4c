"""The destination interface: seven methods that take paths and streams, and the journal S3 uploads report to.

Every backend keeps the same promises, checked by one contract suite (tests/integration/test_destinations.py):
a put is atomic (complete under its key, or absent), metadata and content type come back from stat()
as they were put, a hostile key is refused before anything is written, probe() touches nothing but its
own probe object, and recover() removes only what an interrupted writer left behind.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

# S3 user metadata travels as HTTP headers (x-amz-meta-<name>) and comes back with lower-case names;
# every backend accepts only what survives that trip, so metadata round-trips the same everywhere.
_METADATA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]*")
_METADATA_VALUE = re.compile(r"[\x20-\x7e]*")


@dataclass(frozen=True)
class StoredObject:
    """What the destination says about any object under a key (audio, sidecar, manifest, probe): not a
    models.ArchivedObject, which needs a sha256 a destination does not give (S3 has none; metadata may
    name one). archive/layout.py's find_stored turns one into an ArchivedObject once the sidecar or the
    metadata vouches for its sha256; destinations know nothing of recordings."""

    key: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    retained_until: datetime | None = None  # S3 Object Lock retention; None where there is none
    legal_hold: bool = False
    lock_mode: str | None = None  # GOVERNANCE or COMPLIANCE, with retained_until
    modified: datetime | None = None  # when the destination says the object was written


class Destination(Protocol):
    """Where recordings go. Writes are atomic: an object exists complete under its key, or not at all."""

    url: str

    def probe(self) -> None:
        """Raise DestinationError unless writes can succeed: writes, reads back and deletes its own probe."""

    def put(
        self,
        key: str,
        source: Path | bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Store the file's (or the bytes') content under key, replacing what was there, atomically."""

    def stat(self, key: str) -> StoredObject | None:
        """What is stored under key, or None."""

    def existing(self, keys: Sequence[str]) -> set[str]:
        """Which of these keys hold an object, asked at once: S3 sends one LIST of the keys' common
        prefix (a recording's candidate keys and sidecar share their stem), not a HEAD per key."""

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Read an object as a stream; DestinationError if there is none."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def recover(self, before: datetime) -> int:
        """Remove what interrupted writers left behind (older than `before`); return how many."""


class UploadJournal(Protocol):
    """Where S3 multipart upload ids are recorded, so that an upload a kill interrupted is aborted later.

    upload_ended must accept an id that has already ended (recover() and the interrupted put may both end it).
    """

    def upload_started(self, key: str, upload_id: str) -> None:
        """Called after CreateMultipartUpload and before any part: key is the full key in the bucket."""

    def upload_ended(self, upload_id: str) -> None:
        """Called once the upload is completed or aborted."""

    def unended_uploads(self) -> list[tuple[str, str]]:
        """(key, upload_id) of every upload started and never ended."""


def normalise_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Lower-case names; ValueError for a name or value S3 could not carry unchanged (a caller's bug)."""
    out: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        lowered = name.lower()
        if not _METADATA_NAME.fullmatch(lowered):
            raise ValueError(f"metadata name {name[:40]!r} is not a lower-case token")
        if not _METADATA_VALUE.fullmatch(value):
            raise ValueError(f"metadata {lowered!r} holds characters other than printable ASCII")
        out[lowered] = value
    return out


def open_source(source: Path | bytes) -> AbstractContextManager[BinaryIO]:
    """What put() stores, as a seekable stream. A file that cannot be opened raises its own OSError:
    that is the caller's (the spool's) problem, not the destination's."""
    return source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
