"""Destinations, looked up by URL scheme in one registry (registry.py: start there to add one)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.destinations.base import Destination, StoredObject, UploadJournal
from archiver.destinations.local import LocalDestination
from archiver.destinations.registry import Backend, backend_for, register
from archiver.destinations.s3 import (
    S3Destination,
    S3Timeouts,
    make_s3_client,
    s3_client_for,
    s3_timeouts,
)
from archiver.destinations.s3_options import StorageOptions

if TYPE_CHECKING:
    from archiver.settings import Settings

__all__ = [
    "Backend",
    "Destination",
    "StorageOptions",
    "StoredObject",
    "UploadJournal",
    "backend_for",
    "destination_for",
    "open_destination",
    "register",
    "s3_client_for",
    "s3_timeouts",
]


def open_destination(
    url: str,
    *,
    s3_max_attempts: int = 10,
    multipart_threshold: int = 16 * 1024 * 1024,
    storage: StorageOptions | None = None,
    journal: UploadJournal | None = None,
    timeouts: S3Timeouts | None = None,
) -> Destination:
    """A built-in backend with explicit options, for tests and tools (a run uses destination_for)."""
    scheme = backend_for(url).scheme
    if scheme == "s3":
        client = make_s3_client(s3_max_attempts, timeouts)
        return S3Destination(url, client, multipart_threshold, storage, journal)
    if scheme == "file":
        return LocalDestination(url)
    raise ValueError(f"open_destination builds the built-in backends only, not {scheme}://")


def destination_for(settings: Settings, *, journal: UploadJournal | None = None) -> Destination:
    """The destination the settings name, built by the backend its scheme registered."""
    settings.require("destination")
    assert settings.destination is not None
    return backend_for(settings.destination).from_settings(settings, journal)
