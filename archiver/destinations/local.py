"""A local folder destination: `file:///absolute/dir`.

Each object is written to a temporary file in a staging folder inside the root (the same file
system, so the final rename is atomic), fsynced, renamed into place, and the parent folder fsynced.
The staging folder is emptied when the destination is opened, so a killed run never leaves
temporary files behind, and a reader never sees a partial file under a final name.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from archiver.destinations.base import StoredObject
from archiver.errors import DestinationError
from archiver.keys import check_key

STAGING = ".rc-archiver-staging"


class LocalDestination:
    def __init__(self, url: str) -> None:
        self.url = url
        self.root = Path(unquote(urlsplit(url).path)).resolve()
        self._staging = self.root / STAGING
        self._known_dirs: set[Path] = set()  # folders already created: skips a mkdir per write

    def probe(self) -> None:
        if not self.root.is_dir():
            raise DestinationError(
                f"destination folder {self.root} does not exist",
                hint="create it (and make it writable by the archiver's user) or fix RC_ARCHIVER_DESTINATION",
            )
        try:
            self._staging.mkdir(exist_ok=True)  # made once here: every write stages into it
            for leftover in self._staging.iterdir():
                leftover.unlink(missing_ok=True)
            with tempfile.NamedTemporaryFile(dir=self._staging):
                pass
        except OSError as exc:
            raise DestinationError(
                f"destination folder {self.root} is not writable: {exc.strerror}",
                hint="give the archiver's user write access or fix RC_ARCHIVER_DESTINATION",
            ) from None

    def _path(self, key: str) -> Path:
        # check_key guarantees a relative key without '..' segments, so joining it to the resolved
        # root stays inside the root lexically; no per-call resolve() (a syscall per component).
        return self.root / check_key(key)

    def _write(self, key: str, fill: object) -> None:
        target = self._path(key)
        if target.parent not in self._known_dirs:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(target.parent)
        if self._staging not in self._known_dirs:
            self._staging.mkdir(exist_ok=True)
            self._known_dirs.add(self._staging)
        fd, tmp_name = tempfile.mkstemp(dir=self._staging, prefix=".part-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(fill, Path):
                    with fill.open("rb") as src:
                        shutil.copyfileobj(src, out, 1024 * 1024)
                else:
                    assert isinstance(fill, bytes)
                    out.write(fill)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, target)
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise DestinationError(
                f"cannot write {key[:120]!r}: {exc.strerror}", hint="check the disk"
            ) from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_file(self, key: str, path: Path, *, content_type: str, metadata: dict[str, str]) -> None:
        self._write(key, path)

    def put_bytes(self, key: str, data: bytes, *, content_type: str, plain: bool = False) -> None:
        self._write(key, data)

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return None
        return StoredObject(key, size, None)  # a folder keeps no metadata: the sidecar has the sha256

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            return self._path(key).open("rb")
        except FileNotFoundError:
            raise DestinationError(f"no object {key[:120]!r} in {self.root}") from None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list_keys(self, prefix: str = "") -> Iterator[str]:
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = sorted(d for d in dirnames if d != STAGING)
            for name in sorted(filenames):
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key
