"""A destination kept in memory, as a third party would write one: one module, a Backend, and an entry
point (tests/integration/test_destination_plugins.py installs it). It keeps the Protocol's promises
the simple way: a put is atomic because a dict assignment is."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from archiver.destinations import Backend, StoredObject
from archiver.destinations.base import normalise_metadata, open_source
from archiver.errors import DestinationError
from archiver.keys import check_key

if TYPE_CHECKING:
    from archiver.destinations import UploadJournal
    from archiver.settings import Settings

STORES: dict[str, dict[str, tuple[bytes, str, dict[str, str]]]] = {}  # url -> key -> object
_LOCK = threading.Lock()


class MemoryDestination:
    def __init__(self, url: str) -> None:
        self.url = url
        self._objects = STORES.setdefault(url, {})

    def probe(self) -> None:
        self.put("_probe", b"x", content_type="text/plain")
        self.delete("_probe")

    def put(
        self, key: str, source: Path | bytes, *, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> None:
        check_key(key)
        with open_source(source) as stream:
            data = stream.read()
        with _LOCK:
            self._objects[key] = (data, content_type, normalise_metadata(metadata))

    def stat(self, key: str) -> StoredObject | None:
        with _LOCK:
            found = self._objects.get(key)
        if found is None:
            return None
        data, content_type, metadata = found
        return StoredObject(key, len(data), dict(metadata), content_type, modified=datetime.now(UTC))

    def existing(self, keys: Sequence[str]) -> set[str]:
        with _LOCK:
            return {key for key in keys if key in self._objects}

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        with _LOCK:
            found = self._objects.get(key)
        if found is None:
            raise DestinationError(f"{key} is not in {self.url}")
        yield io.BytesIO(found[0])

    def delete(self, key: str) -> None:
        with _LOCK:
            self._objects.pop(key, None)

    def recover(self, before: datetime) -> int:
        return 0  # nothing is ever half-written


def _url_problem(url: str) -> str | None:
    return None if len(url) > len("mem://") else "a memory destination is mem://name"


def _from_settings(settings: Settings, journal: UploadJournal | None) -> MemoryDestination:
    assert settings.destination is not None
    return MemoryDestination(settings.destination)


BACKEND = Backend("mem", _url_problem, _from_settings)
