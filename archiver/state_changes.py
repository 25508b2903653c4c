"""Which chunks of a live SQLite database (WAL mode) changed since the last push, and their bytes at one
committed point, without reading the rest of the file: what makes an incremental checkpoint cost what
changed rather than what the file holds (archiver/state_replication.py uploads them).

In WAL mode every committed change reaches the database as a WAL frame naming its page number, and
reaches the main file only when a checkpoint copies frames back ("backfill"); the WAL is started over
("restarted", with new salts) only once every frame has been copied back. Between two pushes the
tracker holds a read transaction of its own (`_guard`) opened at the last push's point P, and SQLite
then guarantees (wal.c, walCheckpoint / walRestartLog):
- if the guard reads the WAL (read mark > 0): no frame after P is copied back and the WAL is never
  restarted, so every page changed since P is in the frames after P's last frame;
- if the guard reads the main file alone (read mark 0: the WAL was wholly copied back at P): nothing at
  all is copied back, so the WAL can restart at most once, and every page changed since P is in the
  frames of the WAL's current generation.
A push takes the write lock for a moment (BEGIN IMMEDIATE: no transaction is half-written then), reads
the new frame headers (24 bytes each), cross-checks its count of frames with SQLite's own (a PASSIVE
checkpoint reports it, and copies back what it can, so the WAL stays short), moves the guard to this new
point and lets the writer go on. The changed chunks are then read beside the running writer: a page's
bytes at that point are in its newest frame up to it (frames the guard protects), or in the main file
(which the guard keeps from being overwritten by later frames).

Page 1 is always re-read: a journal-mode switch writes its header straight to the file, not via the WAL.
Anything unexpected (not WAL mode, a count that disagrees with SQLite's, a changed page size) raises
TrackingLost: the caller then pushes a full consistent copy instead and the tracker starts over.
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

WAL_HEADER = 32
FRAME_HEADER = 24
WAL_MAGIC = (0x377F0682, 0x377F0683)
LOCK_TIMEOUT = 30.0  # seconds a push waits for the run's write transaction to end


class TrackingLost(Exception):
    """The tracker cannot vouch for which pages changed: push the whole database instead."""


@dataclass(frozen=True)
class Capture:
    """The database at one committed point: its size, the chunks that may differ from the last settled
    push (None: every chunk), and a way to read any chunk's bytes at that point."""

    size: int
    changed: frozenset[int] | None
    _tracker: ChangeTracker = field(repr=False)

    def read_chunk(self, index: int) -> bytes:
        return self._tracker.read_chunk(index, self.size)


def take_write_lock(db: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, retried every millisecond: SQLite's busy handler sleeps ever longer and would
    keep missing the moments between a busy writer's transactions. Raises sqlite3.OperationalError
    after LOCK_TIMEOUT (nothing has changed then: the next push tries again)."""
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        try:
            db.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(0.001)


def passive_checkpoint(guard: sqlite3.Connection) -> tuple[int, int, int]:
    """SQLite's count of committed WAL frames, after copying back what no reader needs (PASSIVE: it
    waits for nobody). Run on a connection outside any transaction (the tracker's guard, between its
    reads): a checkpoint needs one with none, and the one holding the write lock is in one."""
    assert not guard.in_transaction
    deadline = time.monotonic() + LOCK_TIMEOUT
    while True:
        busy, frames, backfilled = guard.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if not (busy and frames == -1) or time.monotonic() > deadline:
            return int(busy), int(frames), int(backfilled)
        time.sleep(0.005)  # the writer's own checkpoint (after its commit) is running: let it end


class ChangeTracker:
    """The changed chunks of the database at `path` since the last settled push; one per working copy.
    Until settle() the changes keep accumulating, so a push that fails is redone whole by the next."""

    def __init__(self, path: Path, chunk_size: int) -> None:
        self.path = path
        self.wal = Path(f"{path}-wal")
        self.chunk_size = chunk_size
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None  # takes the write lock
        self._guard: sqlite3.Connection | None = None  # holds the read transaction between pushes
        # The files are read through descriptors opened once and closed last: closing any descriptor of
        # a file drops every POSIX lock this process holds on it, SQLite's included.
        self._files: dict[Path, int] = {}
        self._baseline = False  # whether a settled push (or the downloaded file) is what changes count from
        self._pending: set[int] = set()  # chunks changed since the last settled push
        self._salts: bytes | None = None  # the WAL generation the frame numbers below belong to
        self._frames = 0  # the last committed frame read in that generation
        self._pages = 0  # the database's size in pages at that frame
        self._frame_of: dict[int, int] = {}  # page -> its newest frame up to _frames (readable ones)
        self._page_size = 0

    # -- connections --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None, timeout=LOCK_TIMEOUT, check_same_thread=False)

    def _writer(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._connect()
            self._db.execute("PRAGMA busy_timeout = 0")  # take_write_lock() waits its own way
            self._page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            if self.chunk_size % self._page_size:
                raise TrackingLost(f"page size {self._page_size} does not divide the chunk size")
        return self._db

    def _guarding(self) -> sqlite3.Connection:
        if self._guard is None:
            self._guard = self._connect()
        return self._guard

    def _hold(self) -> None:
        """Open the guard's read transaction at the current point (call with the write lock held)."""
        guard = self._guarding()
        guard.execute("BEGIN")
        guard.execute("SELECT count(*) FROM sqlite_master").fetchone()  # the snapshot starts here

    def _let_go(self) -> None:
        if self._guard is not None and self._guard.in_transaction:
            self._guard.execute("ROLLBACK")

    def _fd(self, path: Path) -> int:
        if path not in self._files:
            self._files[path] = os.open(path, os.O_RDONLY)
        return self._files[path]

    def close(self) -> None:
        with self._lock:
            for db in (self._guard, self._db):
                if db is not None:
                    db.close()
            self._guard = self._db = None
            for fd in self._files.values():
                os.close(fd)
            self._files.clear()

    # -- the baseline ---------------------------------------------------------------------------------
    def adopt(self) -> None:
        """The file on disk is exactly what the last push (the manifest just downloaded) describes and
        nothing has opened it yet: count changes from here. Switches it to WAL mode first (a reader in
        rollback mode would block every write)."""
        with self._lock:
            db = self._writer()
            if db.execute("PRAGMA journal_mode=WAL").fetchone()[0] != "wal":
                raise TrackingLost("the database cannot be put in WAL mode")
            take_write_lock(db)
            try:
                self._restart_count(self._read_wal_header())
                self._hold()
            finally:
                db.execute("ROLLBACK")
            self._baseline = True
            self._pending = {0}

    def forget(self) -> None:
        """The saved state is no longer what changes were counted from (a restore, a failed capture)."""
        with self._lock:
            self._baseline = False
            self._let_go()

    def settle(self) -> None:
        """The last capture is saved: its changes are no longer pending (none is recorded between a
        capture and its settle: frames are read by capture() alone)."""
        with self._lock:
            self._pending = {0}  # page 1 is always re-read (see the module's docstring)
            self._baseline = True

    # -- a push -------------------------------------------------------------------------------------
    def capture(self) -> Capture:
        """Move to the current committed point and report what changed since the last settled one."""
        with self._lock:
            db = self._writer()
            take_write_lock(db)
            try:
                tracked = self._baseline and self._guard is not None and self._guard.in_transaction
                self._let_go()  # nothing can be written meanwhile: the write lock is held
                header = self._read_wal_header()
                if not tracked or header is None or header[1] != self._salts:
                    self._restart_count(header)
                if header is not None:
                    self._read_frames(header)
                _, frames, backfilled = passive_checkpoint(self._guarding())
                if frames != self._frames:  # (-1: not in WAL mode)
                    self._baseline = False
                    raise TrackingLost(f"{self._frames} WAL frames read, SQLite counts {frames}")
                if backfilled == frames:
                    # All copied back: the guard reads the main file alone, and the WAL may restart
                    # (overwriting its frames) as soon as the writer goes on: read pages from the file.
                    self._frame_of.clear()
                self._hold()
            finally:
                db.execute("ROLLBACK")
            size = self._pages * self._page_size
            return Capture(size, frozenset(self._pending) if tracked else None, self)

    def _read_wal_header(self) -> tuple[int, bytes] | None:
        """(page size, salts) of the WAL as it is now, None when there is none (or not yet a valid one)."""
        try:
            raw = os.pread(self._fd(self.wal), WAL_HEADER, 0)
        except FileNotFoundError:
            return None
        if len(raw) < WAL_HEADER:
            return None
        magic, _, page_size = struct.unpack(">III", raw[:12])
        if magic not in WAL_MAGIC:
            return None
        if page_size != self._page_size:
            self._baseline = False
            raise TrackingLost(f"WAL page size {page_size}, the database's {self._page_size}")
        return page_size, raw[16:24]

    def _restart_count(self, header: tuple[int, bytes] | None) -> None:
        """A new WAL generation (or none): its frames are counted from the first; pages not in it are in
        the main file, whose size is the database's."""
        self._salts = header[1] if header else None
        self._frames = 0
        self._frame_of.clear()
        self._pages = os.path.getsize(self.path) // self._page_size

    def _read_frames(self, header: tuple[int, bytes]) -> None:
        """Read the frame headers after the last committed frame counted; frames after the last commit
        (a rolled-back transaction's leftovers) are not counted."""
        page_size, salts = header
        frame_size = FRAME_HEADER + page_size
        seen: list[tuple[int, int]] = []
        wal = self._fd(self.wal)
        number = self._frames + 1
        while True:
            raw = os.pread(wal, FRAME_HEADER, WAL_HEADER + (number - 1) * frame_size)
            if len(raw) < FRAME_HEADER or raw[8:16] != salts:
                break
            page, pages_after = struct.unpack(">II", raw[:8])
            seen.append((page, number))
            if pages_after:  # a commit frame: everything up to here is committed
                for page, frame in seen:
                    self._frame_of[page] = frame
                    self._pending.add((page - 1) * page_size // self.chunk_size)
                seen.clear()
                self._frames, self._pages = number, pages_after
            number += 1

    def read_chunk(self, index: int, size: int) -> bytes:
        """Chunk `index` of the database at the captured point: the main file's bytes, each page with a
        newer frame replaced by that frame's."""
        start = index * self.chunk_size
        length = min(self.chunk_size, size - start)
        body = bytearray(os.pread(self._fd(self.path), length, start))
        page_size = self._page_size
        first = start // page_size + 1
        count = length // page_size
        frames = [(p, self._frame_of[p]) for p in range(first, first + count) if p in self._frame_of]
        if len(body) < length:  # pages past the main file's end must all come from the WAL
            in_wal = {p for p, _ in frames}
            missing = [p for p in range(first + len(body) // page_size, first + count) if p not in in_wal]
            if missing:
                raise TrackingLost(f"page {missing[0]} is in neither the file nor the WAL")
            body.extend(bytes(length - len(body)))
        frame_size = FRAME_HEADER + page_size
        for page, frame in frames:
            at = (page - first) * page_size
            offset = WAL_HEADER + (frame - 1) * frame_size + FRAME_HEADER
            body[at : at + page_size] = os.pread(self._fd(self.wal), page_size, offset)
        return bytes(body)
