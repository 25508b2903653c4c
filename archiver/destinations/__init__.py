"""Destinations, picked by URL scheme in one function."""

from __future__ import annotations

from archiver.destinations.base import Destination, StoredObject
from archiver.destinations.local import LocalDestination
from archiver.destinations.s3 import S3Destination, make_s3_client
from archiver.errors import SettingsError

__all__ = ["Destination", "StoredObject", "open_destination"]


def open_destination(
    url: str, *, s3_max_attempts: int = 10, multipart_threshold: int = 16 * 1024 * 1024
) -> Destination:
    if url.startswith("s3://"):
        return S3Destination(url, make_s3_client(s3_max_attempts), multipart_threshold)
    if url.startswith("file://"):
        return LocalDestination(url)
    raise SettingsError(
        f"RC_ARCHIVER_DESTINATION: unsupported scheme in {url[:80]!r}", hint="use s3:// or file://"
    )
