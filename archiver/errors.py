"""The archiver's exception tree. cli.py maps each branch to one exit code, in one table.

ArchiverError                 carries a hint: what to do about it
 +-- SettingsError            exit 2  a setting is missing or invalid (names every bad one)
 +-- AuthError                exit 3  RingCentral refused the client credentials or the JWT
 +-- DestinationError         exit 4  the bucket/folder is missing, unreachable or forbidden
 +-- LockHeld                 exit 5  another run holds the state file's lock
 +-- RecordingError           (never leaves a run: recorded on the recording, retried later)
 |    +-- NotReady            404 CMN-102: the content is not available yet; stays pending
 |    +-- PermanentError      400/403/404: fails the recording at once, reason recorded
 |    +-- TransientError      5xx, 408, connection errors, timeouts, short bodies: retried
 |         +-- RateLimited    429: the pacer holds the whole group until Retry-After
 |         +-- TokenExpired   401 on an API call: log in again once, retry
 +-- StateError               the state file is unusable (corrupt, newer schema)
"""

from __future__ import annotations


class ArchiverError(Exception):
    """Base of every error the archiver expects; `hint` says how to fix it."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


class SettingsError(ArchiverError):
    pass


class AuthError(ArchiverError):
    pass


class DestinationError(ArchiverError):
    pass


class LockHeld(ArchiverError):
    pass


class StateError(ArchiverError):
    pass


class RecordingError(ArchiverError):
    pass


class NotReady(RecordingError):
    pass


class PermanentError(RecordingError):
    pass


class TransientError(RecordingError):
    pass


class RateLimited(TransientError):
    def __init__(self, message: str, retry_after: float, group: str = "heavy") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.group = group


class TokenExpired(TransientError):
    pass


class TruncatedBody(TransientError):
    """The connection ended before Content-Length bytes arrived; `received` bytes are on disk."""

    def __init__(self, message: str, received: int) -> None:
        super().__init__(message)
        self.received = received
