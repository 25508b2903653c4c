"""Build the collaborators of a command from the settings, and tear them down afterwards.

Used by `rc-archiver run` (and its dry run), `verify`, and each scheduled run of the daemon. The order
of the start-up checks is deliberate: settings, then the state lock (a second run must not touch
anything), then the destination, then the login, so each failure is reported before any work.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import requests
import structlog

from archiver.archive import Archiver, Planned, RunOptions, clear_spool, spool_folder
from archiver.destinations import Destination, destination_for
from archiver.destinations.s3 import make_s3_client
from archiver.errors import ArchiverError, AuthError, SettingsError, TransientError
from archiver.heartbeat import Heartbeat
from archiver.logs import bind, register_secret
from archiver.metrics import Metrics
from archiver.models import RunSummary
from archiver.remote_state import S3State
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


@dataclass
class Runtime:
    """Everything a command needs, built once; `archiver` wires them into one pass."""

    settings: Settings
    state: StateStore
    destination: Destination
    auth: Authenticator
    client: RingCentralClient
    archiver: Archiver

    def window(self, request: RunRequest) -> tuple[datetime, datetime]:
        return plan_window(
            datetime.now(UTC),
            self.state.watermark(),
            request.since,
            request.until,
            self.settings.lookback,
            self.settings.settle_delay,
        )


def state_file(settings: Settings) -> Path:
    """The local state file (for commands that read a local state only)."""
    if settings.state_path.startswith("s3://"):
        raise SettingsError(
            "RC_ARCHIVER_STATE_PATH: this command reads a local state file, not an s3:// one",
            hint="copy the state object to a local file and point RC_ARCHIVER_STATE_PATH at it",
        )
    return Path(settings.state_path)


@contextmanager
def held_state(settings: Settings, wait_lock: float) -> Iterator[tuple[StateStore, S3State | None]]:
    """The state, exclusively: a local file under an OS lock, or an S3 object under a lease (with
    periodic checkpoints, and a final one that must succeed)."""
    if not settings.state_path.startswith("s3://"):
        path = Path(settings.state_path)
        lock = lock_for(path)
        lock.acquire(wait_lock)
        try:
            store = StateStore(path)
            try:
                yield store, None
            finally:
                store.close()
        finally:
            lock.release()
        return
    digest = hashlib.sha256(settings.state_path.encode()).hexdigest()[:12]
    remote = S3State(
        settings.state_path,
        make_s3_client(settings.s3_max_attempts),
        settings.spool_dir / f"s3-state-{digest}",
    )
    remote.acquire(wait_lock)
    try:
        store = StateStore(remote.download())
        try:
            remote.checkpoint_periodically(store)
            try:
                yield store, remote
            finally:
                remote.stop_checkpoints()
                remote.checkpoint(store)  # on every path out: what the run recorded is kept
        finally:
            store.close()
    finally:
        remote.release()


def lock_for(path: Path) -> FileLock:
    return FileLock(path.with_name(path.name + ".lock"))


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def connect(
    settings: Settings, session: requests.Session, cancel: threading.Event
) -> tuple[Authenticator, RingCentralClient]:
    """The login and the RingCentral client the settings describe, over `session`.

    The secrets are registered for redaction here, before anything can log them.
    """
    settings.require("client_id", "client_secret", "jwt")
    assert settings.client_id and settings.client_secret and settings.jwt
    jwt, client_secret = settings.jwt.get_secret_value(), settings.client_secret.get_secret_value()
    register_secret(jwt)
    register_secret(client_secret)
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
    client = RingCentralClient(
        settings.server_url, session, auth, RatePacer("heavy", *settings.heavy_rate), timeout, cancel=cancel
    )
    return auth, client


def log_in(auth: Authenticator, server_url: str) -> None:
    """The first login of a command: a RingCentral that cannot be reached is an auth failure (exit 3)."""
    try:
        auth.token()
    except TransientError as exc:
        raise AuthError(
            f"could not log in to RingCentral at {server_url}: {exc}",
            hint="check RC_SERVER_URL and the network",
        ) from None


@contextmanager
def runtime(settings: Settings, wait_lock: float, cancel: threading.Event) -> Iterator[Runtime]:
    """Lock, state, destination, login and client for one command; all released on the way out."""
    settings.require("client_id", "client_secret", "jwt", "destination")
    with held_state(settings, wait_lock) as (state, _), _session_for(settings) as session:
        yield from _wired(settings, state, session, cancel)


@contextmanager
def _session_for(settings: Settings) -> Iterator[requests.Session]:
    session = make_session(settings.download_concurrency + 4)
    try:
        yield session
    finally:
        session.close()


def _wired(
    settings: Settings, state: StateStore, session: requests.Session, cancel: threading.Event
) -> Iterator[Runtime]:
    auth: Authenticator | None = None
    try:
        destination = destination_for(settings)
        destination.probe()
        auth, client = connect(settings, session, cancel)
        log_in(auth, settings.server_url)
        heavy_limit, heavy_window = settings.heavy_rate
        spool = spool_folder(settings.spool_dir, state.path)
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
            progress_interval=settings.progress_interval.total_seconds(),
            progress_bar=sys.stderr.isatty(),
            budget_per_second=heavy_limit / heavy_window,
        )
        archiver = Archiver(client, destination, state, options, cancel)
        yield Runtime(settings, state, destination, auth, client, archiver)
    finally:
        if auth is not None:
            auth.revoke()


def run_once(
    settings: Settings, request: RunRequest, cancel: threading.Event, metrics: Metrics | None = None
) -> RunSummary:
    """One archive pass with its heartbeat pings and metrics; raises ArchiverError subclasses for
    the CLI to turn into exit codes. The final ping goes out on every path out of the run."""
    run_id = new_run_id()
    bind(run_id=run_id)
    metrics = metrics or Metrics()
    heartbeat = Heartbeat(settings.ping_url)
    heartbeat.start()
    try:
        summary = _archive(settings, request, cancel, run_id, metrics)
        if summary.complete:
            heartbeat.success(summary.as_dict())
        else:
            heartbeat.fail(summary.as_dict())
        return summary
    except BaseException as exc:  # bad credentials, a missing bucket, a held lock, a crash
        heartbeat.fail(
            {"run_id": run_id, "error": str(exc) or type(exc).__name__, "fix": getattr(exc, "hint", None)}
        )
        raise
    finally:
        heartbeat.close()


def _archive(
    settings: Settings, request: RunRequest, cancel: threading.Event, run_id: str, metrics: Metrics
) -> RunSummary:
    with runtime(settings, request.wait_lock, cancel) as rt:
        start, end = rt.window(request)
        rt.state.begin_run(run_id)
        try:
            summary = rt.archiver.run(run_id, start, end)
        except ArchiverError as exc:
            rt.state.finish_run(run_id, "error", {"error": str(exc)})
            raise
        pacers = (rt.client.pacer, rt.auth.pacer)
        summary.rate_limited = sum(p.penalties for p in pacers)
        summary.rate_wait_seconds = sum(p.waited for p in pacers)
        # "complete" means everything found was archived: the freshness signal (last success) counts
        # only those, never a run cut short by a signal.
        outcome = "stopped" if summary.stopped else "complete" if summary.complete else "incomplete"
        rt.state.finish_run(run_id, outcome, summary.as_dict())
        metrics.record_run(summary)
        metrics.refresh_from_state(rt.state)
        if settings.metrics_file is not None:
            metrics.write_textfile(settings.metrics_file)
        return summary


def dry_run(settings: Settings, request: RunRequest, cancel: threading.Event) -> list[Planned]:
    """What `run` would archive: scans the call log, downloads and writes nothing."""
    bind(run_id="dry-run")
    with runtime(settings, request.wait_lock, cancel) as rt:
        start, end = rt.window(request)
        return rt.archiver.plan(start, end)
