"""Shared test helpers, in one place: plain functions and constants (fixtures live in conftest.py).

Test modules import from here (or use conftest's fixtures), never from one another. What bench/ shares
with the tests (ports, servers, the archiver as a process) lives in tests/harness/ and is re-exported here.

Processes and ports      BIN, free_port, wait_for_port, run_subprocess, start_run (tests.harness)
The emulator             FAST, make_config, slow_emulator, archiver_env (tests.harness), SINCE
An archived folder       archived_folder, ArchivedFolder (an emulator archived once, for read-only tests)
A RingCentral client     emulator_client, RefusingTransport (a failing world, mounted on a session)
Logs and summaries       parse_events, events_of, summary_of, error_of
What was archived        folder_files, audio_by_recording, assert_matches_ground_truth, integrity
S3 (the moto server)     AWS_ENV, s3_objects, versioned_bucket, versions_per_key, MemoryJournal
The daemon as a process  start_daemon, wait_for_event, stop_daemon, scrape (tests.harness)
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
import jsonschema
import requests
import requests.adapters

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, GroupLimit
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.client import RingCentralClient
from archiver.ringcentral.pacer import RatePacer
from tests.harness.archiver_process import (
    SINCE,
    archiver_env,
    folder_env,
    read_lines,
    run_subprocess,
    scrape,
    start_daemon,
    start_run,
    stop_daemon,
    wait_for_event,
)
from tests.harness.ports import free_port, wait_for_port
from tests.harness.servers import AWS_ENV, BIN

__all__ = [  # what tests import from here that lives in tests/harness
    "AWS_ENV",
    "BIN",
    "SINCE",
    "archiver_env",
    "folder_env",
    "free_port",
    "read_lines",
    "run_subprocess",
    "scrape",
    "start_daemon",
    "start_run",
    "stop_daemon",
    "wait_for_event",
    "wait_for_port",
]

ROOT = Path(__file__).resolve().parents[1]  # the repository
SUBSET_SPEC = json.loads((ROOT / "tests" / "data" / "rc-archiver-subset.openapi.json").read_text())
MB = 1024 * 1024
FAST = GroupLimit(100_000, 60.0, 60.0)  # a raised-limit account: tests that are not about pacing
# DataOptions for a call log where every call has exactly one recording, on its record.
ONE_RECORDING_EACH = {
    "unrecorded_fraction": 0.0,
    "short_fraction": 0.0,
    "fax_fraction": 0.0,
    "transfer_fraction": 0.0,
    "internal_fraction": 0.0,
}
# `run_archiver`'s signature: (environment, *args) -> (exit code, log events).
Run = Callable[..., tuple[int, list[dict[str, Any]]]]


# -- the emulator -----------------------------------------------------------------------------------
def make_config(**changes: Any) -> EmulatorConfig:
    """Fast defaults for tests: small recordings, no delays, raised limits.

    With RC_EMULATOR_PESSIMISTIC=1 every emulator takes the pessimistic reading of each point RingCentral
    leaves open (a test that needs one reading sets that option, which wins over the switch).
    """
    data = changes.pop("data", None) or DataOptions(seed=11, calls=60, days=3, bytes_per_second=40)
    pessimistic = os.environ.get("RC_EMULATOR_PESSIMISTIC") == "1"
    base = EmulatorConfig(
        data=data, heavy=FAST, auth=FAST, record_delay=0, recording_delay=0, pessimistic=pessimistic
    )
    return replace(base, **changes)


def slow_emulator(factory: Callable[..., Emulator], **data: Any) -> Emulator:
    """About 40 recordings a second: a full run takes a few seconds, so kills land mid-run."""
    options = {"seed": 31, "calls": 60, "days": 2, "bytes_per_second": 2000, **data}
    return factory(data=DataOptions(**options), heavy=GroupLimit(40, 1.0, 1.0))


# -- an archived folder ----------------------------------------------------------------------------
@dataclass
class ArchivedFolder:
    """An emulator's call log archived once to a folder, for tests that only read what was archived."""

    emulator: Emulator
    env: dict[str, str]  # the archiver's environment of that run (reuse it for find, export, verify)
    root: Path  # the archive
    state: Path  # the state file
    archived: set[str]  # every recording id the emulator holds (all archived: the run exited 0)


@contextlib.contextmanager
def archived_folder(folder: Path, data: DataOptions) -> Iterator[ArchivedFolder]:
    """Start an emulator with DATA, archive all of it to FOLDER/archive with `rc-archiver run`, yield
    the result, and stop the emulator afterwards."""
    (folder / "archive").mkdir()
    emulator = Emulator(make_config(data=data)).start()
    try:
        env = archiver_env(emulator, folder, f"file://{folder}/archive")
        done = run_subprocess(env, "run", "--since", SINCE)
        assert done.returncode == 0, done.stdout[-2000:]
        archived = {item["recordingId"] for item in emulator.ground_truth()}
        yield ArchivedFolder(emulator, env, folder / "archive", Path(env["RC_ARCHIVER_STATE_PATH"]), archived)
    finally:
        emulator.stop()


# -- a RingCentral client ---------------------------------------------------------------------------
def emulator_client(
    emulator: Emulator,
    session: requests.Session,
    *,
    attempts: int = 3,
    cancel: threading.Event | None = None,
) -> RingCentralClient:
    """The archiver's own client and login against the emulator, at its limits; retries without sleeping."""
    cfg = emulator.config
    auth = Authenticator(
        emulator.url,
        cfg.client_id,
        cfg.client_secret,
        cfg.jwt,
        session,
        (5, 30),
        RatePacer("auth", cfg.auth.limit, cfg.auth.window),
    )
    return RingCentralClient(
        emulator.url,
        session,
        auth,
        RatePacer("heavy", cfg.heavy.limit, cfg.heavy.window),
        (5, 30),
        attempts=attempts,
        cancel=cancel or threading.Event(),
        sleep=lambda seconds: None,
    )


class RefusingTransport(requests.adapters.BaseAdapter):
    """A transport that refuses every connection: a failing world. Mount it on a session for a URL prefix
    (`session.mount(emulator.media_url, RefusingTransport())`); `sent` counts the requests it refused."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent += 1
        raise requests.ConnectionError("[Errno 111] Connection refused")

    def close(self) -> None:
        pass


# -- logs and summaries -----------------------------------------------------------------------------
def parse_events(text: str) -> list[dict[str, Any]]:
    """The JSON log events in TEXT (lines that are not JSON objects are skipped, blanks around them too)."""
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def events_of(text: str) -> list[dict[str, Any]]:
    """The JSON log events of a process's output (each on a line of its own)."""
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def summary_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["event"] == "run_summary")


def error_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The one error line of a run that failed (the run_summary after it is a warning)."""
    (error,) = [e for e in events if e["level"] == "error"]
    return error


# -- what was archived ------------------------------------------------------------------------------
def folder_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".rc-archiver-staging" not in p.parts
    }


def audio_by_recording(files: dict[str, bytes]) -> dict[str, bytes]:
    """recording id -> audio bytes, read through the sidecars (which name the audio's key)."""
    out = {}
    for key, data in files.items():
        if key.endswith(".json") and not key.startswith("_manifests/"):
            sidecar = json.loads(data)
            out[sidecar["recording_id"]] = files[sidecar["key"]]
    return out


def assert_matches_ground_truth(emulator: Emulator, audio: dict[str, bytes]) -> None:
    truth = {item["recordingId"]: item for item in emulator.ground_truth()}
    assert set(audio) == set(truth)
    for recording_id, data in audio.items():
        assert hashlib.sha256(data).hexdigest() == truth[recording_id]["sha256"]
        assert len(data) == truth[recording_id]["size"]


def integrity(state: Path) -> str:
    """SQLite's own check; a run killed before it created the file has nothing to corrupt."""
    if not state.exists():
        return "ok"
    return str(sqlite3.connect(state).execute("PRAGMA integrity_check").fetchone()[0])


# -- S3 (the moto server) ---------------------------------------------------------------------------
def s3_objects(bucket: str, prefix: str = "") -> dict[str, bytes]:
    client = boto3.client("s3")
    out: dict[str, bytes] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return out


def versioned_bucket(bucket: str) -> None:
    """Versioning makes every PUT visible: an object uploaded twice has two versions."""
    boto3.client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def versions_per_key(bucket: str) -> dict[str, int]:
    """Versions of each recording and sidecar (each run writes manifest parts of its own)."""
    counts: dict[str, int] = {}
    for page in boto3.client("s3").get_paginator("list_object_versions").paginate(Bucket=bucket):
        for version in page.get("Versions", []):
            if "_manifests/" in version["Key"]:
                continue
            counts[version["Key"]] = counts.get(version["Key"], 0) + 1
    return counts


class MemoryJournal:
    """The UploadJournal contract in memory (the real one is the archiver's SQLite state)."""

    def __init__(self) -> None:
        self.started: dict[str, str] = {}
        self.ended: set[str] = set()
        self._lock = threading.Lock()

    def upload_started(self, key: str, upload_id: str) -> None:
        with self._lock:
            self.started[upload_id] = key

    def upload_ended(self, upload_id: str) -> None:
        with self._lock:
            self.ended.add(upload_id)

    def unended_uploads(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(key, uid) for uid, key in self.started.items() if uid not in self.ended]


# -- the emulator over HTTP, as RingCentral's clients speak to it -------------------------------------
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def validate(schema_name: str, instance: Any) -> None:
    """INSTANCE conforms to the schema of that name in RingCentral's OpenAPI subset."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": SUBSET_SPEC["components"]}
    jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker()).validate(instance)


def login(emu: Emulator, **form: str) -> requests.Response:
    """The JWT grant with the emulator's own credentials; FORM adds or replaces form fields."""
    cfg = emu.config
    basic = base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()
    body = {"grant_type": JWT_GRANT, "assertion": cfg.jwt, **form}
    return requests.post(
        f"{emu.url}/restapi/oauth/token", data=body, headers={"Authorization": f"Basic {basic}"}, timeout=10
    )


def token(emu: Emulator) -> str:
    reply = login(emu)
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])
