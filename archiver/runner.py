"""Build the collaborators of one run from the settings, run it, and tear everything down.

Used by `rc-archiver run` and by each scheduled run of the daemon. The order of the start-up checks
is deliberate: settings, then the state lock (a second run must not touch anything), then the
destination, then the login, so each failure is reported before anything is downloaded.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from archiver.archive import Archiver, RunOptions, clear_spool, spool_folder
from archiver.destinations import open_destination
from archiver.errors import ArchiverError, AuthError, SettingsError, TransientError
from archiver.logs import bind, register_secret
from archiver.models import RunSummary
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.client import RingCentralClient, make_session
from archiver.ringcentral.pacer import RatePacer
from archiver.settings import Settings
from archiver.state import FileLock, StateStore
from archiver.windows import plan_window

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunRequest:
    since: datetime | None = None
    until: datetime | None = None
    wait_lock: float = 0.0


def state_file(settings: Settings) -> Path:
    if settings.state_path.startswith("s3://"):
        raise SettingsError(
            "RC_ARCHIVER_STATE_PATH: an s3:// state is not supported by this version",
            hint="use a local path (a PersistentVolumeClaim in Kubernetes)",
        )
    return Path(settings.state_path)


def lock_for(path: Path) -> FileLock:
    return FileLock(path.with_name(path.name + ".lock"))


def run_once(settings: Settings, request: RunRequest, cancel: threading.Event) -> RunSummary:
    """One archive pass with everything it needs; raises ArchiverError subclasses for the CLI."""
    settings.require("client_id", "client_secret", "jwt", "destination")
    assert settings.client_id and settings.client_secret and settings.jwt and settings.destination
    jwt, client_secret = settings.jwt.get_secret_value(), settings.client_secret.get_secret_value()
    register_secret(jwt)
    register_secret(client_secret)
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]
    bind(run_id=run_id)
    path = state_file(settings)
    lock = lock_for(path)
    lock.acquire(request.wait_lock)
    session = make_session(settings.download_concurrency + 4)
    auth: Authenticator | None = None
    state: StateStore | None = None
    try:
        state = StateStore(path)
        destination = open_destination(
            settings.destination,
            s3_max_attempts=settings.s3_max_attempts,
            multipart_threshold=settings.multipart_threshold,
        )
        destination.probe()
        timeout = (settings.connect_timeout.total_seconds(), settings.read_timeout.total_seconds())
        auth = Authenticator(
            settings.server_url,
            settings.client_id,
            client_secret,
            jwt,
            session,
            timeout,
            RatePacer("auth", *settings.auth_rate),
        )
        try:
            auth.token()
        except TransientError as exc:
            raise AuthError(
                f"could not log in to RingCentral: {exc}", hint="check RC_SERVER_URL and the network"
            ) from None
        client = RingCentralClient(
            settings.server_url,
            session,
            auth,
            RatePacer("heavy", *settings.heavy_rate),
            timeout,
            cancel=cancel,
        )
        spool = spool_folder(settings.spool_dir, path)
        leftovers = clear_spool(spool)
        if leftovers:
            log.info("spool_cleared", files=leftovers)
        options = RunOptions(
            key_template=settings.key_template,
            spool_dir=spool,
            max_attempts=settings.max_attempts,
            upload_concurrency=settings.upload_concurrency,
            download_concurrency=settings.download_concurrency,
            stop_timeout=settings.stop_timeout.total_seconds(),
            timezone=settings.tz,
        )
        start, end = plan_window(
            datetime.now(UTC),
            state.watermark(),
            request.since,
            request.until,
            settings.lookback,
            settings.settle_delay,
        )
        state.begin_run(run_id)
        try:
            summary = Archiver(client, destination, state, options, cancel).run(run_id, start, end)
        except ArchiverError as exc:
            state.finish_run(run_id, "error", {"error": str(exc)})
            raise
        state.finish_run(run_id, "complete" if summary.complete else "incomplete", summary.as_dict())
        return summary
    finally:
        if auth is not None:
            auth.revoke()
        session.close()
        if state is not None:
            state.close()
        lock.release()
