"""Where the state is, and opening a local one to read: kept light (no network libraries), so that the
commands that only read it (status, find, export) start in a blink."""

from __future__ import annotations

from pathlib import Path

from archiver.errors import SettingsError
from archiver.settings import Settings
from archiver.state import StateStore


def is_remote_state(settings: Settings) -> bool:
    return settings.state_path.startswith("s3://")


def state_file(settings: Settings) -> Path:
    """The local state file (for commands that read a local state only)."""
    if is_remote_state(settings):
        raise SettingsError(
            "RC_ARCHIVER_STATE_PATH: this command reads a local state file, not an s3:// one",
            hint="copy it with `rc-archiver state backup FILE`, then run the command with "
            "RC_ARCHIVER_STATE_PATH=FILE (a copy: nothing it changes reaches the S3 state)",
        )
    return Path(settings.state_path)


def open_for_reading(path: Path) -> StateStore:
    """The state strictly read-only, without the run lock: nothing is created, migrated or switched,
    not even a -wal or -shm beside it (SQLite WAL lets a reader in beside a running writer, and a
    reader never waits for it). A state of an older schema is refused (exit 4), never migrated."""
    if not path.exists():
        raise SettingsError(
            f"RC_ARCHIVER_STATE_PATH: no state file at {path}",
            hint="check RC_ARCHIVER_STATE_PATH: the service's state is in its StateDirectory, read it as "
            "the service (`sudo rc-archiver-as-service status`; in Kubernetes, deploy/kubernetes/"
            "rc-archiver-job status); a state file appears with the service's first scheduled run",
        )
    return StateStore(path, read_only=True)
