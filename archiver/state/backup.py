"""`rc-archiver state backup|restore|migrate`: the state's own safety net, local or in S3.

backup   a consistent copy (SQLite's online backup API), safe while a run writes; mode 0600
restore  a backup checked (integrity, an rc-archiver state, a schema this version knows) and put in
         place of the state under the run lock, the replaced state kept as `<state>.replaced-<stamp>`
migrate  the schema migration a run would do (with its snapshot first), without the run
compact  drop the raw call-log records the archive's sidecars keep (state/compaction.py)

A PATH that is no valid state is a usage error (exit 2: nothing was touched); a backup of a newer
schema is exit 4, as the state itself would be; a run holding the lock is exit 5.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from archiver.errors import ArchiverError, SettingsError, StateError
from archiver.remote_state import S3State
from archiver.settings import Settings
from archiver.state import schema
from archiver.state.compaction import Compacted
from archiver.state.copies import beside, copy_database, describe, open_read_only, stamp
from archiver.state.lock import lock_for, prepare_folder

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Copied:
    """What a backup or restore did, for the command's one line of output."""

    path: str
    schema: int
    kept: str | None = None  # restore: where the replaced state went


def remote_state(settings: Settings) -> S3State:
    """The S3-hosted state of these settings (no lease taken: copy_to needs none)."""
    from archiver.destinations import s3_client_for

    digest = hashlib.sha256(settings.state_path.encode()).hexdigest()[:12]
    return S3State(
        settings.state_path,
        s3_client_for(settings),
        settings.spool_dir / f"s3-state-{digest}",
    )


def _free_target(target: Path) -> None:
    if target.exists() or target.is_symlink():
        raise SettingsError(
            f"state backup: {target} already exists", hint="name a new file (e.g. with the date in it)"
        )
    if not target.parent.is_dir():
        raise SettingsError(
            f"state backup: no folder {target.parent}", hint="create it, or name another file"
        )


def _checked(db: sqlite3.Connection, source: str, invalid: type[ArchiverError] = SettingsError) -> int:
    """The schema version of a state this version may use; refuses anything else (an invalid file as
    `invalid`: a usage error for a file the operator named, a state error for the state's own copy)."""
    try:
        verdict, version = describe(db)
    except sqlite3.DatabaseError as exc:
        verdict, version = f"not a SQLite database ({exc})", -1
    if verdict != "ok":
        hint = (
            "name a file written by `rc-archiver state backup` (or a pre-migration snapshot); the state "
            "was not changed"
            if invalid is SettingsError
            else "the state itself is damaged: restore the last good backup (`rc-archiver state restore`)"
        )
        raise invalid(f"{source} is not a valid rc-archiver state: {verdict[:200]}", hint=hint)
    if version > schema.SCHEMA_VERSION:
        raise StateError(
            f"{source} has schema {version}; this version knows up to {schema.SCHEMA_VERSION}",
            hint="restore it with the rc-archiver version that wrote it (or a newer one); the state was "
            "not changed",
        )
    return version


def backup_state(settings: Settings, target: Path) -> Copied:
    """A consistent copy of the state at `target` (a new file, mode 0600), whatever a run is doing."""
    from archiver.local_state import is_remote_state

    target = target.absolute()
    _free_target(target)
    staged = target.with_name(f".{target.name}.partial-{os.getpid()}")
    staged.unlink(missing_ok=True)
    try:
        if is_remote_state(settings):
            # The whole database already: the single object, or assembled from its manifest's chunks.
            remote_state(settings).copy_to(staged)
        else:
            path = Path(settings.state_path)
            if not path.is_file():
                raise SettingsError(
                    f"RC_ARCHIVER_STATE_PATH: no state file at {path}",
                    hint="check RC_ARCHIVER_STATE_PATH (under systemd: `sudo rc-archiver-as-service state "
                    "backup PATH`)",
                )
            source = open_read_only(path)
            try:
                copy_database(source, staged)
            finally:
                source.close()
        copy = open_read_only(staged)
        try:
            # A copy is worth only what it restores: checked like a restore would, before it is named.
            version = _checked(copy, f"the copy of {settings.state_path}", StateError)
        finally:
            copy.close()
        os.replace(staged, target)
    except sqlite3.Error as exc:
        raise StateError(
            f"state backup of {settings.state_path} failed: {exc}",
            hint="check the space and permissions of the backup's folder; the state was not changed",
        ) from None
    except OSError as exc:
        raise StateError(
            f"state backup to {target} failed: {exc.strerror}",
            hint="check the space and permissions of the backup's folder; the state was not changed",
        ) from None
    finally:
        staged.unlink(missing_ok=True)
    log.info("state_backup_written", path=str(target), schema=version, bytes=target.stat().st_size)
    return Copied(str(target), version)


def _stage(backup: Path, staged: Path) -> int:
    """Copy the backup to `staged` (next to the state) and check it; returns its schema version."""
    if not backup.is_file():
        raise SettingsError(f"state restore: no file {backup}", hint="name a backup file")
    try:
        source = open_read_only(backup)
        try:
            version = _checked(source, str(backup))
            copy_database(source, staged)
        finally:
            source.close()
    except sqlite3.DatabaseError as exc:
        raise SettingsError(
            f"{backup} is not a valid rc-archiver state: {exc}",
            hint="name a file written by `rc-archiver state backup`; the state was not changed",
        ) from None
    except OSError as exc:
        raise StateError(
            f"state restore: cannot copy {backup} beside the state: {exc.strerror}",
            hint="free space in the state's folder; the state was not changed",
        ) from None
    return version


def _swap(path: Path, staged: Path) -> Path | None:
    """Put `staged` in place of the state file, the old one (with its -wal, which may hold committed
    transactions of a killed run) renamed to `<state>.replaced-<stamp>`; call with the lock held."""
    kept: Path | None = None
    if path.exists():
        kept = beside(path, "replaced")
        os.rename(path, kept)
    # The old WAL must go before the new file is in place: SQLite would replay it into the restored one.
    for suffix in ("-wal", "-shm"):
        leftover = Path(f"{path}{suffix}")
        if leftover.exists():
            if kept is not None:
                os.rename(leftover, Path(f"{kept}{suffix}"))
            else:
                leftover.unlink()
    os.replace(staged, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)  # the renames survive a power cut
    finally:
        os.close(fd)
    return kept


def restore_state(settings: Settings, backup: Path, wait_lock: float) -> Copied:
    """Put `backup` in place of the state, refused while a run holds the lock (or the S3 lease)."""
    from archiver.local_state import is_remote_state

    backup = backup.absolute()
    if is_remote_state(settings):
        return _restore_remote(settings, backup, wait_lock)
    path = Path(settings.state_path).absolute()
    if backup == path:
        raise SettingsError("state restore: that is the state itself", hint="name a backup file")
    prepare_folder(path)
    lock = lock_for(path)
    lock.acquire(wait_lock)
    staged = path.with_name(f".{path.name}.restoring-{stamp()}-{os.getpid()}")
    try:
        version = _stage(backup, staged)
        try:
            kept = _swap(path, staged)
        except OSError as exc:
            raise StateError(
                f"state restore: cannot replace {path}: {exc.strerror}",
                hint="check the permissions of the state's folder; see `ls -l` there for what moved",
            ) from None
    finally:
        staged.unlink(missing_ok=True)
        lock.release()
    log.info("state_restored", state=str(path), backup=str(backup), schema=version, replaced=str(kept))
    return Copied(str(path), version, str(kept) if kept else None)


def _restore_remote(settings: Settings, backup: Path, wait_lock: float) -> Copied:

    remote = remote_state(settings)
    remote.local.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staged = remote.local.with_name(f"restoring-{os.getpid()}.db")
    staged.unlink(missing_ok=True)
    remote.acquire(wait_lock)
    try:
        version = _stage(backup, staged)
        kept = remote.replace_with(staged)
    finally:
        staged.unlink(missing_ok=True)
        remote.release()
    log.info("state_restored", state=settings.state_path, backup=str(backup), schema=version, replaced=kept)
    return Copied(settings.state_path, version, kept)


def migrate_state(settings: Settings, wait_lock: float) -> Copied:
    """Migrate the state to this version's schema now (a snapshot first), under the run lock."""
    from archiver.local_state import is_remote_state
    from archiver.wiring import held_state

    if not is_remote_state(settings) and not Path(settings.state_path).is_file():
        raise SettingsError(
            f"RC_ARCHIVER_STATE_PATH: no state file at {settings.state_path}",
            hint="check RC_ARCHIVER_STATE_PATH; a new state needs no migration",
        )
    with held_state(settings, wait_lock) as state:
        snapshot = state.pre_migration_snapshot
        version = state.schema_version
    return Copied(settings.state_path, version, str(snapshot) if snapshot else None)


def compact_state(
    settings: Settings, wait_lock: float, grace: timedelta, dry_run: bool, vacuum: bool
) -> Compacted:
    """`state compact` under the run lock (or the S3 lease); a dry run of a local state reads it only."""
    from archiver.local_state import is_remote_state
    from archiver.state import StateStore
    from archiver.wiring import held_state

    now = datetime.now(UTC)
    if dry_run and not is_remote_state(settings):
        path = Path(settings.state_path)
        if not path.is_file():
            raise SettingsError(
                f"RC_ARCHIVER_STATE_PATH: no state file at {path}", hint="check RC_ARCHIVER_STATE_PATH"
            )
        store = StateStore(path, read_only=True)
        try:
            return store.compact(now, grace, dry_run=True)
        finally:
            store.close()
    with held_state(settings, wait_lock) as state:
        return state.compact(now, grace, dry_run=dry_run, vacuum=vacuum)
