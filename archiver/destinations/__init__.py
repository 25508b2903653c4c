"""Destinations, picked by URL scheme in one function."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archiver.destinations.base import Destination, StoredObject, UploadJournal
from archiver.destinations.local import LocalDestination
from archiver.destinations.s3 import S3Destination, StorageOptions, make_s3_client
from archiver.errors import SettingsError

if TYPE_CHECKING:
    from archiver.settings import Settings

__all__ = [
    "Destination",
    "StorageOptions",
    "StoredObject",
    "UploadJournal",
    "destination_for",
    "open_destination",
]


def open_destination(
    url: str,
    *,
    s3_max_attempts: int = 10,
    multipart_threshold: int = 16 * 1024 * 1024,
    storage: StorageOptions | None = None,
    journal: UploadJournal | None = None,
) -> Destination:
    """The backend the URL's scheme names; `journal` records S3 multipart uploads (unused by folders)."""
    if url.startswith("s3://"):
        return S3Destination(url, make_s3_client(s3_max_attempts), multipart_threshold, storage, journal)
    if url.startswith("file://"):
        return LocalDestination(url)
    raise SettingsError(
        f"RC_ARCHIVER_DESTINATION: unsupported scheme in {url[:80]!r}", hint="use s3:// or file://"
    )


def destination_for(settings: Settings, *, journal: UploadJournal | None = None) -> Destination:
    """The destination the settings name, with their S3 options."""
    from archiver.settings import parse_tags

    settings.require("destination")
    assert settings.destination is not None
    storage = StorageOptions(
        sse=settings.s3_sse,
        kms_key_id=settings.s3_kms_key_id,
        storage_class=settings.s3_storage_class,
        tags=parse_tags(settings.s3_tags),
        object_lock_mode=settings.s3_object_lock_mode,
        object_lock_days=settings.s3_object_lock_days,
        legal_hold=settings.s3_legal_hold,
    )
    return open_destination(
        settings.destination,
        s3_max_attempts=settings.s3_max_attempts,
        multipart_threshold=settings.multipart_threshold,
        storage=storage,
        journal=journal,
    )
