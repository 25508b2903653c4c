"""`rc-archiver check`: calibrate against the account and the destination, one line per check.

What it proves and measures (`check --json` prints the same as one object):
  settings, state        valid settings; a usable state (local file read-only: check creates nothing)
  login, scope           the JWT login works; the token's scope holds ReadCallLog and ReadCallRecording
                         (and EditCallLog when deleting at the source is on)
  call log               the company call log for the last 24 h, read twice: without and with the
                         recordingType filter, which tells which reading of the filter holds here
                         (facts leg_only_recordings, unfiltered_only_recordings)
  recording              the first byte of one recording (Range: bytes=0-0): ReadCallRecording and the
                         media host work; the rate group, limit and window the media reply names
  destination            a write, read and delete round trip
A failing check carries the exit code its error class has in `run` (errors.exit_code_for), so
`check` and `run` exit alike; `CheckReport.exit_code` is the first failure's.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.destinations import destination_for
from archiver.errors import (
    EXIT_OK,
    ArchiverError,
    AuthError,
    RingCentralUnavailable,
    SettingsError,
    StateError,
    exit_code_for,
)
from archiver.models import Recording
from archiver.ringcentral.client import RingCentralClient, make_session
from archiver.settings import ENV_NAMES, Settings
from archiver.wiring import connect, log_in

REQUIRED_SCOPE = ("ReadCallLog", "ReadCallRecording")
DELETE_SCOPE = "EditCallLog"
FACT_KEYS = (
    "scope",
    "heavy",
    "media_group",
    "media",
    "leg_only_recordings",
    "unfiltered_only_recordings",
    "scope_has_read_call_log",
    "scope_has_read_call_recording",
    "scope_has_edit_call_log",
)


@dataclass(frozen=True)
class CheckLine:
    name: str
    ok: bool
    detail: str
    fix: str = ""
    exit_code: int = EXIT_OK  # the exit code of the error that failed it

    def render(self) -> str:
        text = f"{'ok' if self.ok else 'FAILED':<7} {self.name:<12} {self.detail}"
        return text + (f"\n{'':<20} fix: {self.fix}" if self.fix else "")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


@dataclass
class CheckReport:
    checks: list[CheckLine] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(FACT_KEYS))

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.checks)

    @property
    def exit_code(self) -> int:
        return next((line.exit_code for line in self.checks if not line.ok), EXIT_OK)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [line.as_dict() for line in self.checks], "facts": self.facts}


def failed(name: str, exc: ArchiverError) -> CheckLine:
    return CheckLine(name, False, str(exc), exc.hint, exit_code_for(exc))


def settings_failed(exc: SettingsError) -> CheckReport:
    """The report of a check whose settings did not load (exit 2, as `run`)."""
    return CheckReport([failed("settings", exc)])


def _attempt(name: str, action: Callable[[], str]) -> CheckLine:
    try:
        return CheckLine(name, True, action())
    except ArchiverError as exc:
        return failed(name, exc)


def run_checks(settings: Settings) -> CheckReport:
    report = CheckReport([CheckLine("settings", True, "valid")])
    if settings.state_path.startswith("s3://"):
        report.checks.append(_attempt("state", lambda: _check_remote_state(settings)))
    else:
        report.checks.append(_attempt("state", lambda: check_state_file(Path(settings.state_path))))
    _check_ringcentral(settings, report)
    report.checks.append(_attempt("destination", lambda: _check_destination(settings)))
    return report


def render(report: CheckReport, as_json: bool = False) -> str:
    if as_json:
        return json.dumps(report.as_dict(), sort_keys=False)
    lines = [line.render() for line in report.checks]
    facts = report.facts
    if facts.get("heavy"):
        heavy = facts["heavy"]
        lines.append(
            f"{'':<7} {'heavy':<12} {heavy['limit']} requests / {heavy['window']:g} s as RingCentral reports"
        )
    if facts.get("media"):
        media = facts["media"]
        rate = f"{media['limit']} requests / {media['window']:g} s"
        lines.append(f"{'':<7} {'media':<12} group {facts['media_group']}: {rate}")
    if facts.get("leg_only_recordings") is not None:
        lines.append(
            f"{'':<7} {'last 24 h':<12} {facts['leg_only_recordings']} recording(s) only on legs, "
            f"{facts['unfiltered_only_recordings']} seen only without the recordingType filter"
        )
    return "\n".join(lines)


# -- state ----------------------------------------------------------------------------------------
def check_state_file(path: Path) -> str:
    """A local state file is usable, or can be created; opens nothing for writing, creates nothing."""
    if not path.exists():
        ancestor = path.parent
        while not ancestor.exists() and ancestor != ancestor.parent:
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise StateError(
                f"cannot create {path}: {ancestor} is not a folder", hint="fix RC_ARCHIVER_STATE_PATH"
            )
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise StateError(
                f"cannot create {path}: {ancestor} is not writable (read-only or forbidden)",
                hint="point RC_ARCHIVER_STATE_PATH at a writable folder (e.g. $STATE_DIRECTORY)",
            )
        return f"{path} will be created by the first run"
    if not path.is_file():
        raise StateError(f"{path} is not a file", hint="fix RC_ARCHIVER_STATE_PATH")
    if not os.access(path, os.R_OK | os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        raise StateError(
            f"{path} is not writable (read-only file system or permissions)",
            hint="make the state file and its folder writable by the archiver's user",
        )
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            verdict = str(db.execute("PRAGMA integrity_check").fetchone()[0])
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        verdict, version = f"unreadable ({exc})", -1
    if verdict != "ok":
        raise StateError(
            f"{path} is corrupt: {verdict[:200]}",
            hint="restore the last good backup (`rc-archiver state restore BACKUP` keeps this file beside "
            "it); with none, move it aside: a new state scans the whole source retention window and adopts "
            "what the destination holds (lookups, not re-uploads)",
        )
    return f"{path} (schema {version}, integrity ok)"


def _check_remote_state(settings: Settings) -> str:
    """The state bucket is reachable, and whether a state object or a live lease is there."""
    from archiver.destinations import s3_client_for
    from archiver.remote_state import S3State

    return S3State(settings.state_path, s3_client_for(settings), settings.spool_dir).describe()


# -- RingCentral ----------------------------------------------------------------------------------
def _check_ringcentral(settings: Settings, report: CheckReport) -> None:
    missing = [n for n in ("client_id", "client_secret", "jwt") if getattr(settings, n) is None]
    if missing:
        names = ", ".join(ENV_NAMES[n] for n in missing)
        error = SettingsError(
            f"missing settings: {names}", "set them in the environment or as *_FILE secrets"
        )
        report.checks += [
            failed("login", error),
            CheckLine("call log", False, "skipped: no login", exit_code=2),
        ]
        return
    session = make_session(2)
    auth, client = connect(settings, session, threading.Event())
    try:

        def login() -> str:
            log_in(auth, settings.server_url)
            return f"JWT login to {settings.server_url} accepted"

        line = _attempt("login", login)
        report.checks.append(line)
        if not line.ok:
            report.checks.append(CheckLine("call log", False, "skipped: no login", exit_code=line.exit_code))
            return
        report.checks.append(_attempt("scope", lambda: _check_scope(client, settings, report.facts)))
        found: list[Recording] = []
        report.checks.append(_attempt("call log", lambda: _check_call_log(client, report.facts, found)))
        report.checks.append(_attempt("recording", lambda: _check_recording(client, report.facts, found)))
    finally:
        auth.revoke()
        session.close()


def _check_scope(client: RingCentralClient, settings: Settings, facts: dict[str, Any]) -> str:
    granted = set(client.scope.split())
    facts["scope"] = client.scope
    facts["scope_has_read_call_log"] = "ReadCallLog" in granted
    facts["scope_has_read_call_recording"] = "ReadCallRecording" in granted
    facts["scope_has_edit_call_log"] = DELETE_SCOPE in granted
    wanted = [*REQUIRED_SCOPE, *((DELETE_SCOPE,) if settings.delete_from_source else ())]
    missing = [name for name in wanted if name not in granted]
    if missing:
        raise AuthError(
            f"the token's scope lacks {', '.join(missing)} (it has: {client.scope or 'nothing'})",
            hint=f"add the app permission(s) {', '.join(missing)} in the Developer Console, then check again",
        )
    return f"token scope has {', '.join(wanted)}"


def _check_call_log(client: RingCentralClient, facts: dict[str, Any], found: list[Recording]) -> str:
    now = datetime.now(UTC)
    since = now - timedelta(days=1)
    try:
        unfiltered = {
            r.recording_id: r.recording
            for p in client.call_log_pages(since, now, "call-log check")
            for r in p.recordings
        }
        filtered = {
            r.recording_id
            for p in client.call_log_pages(
                since, now, "call-log check (recordingType=All)", recording_type="All"
            )
            for r in p.recordings
        }
    except AuthError as exc:
        raise AuthError(
            f"cannot read the company call log: {exc}",
            hint=exc.hint
            or "the JWT's user needs FullCompanyCallLog; the app needs ReadCallLog and ReadCallRecording",
        ) from None
    heavy = client.pacers["heavy"]
    facts["heavy"] = {"limit": heavy.limit, "window": heavy.window}
    facts["leg_only_recordings"] = sum(1 for r in unfiltered.values() if r.on_leg_only)
    facts["unfiltered_only_recordings"] = len(set(unfiltered) - filtered)
    found.extend(unfiltered.values())
    return (
        f"company call log readable: {len(unfiltered)} recording(s) in the last 24 h, "
        f"{facts['leg_only_recordings']} only on legs, {facts['unfiltered_only_recordings']} only "
        f"without the recordingType filter; heavy {heavy.limit}/{heavy.window:g} s"
    )


def _check_recording(client: RingCentralClient, facts: dict[str, Any], found: list[Recording]) -> str:
    if not found:
        return "skipped: no recording in the last 24 h to fetch"
    recording = found[0]
    sample = client.sample(recording.content_uri, f"recording {recording.recording_id} (first byte)")
    media_type = sample.content_type.split(";", 1)[0].strip().lower()
    if sample.status not in (200, 206) or not media_type.startswith("audio/") or not sample.first_bytes:
        # A reply that is no recording (an HTML page, an empty body) comes from whatever stands between
        # us and the media host, not from a refused login: RingCentral's content is unreachable (exit 6).
        raise RingCentralUnavailable(
            f"recording {recording.recording_id}: the media host answered HTTP {sample.status} "
            f"{media_type or 'no type'}, {len(sample.first_bytes)} byte(s) instead of audio",
            hint="something between rc-archiver and RingCentral's media host answers instead of it (a proxy, "
            "a captive portal, TLS inspection): let requests to the media host through unchanged",
        )
    facts["media_group"] = sample.group
    if sample.limit is not None and sample.window is not None:
        facts["media"] = {"limit": sample.limit, "window": sample.window}
    group = f"rate group {sample.group}" if sample.group else "no rate group reported (paced as heavy)"
    first = f"first byte 0x{sample.first_bytes[0]:02x}"
    return f"recording {recording.recording_id}: {first} ({media_type}), {group}"


# -- destination ----------------------------------------------------------------------------------
def _check_destination(settings: Settings) -> str:
    """The destination's own probe: it writes, reads back and deletes an object of its own, and never
    touches what another writer (a run going on) is writing."""
    destination = destination_for(settings)
    destination.probe()
    return f"{destination.url}: write, read and delete ok"
