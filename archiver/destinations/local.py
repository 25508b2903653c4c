"""A local folder destination: `file:///absolute/dir`.

Each object is written to a uniquely named temporary file in a staging folder inside the root (the same
file system, so the final rename is atomic), given its metadata, fsynced, renamed into place, and the
parent folder fsynced: a reader never sees a partial file under a final name, and of two writers of one
key the last rename wins whole. Staging leftovers of a killed writer are removed only by recover(), and
only when older than the time it is given: a younger file may be another process's write in progress.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import unquote, urlsplit

from archiver.destinations.base import StoredObject, normalise_metadata, open_source
from archiver.destinations.folder_metadata import META_DIR, Attributes, FolderMetadata, fsync_dir
from archiver.destinations.registry import Backend, register
from archiver.errors import DestinationError, SettingsError
from archiver.keys import check_key

if TYPE_CHECKING:
    from archiver.destinations.base import UploadJournal
    from archiver.settings import Settings

STAGING = ".rc-archiver-staging"
RESERVED = frozenset({STAGING, META_DIR})
PART_PREFIX = ".part-"
_HINTS = {
    errno.ENOSPC: "free space on the destination's disk",
    errno.EDQUOT: "raise the archiver user's disk quota or free space",
    errno.EROFS: "the file system is read-only: remount it read-write or choose another folder",
    errno.EACCES: "give the archiver's user write access or fix RC_ARCHIVER_DESTINATION",
    errno.EPERM: "give the archiver's user write access or fix RC_ARCHIVER_DESTINATION",
}


class LocalDestination:
    def __init__(self, url: str, *, xattrs: bool = True) -> None:
        self.url = url
        self.root = Path(unquote(urlsplit(url).path)).resolve()
        self._staging = self.root / STAGING
        self._meta = FolderMetadata(self.root, self._staging, xattrs=xattrs and hasattr(os, "setxattr"))
        self._known_dirs: set[Path] = set()  # folders already created: skips a mkdir per write

    def _fail(self, exc: OSError, doing: str) -> DestinationError:
        return DestinationError(
            f"cannot {doing} in {self.root}: {exc.strerror or exc}",
            hint=_HINTS.get(exc.errno or 0, "check the destination's disk"),
        )

    def _path(self, key: str) -> Path:
        # check_key guarantees a relative key without '..' segments, so joining it to the resolved
        # root stays inside the root lexically; no per-call resolve() (a syscall per component).
        checked = check_key(key)
        if checked.split("/", 1)[0] in RESERVED:
            raise SettingsError(
                f"the key {key[:120]!r} names the archiver's own folder {checked.split('/', 1)[0]}",
                hint="start RC_ARCHIVER_KEY_TEMPLATE with something else",
            )
        return self.root / checked

    def probe(self) -> None:
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise DestinationError(
                f"destination folder {self.root} {what}",
                hint="create it (and make it writable by the archiver's user) or fix RC_ARCHIVER_DESTINATION",
            )
        payload = f"rc-archiver probe {uuid.uuid4().hex}\n".encode()
        try:
            self._staging.mkdir(exist_ok=True)
            fd, name = tempfile.mkstemp(dir=self._staging, prefix=".probe-")
            probe = Path(name)
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(payload)
                    out.flush()
                    os.fsync(out.fileno())
                renamed = probe.with_name(f"{probe.name}-renamed")  # a write ends in a rename: try one
                os.replace(probe, renamed)
                probe = renamed
                if probe.read_bytes() != payload:
                    raise DestinationError(f"destination folder {self.root} returned different bytes")
            finally:
                probe.unlink(missing_ok=True)
        except OSError as exc:
            raise DestinationError(
                f"destination folder {self.root} is not writable: {exc.strerror or exc}",
                hint=_HINTS.get(exc.errno or 0, "check the destination's disk"),
            ) from None

    def put(
        self,
        key: str,
        source: Path | bytes,
        *,
        content_type: str,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        target = self._path(key)
        attrs = Attributes(content_type, normalise_metadata(metadata))
        with open_source(source) as stream:
            self._write(key, target, stream, attrs)

    def _write(self, key: str, target: Path, stream: BinaryIO, attrs: Attributes) -> None:
        try:
            self._ensure_dir(target.parent)
            self._ensure_dir(self._staging)
            fd, tmp_name = tempfile.mkstemp(dir=self._staging, prefix=PART_PREFIX)
        except OSError as exc:
            raise self._fail(exc, f"write {key[:120]!r}") from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(stream, out, 1024 * 1024)
                out.flush()
                self._meta.attach(out.fileno(), key, attrs)
                os.fchmod(out.fileno(), 0o640)
                os.fsync(out.fileno())
            replaced = self._inode(target) if not self._meta.xattrs else None
            self._replace(tmp, target)
            self._meta.forget(key, replaced)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise self._fail(exc, f"write {key[:120]!r}") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _ensure_dir(self, path: Path) -> None:
        if path not in self._known_dirs:
            path.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(path)

    def _replace(self, tmp: Path, target: Path) -> None:
        try:
            os.replace(tmp, target)
        except FileNotFoundError:
            # The cached parent folder was removed since (by hand, or an emptied tree): make it again, once.
            self._known_dirs.discard(target.parent)
            self._ensure_dir(target.parent)
            os.replace(tmp, target)
        fsync_dir(target.parent)

    @staticmethod
    def _inode(path: Path) -> int | None:
        try:
            return path.stat().st_ino
        except FileNotFoundError:
            return None

    def stat(self, key: str) -> StoredObject | None:
        path = self._path(key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise self._fail(exc, f"check {key[:120]!r}") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None  # a folder that other keys live under is no object
            attrs = self._meta.read(fd, key)  # read through fd: the metadata of the version opened
        except OSError as exc:
            raise self._fail(exc, f"check {key[:120]!r}") from None
        finally:
            os.close(fd)
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        return StoredObject(key, info.st_size, attrs.metadata, attrs.content_type, modified=modified)

    def existing(self, keys: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for key in keys:
            try:
                if stat.S_ISREG(os.stat(self._path(key)).st_mode):
                    found.add(key)
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as exc:  # EIO, ESTALE, EACCES: the destination's failure, not the recording's
                raise self._fail(exc, f"check {key[:120]!r}") from None
        return found

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise DestinationError(f"no object {key[:120]!r} in {self.root}") from None
        except OSError as exc:
            raise self._fail(exc, f"read {key[:120]!r}") from None

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            inode = self._inode(path) if not self._meta.xattrs else None
            path.unlink(missing_ok=True)
            self._meta.forget(key, inode)
        except OSError as exc:
            raise self._fail(exc, f"delete {key[:120]!r}") from None

    def recover(self, before: datetime) -> int:
        """Remove staging files last written before `before`; a younger one may be another writer's."""
        try:
            entries = list(os.scandir(self._staging))
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise self._fail(exc, "list the staging folder") from None
        try:
            cutoff = before.timestamp() + self._clock_offset()
            removed = 0
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode) and info.st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:
                    continue  # its writer finished (or gave up) meanwhile
        except OSError as exc:
            raise self._fail(exc, "clean the staging folder") from None
        return removed

    def _clock_offset(self) -> float:
        """How far the file system's clock runs ahead of ours: NFS servers stamp files with their own clock,
        and local file systems with a coarse clock up to a tick behind time.time()."""
        with tempfile.NamedTemporaryFile(dir=self._staging, prefix=".clock-") as marker:
            return os.fstat(marker.fileno()).st_mtime - time.time()


def _folder_url_problem(url: str) -> str | None:
    if url[len("file://") :].startswith("/"):
        return None
    return "a folder destination is an absolute file:// URL, e.g. file:///srv/recordings"


def _folder_from_settings(settings: Settings, journal: UploadJournal | None) -> LocalDestination:
    assert settings.destination is not None  # destination_for required it
    return LocalDestination(settings.destination)


BACKEND = register(Backend("file", _folder_url_problem, _folder_from_settings))
