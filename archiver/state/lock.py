"""One run at a time per state file: an exclusive OS lock (flock) on `<state>.lock`, held for the run."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from archiver.errors import LockHeld, StateError

# `status` probes the lock by taking it shared for a moment (flock has no test without taking it); a
# run starting in that moment waits this long before it calls the lock held, so a report never makes
# a run exit 5.
PROBE_GRACE = 0.5  # seconds


class FileLock:
    """An exclusive flock on a file beside the state; released on close or when the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, wait_seconds: float = 0.0) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _unusable(self.path, exc) from None
        deadline = time.monotonic() + max(wait_seconds, PROBE_GRACE)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LockHeld(
                        f"another run holds the lock on {self.path}",
                        hint="wait for it to finish, or pass --wait-lock SECONDS to wait for it",
                    ) from None
                time.sleep(0.05 if wait_seconds <= PROBE_GRACE else 0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def held_by_another(self) -> bool:
        """True while some process holds the lock (for `status`: a live run, not a killed one)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def _unusable(path: Path, exc: OSError) -> StateError:
    if exc.errno == errno.EROFS:
        why = "is on a read-only file system"
    elif exc.errno in (errno.ENOTDIR, errno.EEXIST):
        why = "has a parent that is not a folder"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        why = "is not writable by this user"
    else:
        why = f"cannot be used ({exc.strerror})"
    return StateError(
        f"state file {path} {why}",
        hint="point RC_ARCHIVER_STATE_PATH at a writable file (under systemd: StateDirectory=)",
    )


def lock_for(path: Path) -> FileLock:
    return FileLock(path.with_name(path.name + ".lock"))


def prepare_folder(path: Path) -> None:
    """Create the state file's folder (a run does this; `check` never does)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise _unusable(path, exc) from None
