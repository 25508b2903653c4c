"""Every key a destination holds below a folder: what `index rebuild` walks to find the sidecars.

Not part of the Destination protocol (the archiver itself never lists: it knows its keys); one function
per backend, picked by type.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from archiver.destinations.base import Destination
from archiver.destinations.local import RESERVED, LocalDestination
from archiver.destinations.s3 import S3Destination
from archiver.destinations.s3_hold import list_s3_keys


def list_keys(destination: Destination, under: str = "") -> Iterator[str]:
    """Keys relative to the destination's root (its own bookkeeping folders left out), sorted per folder."""
    if isinstance(destination, S3Destination):
        yield from list_s3_keys(destination, under)
        return
    if not isinstance(destination, LocalDestination):
        raise TypeError(f"cannot list {type(destination).__name__}")
    root = destination.root
    for folder, dirs, files in os.walk(root / under if under else root):
        dirs[:] = sorted(d for d in dirs if d not in RESERVED)
        relative = os.path.relpath(folder, root)
        for name in sorted(files):
            yield name if relative == "." else f"{relative}/{name}"
