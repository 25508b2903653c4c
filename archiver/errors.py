"""The archiver's exception tree, and the one table that turns each branch into an exit code.

ArchiverError                       every expected error; `hint` says what to do about it
 +-- SettingsError           exit 2  a setting or command-line option is missing or invalid
 +-- AuthError               exit 3  login refused, a 401 no new token fixes, a missing permission
 +-- DestinationError        exit 4  the destination is missing, forbidden, unreachable or full
 |    +-- SpoolError         exit 4  the spool folder cannot be written (full, read-only, forbidden)
 +-- StateError              exit 4  the state file is unusable (bad path, read-only, corrupt, newer)
 +-- LockHeld                exit 5  another run holds the state's lock (or lease)
 +-- RingCentralUnavailable  exit 6  RingCentral unreachable or failing: the outage breaker tripped
 +-- Cancelled               -       the run is stopping; the work it interrupts is simply not done
 +-- RecordingError          -       about one recording: charged to its attempts, retried next run
 |    +-- NotReady                   404 CMN-102: the content is not available yet; stays pending
 |    +-- PermanentError             a per-recording 4xx, or a body that is no recording (empty, HTML)
 |    +-- TruncatedBody              the body ended before its length: resumed, then charged
 +-- TransientError          -       a failing world (5xx, timeouts, connections): retried with
      |                              backoff, never charged to a recording; counted by the breaker
      +-- RateLimited                429: the pacer holds the whole group
      +-- TokenExpired               a token-class 401: the token is renewed once, then retried

Exit 0 is a complete run (`ok`), or one stopped by a signal or its time limit in which nothing
failed (`stopped`); exit 1 (`incomplete`) a run in which a recording it attempted failed, was not yet
available or was lost, or a call-log day could not be read. Recordings exhausted by earlier runs and
not attempted in this one do not make it exit 1 (they have their own alert). Neither is an exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


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


class SpoolError(DestinationError):
    pass


class StateError(ArchiverError):
    pass


class LockHeld(ArchiverError):
    pass


class RingCentralUnavailable(ArchiverError):
    pass


class Cancelled(ArchiverError):
    """The wait for a slot (or for work) was abandoned because the run is stopping."""

    def __init__(self, message: str = "the run is stopping") -> None:
        super().__init__(message)


class RecordingError(ArchiverError):
    pass


class NotReady(RecordingError):
    pass


class PermanentError(RecordingError):
    pass


class TruncatedBody(RecordingError):
    """The connection ended before Content-Length bytes arrived; what did arrive is kept on disk."""


class TransientError(ArchiverError):
    pass


# How an error a reachable destination answered is worded (never "unreachable"): the server is there
# and refused (a 5xx, an unsupported option); the outage breaker names it the same way.
REFUSED_BY_DESTINATION = "refused by the destination"


class RateLimited(TransientError):
    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TokenExpired(TransientError):
    pass


EXIT_OK, EXIT_INCOMPLETE = 0, 1

# The one table: each error branch, its exit code and the `outcome` a run_summary reports for it.
EXIT_CODES: tuple[tuple[type[ArchiverError], int, str], ...] = (
    (SettingsError, 2, "settings"),
    (AuthError, 3, "auth"),
    (DestinationError, 4, "destination"),
    (StateError, 4, "destination"),
    (LockHeld, 5, "lock"),
    (RingCentralUnavailable, 6, "outage"),
)


# What each exit code means, written once: archiver/exit_codes_docs.py renders the CLI epilog (at
# run time) and docs/reference/exit-codes.md's table (`python -m archiver.exit_codes_docs --write`;
# a test fails on drift) from it and EXIT_CODES. Every code EXIT_CODES names needs an entry.
@dataclass(frozen=True)
class ExitCodeText:
    short: str  # the CLI epilog: a few words
    meaning: str  # the reference table: what happened
    action: str  # the reference table: what an operator does about it
    outcomes: tuple[str, ...] = ()  # run_summary outcomes of a code no error class gives (0 and 1)


EXIT_CODE_TEXTS: dict[int, ExitCodeText] = {
    EXIT_OK: ExitCodeText(
        "complete, or stopped by a signal or time limit with nothing failed",
        "`ok`: every recording found is archived (now or before) and every call-log day was read; "
        "recordings exhausted by earlier runs and not retried in this one do not count (they have "
        "their own alert). `stopped`: SIGTERM/SIGINT, which is how a time limit (TimeoutStartSec=, "
        "activeDeadlineSeconds) stops a run, and nothing it attempted failed: what it did not reach "
        "stays due for the next run; one that archived some counts as progress",
        "nothing; `stopped` every night: the backlog outgrows the time limit (runbook of "
        "`RcArchiverNoRecentSuccess`, Time limits)",
        outcomes=("ok", "stopped"),
    ),
    EXIT_INCOMPLETE: ExitCodeText(
        "recordings failed or not ready, or a call-log day unread (retried next run)",
        "a recording this run attempted failed, is not available yet, became exhausted or was lost, or "
        "a call-log day could not be read after every retry (`days_unreadable`, `unreadable_days`: "
        "read again by the next run, the watermark stays before it); those still savable stay queued "
        "(see the summary's `failures`)",
        "`rc-archiver status` lists the recordings with their reasons; the next run retries them and "
        "the unread days; repeated failures become exhausted (see the runbook of "
        "`RcArchiverRecordingsExhausted`)",
        outcomes=("incomplete",),
    ),
    2: ExitCodeText(
        "settings or usage",
        "settings or usage error: the message names each bad setting or option",
        "fix the setting the log line names, then `rc-archiver check`",
    ),
    3: ExitCodeText(
        "login refused or a missing permission",
        "authentication or permission: RingCentral refused the login, a 401 that no new token fixes, "
        "or a missing permission (named)",
        "login refused: check RC_CLIENT_ID, the client secret and the JWT (expired or revoked: create a "
        "new JWT credential); a missing permission is named: add it to the app, then `rc-archiver check`",
    ),
    4: ExitCodeText(
        "destination, spool or state unusable",
        "the destination, the spool or the state file is unusable (missing, forbidden, full, "
        "read-only, corrupt, newer than this version, failing, hung or refusing; an S3-hosted state "
        "changed by another writer, or its bucket missing)",
        "the log line names what and why: create the bucket or folder, fix its permissions, free "
        "space, or install the version that wrote the state; then `rc-archiver check`",
    ),
    5: ExitCodeText(
        "another run holds the lock",
        "another run holds the state's lock (or S3 lease)",
        "normal if runs overlap (`--wait-lock SECONDS` queues behind it); otherwise find the other run",
    ),
    6: ExitCodeText(
        "RingCentral unreachable or failing",
        "RingCentral is unreachable or failing (the outage breaker tripped); nothing was charged to "
        "any recording",
        "wait: the next run retries (the CronJob retries it at once); "
        "https://status.ringcentral.com shows RingCentral's own incidents",
    ),
}


def exit_code_for(exc: ArchiverError) -> int:
    """The exit code of an error that ends a command (1 for one the table does not name)."""
    return next((code for kind, code, _ in EXIT_CODES if isinstance(exc, kind)), EXIT_INCOMPLETE)


def outcome_for(exc: ArchiverError) -> str:
    """The run_summary `outcome` of a run that an error ended."""
    return next((outcome for kind, _, outcome in EXIT_CODES if isinstance(exc, kind)), "incomplete")


def event_name(exc: ArchiverError) -> str:
    """The log event of an error that ends a command: SettingsError -> settings_error."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()
