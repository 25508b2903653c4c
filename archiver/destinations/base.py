"""The destination interface: a few methods that take paths and streams, never whole bodies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    sha256: str | None  # from the object's metadata, where the backend keeps it
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class Destination(Protocol):
    """Where recordings go. Writes are atomic: an object exists complete under its key, or not at all."""

    url: str

    def probe(self) -> None:
        """Raise DestinationError unless the destination exists and is reachable."""

    def put_file(self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]) -> None:
        """Store the file's bytes under key."""

    def put_bytes(self, key: str, data: bytes, *, content_type: str, plain: bool = False) -> None:
        """Store a small object (a sidecar, a manifest); `plain` skips retention (probe objects)."""

    def stat(self, key: str) -> StoredObject | None:
        """What is stored under key, or None."""

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """Read an object as a stream."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under prefix (relative to the destination's own prefix/root)."""
