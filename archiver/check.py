"""`rc-archiver check`: settings, login, one call-log page and a destination round trip, one line each."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.destinations import destination_for
from archiver.errors import ArchiverError
from archiver.ringcentral.client import make_session
from archiver.runner import connect, log_in
from archiver.settings import ENV_NAMES, Settings
from archiver.state import StateStore


@dataclass(frozen=True)
class CheckLine:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def render(self) -> str:
        text = f"{'ok' if self.ok else 'FAILED':<7} {self.name:<12} {self.detail}"
        return text + (f"\n{'':<20} fix: {self.fix}" if self.fix else "")


def _attempt(name: str, action: Callable[[], str]) -> CheckLine:
    try:
        return CheckLine(name, True, action())
    except ArchiverError as exc:
        return CheckLine(name, False, str(exc), exc.hint)


def run_checks(settings: Settings) -> list[CheckLine]:
    lines = [CheckLine("settings", True, "valid")]
    if settings.state_path.startswith("s3://"):
        lines.append(_attempt("state", lambda: _check_remote_state(settings)))
    else:
        lines.append(_attempt("state", lambda: _check_state(Path(settings.state_path))))
    lines += _check_ringcentral(settings)
    lines.append(_attempt("destination", lambda: _check_destination(settings)))
    return lines


def _check_state(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.parent.is_dir():
            raise ArchiverError(f"cannot create {path.parent}")
        return f"{path} will be created by the first run"
    store = StateStore(path)
    try:
        if not store.integrity_ok():
            raise ArchiverError(f"{path} fails PRAGMA integrity_check", hint="restore it or move it aside")
        return f"{path} (schema {store.schema_version}, integrity ok)"
    finally:
        store.close()


def _check_remote_state(settings: Settings) -> str:
    """The state bucket is reachable, and whether a state object or a live lease is there."""
    import json
    import time

    from botocore.exceptions import BotoCoreError, ClientError

    from archiver.destinations.s3 import make_s3_client
    from archiver.remote_state import S3State

    client = make_s3_client(settings.s3_max_attempts)
    # Only its names are used (bucket, key, lease key): no lease is taken and nothing is downloaded.
    remote = S3State(settings.state_path, client, settings.spool_dir)
    try:
        client.head_bucket(Bucket=remote.bucket)
        found = client.list_objects_v2(Bucket=remote.bucket, Prefix=remote.key)
    except (ClientError, BotoCoreError) as exc:
        raise ArchiverError(
            f"cannot reach the state bucket {remote.bucket}: {type(exc).__name__}",
            hint="create the bucket or fix RC_ARCHIVER_STATE_PATH and the AWS credentials",
        ) from None
    keys = {item["Key"] for item in found.get("Contents", [])}
    detail = f"{settings.state_path} " + (
        "exists" if remote.key in keys else "will be created by the first run"
    )
    if remote.lease_key in keys:
        lease = json.loads(client.get_object(Bucket=remote.bucket, Key=remote.lease_key)["Body"].read())
        remaining = float(lease.get("expires_at", 0)) - time.time()
        detail += f"; leased by {lease.get('owner')} for {int(remaining)} s more" if remaining > 0 else ""
    return detail


def _check_ringcentral(settings: Settings) -> list[CheckLine]:
    missing = [n for n in ("client_id", "client_secret", "jwt") if getattr(settings, n) is None]
    if missing:
        names = ", ".join(ENV_NAMES[n] for n in missing)
        fix = "set them in the environment or as *_FILE secrets"
        return [
            CheckLine("login", False, f"missing settings: {names}", fix),
            CheckLine("call log", False, "skipped: no login"),
        ]
    session = make_session(2)
    auth, client = connect(settings, session, threading.Event())
    try:

        def login() -> str:
            log_in(auth, settings.server_url)
            return f"JWT login to {settings.server_url} accepted"

        login_line = _attempt("login", login)
        if not login_line.ok:
            return [login_line, CheckLine("call log", False, "skipped: no login")]

        def call_log() -> str:
            now = datetime.now(UTC)
            try:
                records = client.first_page(now - timedelta(days=1), now)
            except ArchiverError as exc:
                raise ArchiverError(
                    f"cannot read the company call log: {exc}",
                    hint="the JWT's user needs FullCompanyCallLog; "
                    "the app needs ReadCallLog and ReadCallRecording",
                ) from None
            return f"company call log readable ({len(records)} record(s) on a one-record page)"

        return [login_line, _attempt("call log", call_log)]
    finally:
        auth.revoke()
        session.close()


def _check_destination(settings: Settings) -> str:
    destination = destination_for(settings)
    destination.probe()
    key = f"_rc-archiver-check/{uuid.uuid4().hex}.txt"
    payload = f"rc-archiver check {datetime.now(UTC).isoformat()}\n".encode()
    destination.put_bytes(key, payload, content_type="text/plain", plain=True)
    try:
        with destination.open(key) as stream:
            if stream.read() != payload:
                raise ArchiverError(f"read back different bytes from {key}", hint="check the storage")
    finally:
        destination.delete(key)
    if destination.stat(key) is not None:
        raise ArchiverError(f"could not delete {key}", hint="grant s3:DeleteObject (only used by check)")
    return f"{destination.url}: write, read and delete ok"
