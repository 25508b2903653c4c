"""Build a command's collaborators from the settings, and tear them down afterwards.

The order is deliberate: the state lock first (a second run must not touch anything), then the
destination, then the login, then the spool, so each failure is reported before any work, with its
own exit code. This module is the one place that knows whether the state is a local file or an S3
object.
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import structlog

from archiver.archive.context import PassContext
from archiver.destinations import Destination, destination_for, s3_client_for
from archiver.errors import RingCentralUnavailable, SpoolError, TransientError
from archiver.local_state import is_remote_state
from archiver.logs import register_secret
from archiver.remote_state import S3State
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.client import RingCentralClient, make_session
from archiver.ringcentral.pacer import RatePacer
from archiver.settings import Settings
from archiver.state import StateStore, lock_for, prepare_folder

log = structlog.get_logger(__name__)


@contextmanager
def held_state(settings: Settings, wait_lock: float) -> Iterator[StateStore]:
    """The state, exclusively: a local file under an OS lock, or an S3 object under a lease (with
    periodic checkpoints, and a final one that must succeed)."""
    if not is_remote_state(settings):
        path = Path(settings.state_path)
        prepare_folder(path)
        lock = lock_for(path)
        lock.acquire(wait_lock)
        try:
            store = StateStore(path)
            try:
                yield store
            finally:
                store.close()
        finally:
            lock.release()
        return
    digest = hashlib.sha256(settings.state_path.encode()).hexdigest()[:12]
    remote = S3State(
        settings.state_path,
        s3_client_for(settings),
        settings.spool_dir / f"s3-state-{digest}",
        replication=settings.state_replication,
    )
    remote.acquire(wait_lock)
    try:
        local = remote.download()
        store = StateStore(local)
        try:
            if store.pre_migration_snapshot is not None:
                # The working copy's folder does not outlive the pod: the rollback copy goes to the bucket.
                suffix = store.pre_migration_snapshot.name.removeprefix(local.name)
                kept = remote.put_beside(store.pre_migration_snapshot, suffix)
                log.info("state_snapshot_kept", snapshot=kept)
            remote.checkpoint_periodically(store, settings.state_checkpoint_interval.total_seconds())
            try:
                yield store
            finally:
                remote.stop_checkpoints()
                store.mark_clean_shutdown()  # or every next run would quick_check the whole file
                remote.checkpoint(store)  # on every path out: what the run recorded is kept
        finally:
            store.close()
    finally:
        remote.release()


def connect(
    settings: Settings,
    session: requests.Session,
    cancel: threading.Event,
    on_progress: Callable[[], None] | None = None,
) -> tuple[Authenticator, RingCentralClient]:
    """The login and the RingCentral client the settings describe, over `session`.

    The secrets are registered for redaction here, before anything can log them.
    """
    settings.require("client_id", "client_secret", "jwt")
    assert settings.client_id and settings.client_secret and settings.jwt  # require() checked them
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
        RatePacer("auth", *settings.auth_rate, penalty=settings.rate_penalty.total_seconds()),
        on_progress=on_progress,
    )
    client = RingCentralClient(
        settings.server_url,
        session,
        auth,
        RatePacer("heavy", *settings.heavy_rate, penalty=settings.rate_penalty.total_seconds()),
        timeout,
        cancel=cancel,
        on_progress=on_progress,
        # A retry's back-off ends early when the run is stopping (the next attempt's pacer wait then
        # gives up), so a tripped breaker or a SIGTERM does not wait out a retry series.
        sleep=lambda seconds: _wait(cancel, seconds),
        silence_deadline=settings.request_deadline.total_seconds(),
    )
    return auth, client


def _wait(cancel: threading.Event, seconds: float) -> None:
    cancel.wait(seconds)


def log_in(auth: Authenticator, server_url: str) -> None:
    """The first login of a command: a RingCentral that cannot be reached exits 6."""
    try:
        auth.token()
    except TransientError as exc:
        raise RingCentralUnavailable(
            f"could not reach RingCentral at {server_url}: {exc}",
            hint="check RC_SERVER_URL, the network and RingCentral's status page",
        ) from None


def spool_folder(spool_dir: Path, state_path: str) -> Path:
    """A spool folder of this state's own, so runs for different accounts never share one."""
    digest = hashlib.sha256(state_path.encode()).hexdigest()[:12]
    return spool_dir / f"state-{digest}"


def clear_spool(folder: Path) -> int:
    """Remove what a killed run left in the spool (call with the state lock held)."""
    removed = 0
    try:
        if folder.exists():
            for leftover in folder.iterdir():
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
                removed += 1
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        probe = folder / ".probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SpoolError(
            f"spool folder {folder} is unusable: {exc.strerror}",
            hint="point RC_ARCHIVER_SPOOL_DIR at a writable folder with room for a few recordings",
        ) from None
    return removed


@contextmanager
def pass_services(
    settings: Settings,
    wait_lock: float,
    cancel: threading.Event,
    on_progress: Callable[[], None] | None = None,
) -> Iterator[PassContext]:
    """Lock, state, destination, login, client and spool for one command, in the one PassContext a
    pass receives (stopped by `cancel`); all released on the way out."""
    settings.require("client_id", "client_secret", "jwt", "destination")
    with held_state(settings, wait_lock) as state, _session_for(settings) as session:
        destination: Destination = destination_for(settings, journal=state)
        destination.probe()
        auth, client = connect(settings, session, cancel, on_progress)
        try:
            log_in(auth, settings.server_url)
            spool = spool_folder(settings.spool_dir, str(state.path.resolve()))
            leftovers = clear_spool(spool)
            if leftovers:
                log.info("spool_cleared", files=leftovers)
            yield PassContext(
                settings=settings,
                client=client,
                destination=destination,
                state=state,
                spool=spool,
                cancel=cancel,
            )
        finally:
            auth.revoke()


@contextmanager
def _session_for(settings: Settings) -> Iterator[requests.Session]:
    session = make_session(settings.download_concurrency + 4)
    try:
        yield session
    finally:
        session.close()
