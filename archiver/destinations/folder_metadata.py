"""Content type and metadata for the folder backend, stored with the object so a rename moves both at once.

Preferred home: one user extended attribute on the staged file, set before the rename (no extra file, no
extra fsync). Where the file system refuses user xattrs (ENOTSUP: some NFS, SMB and FUSE mounts, older
tmpfs), a small file under `.rc-archiver-meta/` is written and fsynced before the object's rename, named
after the object's key AND its inode. An object keeps its inode through the rename, so a reader always
finds the metadata of exactly the version it opened: a crash between the two renames, or two writers of
one key, can leave a stale metadata file behind, never metadata paired with the wrong bytes. ':' never
appears in a key (check_key refuses it), so a metadata file's name never clashes with a key's folder.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

XATTR = "user.rc-archiver"
META_DIR = ".rc-archiver-meta"
_NO_XATTRS = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.E2BIG}
_NO_ATTRIBUTE = {errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP}


@dataclass(frozen=True)
class Attributes:
    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        return json.dumps({"content_type": self.content_type, "metadata": self.metadata}).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Attributes:
        try:
            doc = json.loads(raw)
            content_type = doc.get("content_type")
            metadata = {str(k): str(v) for k, v in (doc.get("metadata") or {}).items()}
        except (ValueError, AttributeError):
            return cls()  # damaged by hand: the object is still there, its metadata is not
        return cls(content_type if isinstance(content_type, str) else None, metadata)


class FolderMetadata:
    def __init__(self, root: Path, staging: Path, *, xattrs: bool) -> None:
        self._meta_root = root / META_DIR
        self._staging = staging
        self.xattrs = xattrs  # False once the file system refused one: every later write uses files

    def attach(self, fd: int, key: str, attrs: Attributes) -> None:
        """Give the staged file at fd its attributes; done before the file is renamed into place."""
        if self.xattrs:
            try:
                os.setxattr(fd, XATTR, attrs.encode())
                return
            except OSError as exc:
                if exc.errno not in _NO_XATTRS:
                    raise
                self.xattrs = False
        self._write_file(self._file(key, os.fstat(fd).st_ino), attrs.encode())

    def read(self, fd: int, key: str) -> Attributes:
        """The attributes of the object open at fd (the version the caller opened, not a newer one)."""
        if self.xattrs:
            try:
                return Attributes.decode(os.getxattr(fd, XATTR))
            except OSError as exc:
                if exc.errno not in _NO_ATTRIBUTE:
                    raise
        try:
            return Attributes.decode(self._file(key, os.fstat(fd).st_ino).read_bytes())
        except FileNotFoundError:
            return Attributes()  # written before metadata was kept, or its metadata file was lost

    def forget(self, key: str, inode: int | None) -> None:
        """Drop the metadata file of a replaced or deleted version (files mode only; best effort)."""
        if inode is not None and not self.xattrs:
            with suppress(FileNotFoundError):
                self._file(key, inode).unlink()

    def _file(self, key: str, inode: int) -> Path:
        return self._meta_root / f"{key}:{inode}"

    def _write_file(self, path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._staging, prefix=".meta-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fchmod(out.fileno(), 0o640)
                os.fsync(out.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        fsync_dir(path.parent)  # durable before the object's rename that it must precede


def fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
