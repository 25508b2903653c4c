"""archive/recording.py: one recording through the archive, against the emulator over HTTP and a real
folder destination. A failing world is never charged to the recording; a recording's own failure is."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from structlog.testing import capture_logs

from archiver.archive.breaker import THRESHOLD, OutageBreaker
from archiver.archive.context import PassContext
from archiver.archive.layout import Layout
from archiver.archive.manifest import ManifestWriter
from archiver.archive.recording import RecordingArchiver
from archiver.archive.tally import Kind, Outcome
from archiver.archive.transfer import Then
from archiver.destinations.base import Destination
from archiver.destinations.local import LocalDestination
from archiver.destinations.s3 import S3Destination, make_s3_client
from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.errors import DestinationError, RingCentralUnavailable, SpoolError
from archiver.ringcentral.calllog import found_in
from archiver.ringcentral.client import RingCentralClient, make_session
from archiver.settings import Settings
from archiver.state import StateStore
from tests.helpers import AWS_ENV, RefusingTransport, emulator_client, folder_files, free_port

RUN = "run-unit"
DATA = DataOptions(seed=5, calls=12, days=1, bytes_per_second=20)
TEMPLATE = "{start:%Y/%m/%d}/{recording_id}.{ext}"


@dataclass
class Rig:
    emulator: Emulator
    session: requests.Session
    client: RingCentralClient
    state: StateStore
    root: Path
    folder: LocalDestination
    layout: Layout
    breaker: OutageBreaker
    cancel: threading.Event
    spool: Path
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    max_attempts: int = 5
    destination: Destination | None = None  # another destination than the folder

    def archivist(self) -> RecordingArchiver:
        destination = self.destination or self.folder
        settings = Settings.model_validate(
            {
                "RC_ARCHIVER_KEY_TEMPLATE": TEMPLATE,
                "RC_ARCHIVER_TIMEZONE": "UTC",
                "RC_ARCHIVER_MAX_ATTEMPTS": self.max_attempts,
                "RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL": "24h",
            }
        )
        ctx = PassContext(
            settings=settings,
            client=self.client,
            destination=destination,
            state=self.state,
            spool=self.spool,
            cancel=self.cancel,
            now=self.now,
        )
        manifest = ManifestWriter(destination, self.state, ctx.layout, RUN)
        return RecordingArchiver(ctx=ctx, manifest=manifest, breaker=self.breaker)

    def scan(self) -> None:
        """The call log into the state (what scan_window does, without its bookkeeping)."""
        for page in self.client.call_log_pages(datetime(2000, 1, 1, tzinfo=UTC), datetime.now(UTC)):
            self.state.note_found(page.recordings, RUN)

    def rows(self) -> list[Any]:
        self.scan()
        return list(self.state.due(self.max_attempts, self.now()))

    def truth(self) -> dict[str, dict[str, Any]]:
        return {item["recordingId"]: item for item in self.emulator.ground_truth()}

    def downloads(self) -> int:
        return sum(self.emulator.stats.snapshot()["downloads"].values())


@pytest.fixture
def make_rig(emulator_factory: Callable[..., Emulator], tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    opened: list[Rig] = []

    def make(state_name: str = "state.db", **emulator_changes: Any) -> Rig:
        emulator = opened[0].emulator if opened and not emulator_changes else None
        emulator = emulator or emulator_factory(data=DATA, **emulator_changes)
        session = make_session(4)
        cancel = threading.Event()
        root = tmp_path / "archive"
        root.mkdir(exist_ok=True)
        folder = LocalDestination(root.as_uri())
        folder.probe()
        spool = tmp_path / "spool"
        spool.mkdir(exist_ok=True)
        client, state = emulator_client(emulator, session, cancel=cancel), StateStore(tmp_path / state_name)
        rig = Rig(
            emulator=emulator,
            session=session,
            client=client,
            state=state,
            root=root,
            folder=folder,
            layout=Layout(TEMPLATE, ZoneInfo("UTC")),
            breaker=OutageBreaker(cancel),
            cancel=cancel,
            spool=spool,
        )
        opened.append(rig)
        return rig

    yield make
    for rig in opened:
        rig.state.close()
        rig.session.close()


def run_both_stages(result: Outcome | Then[Outcome]) -> Outcome:
    if isinstance(result, Then):
        try:
            return result.run()
        finally:
            result.cleanup()
    return result


def test_recording_is_downloaded_uploaded_given_its_sidecar_and_marked_archived(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    archivist = rig.archivist()
    row = rig.rows()[0]
    truth = rig.truth()[row.recording_id]
    with capture_logs() as logs:
        first = archivist.archive_one(row)
        assert isinstance(first, Then)  # the upload is the second pool's job
        assert len(list(rig.spool.iterdir())) == 1  # the verified download waits in the spool
        outcome = run_both_stages(first)
    assert outcome == Outcome(row.recording_id, Kind.ARCHIVED, bytes=truth["size"])
    assert list(rig.spool.iterdir()) == []
    files = folder_files(rig.root)
    key = rig.layout.key_for(row.recording, truth["contentType"])
    assert hashlib.sha256(files[key]).hexdigest() == truth["sha256"]
    sidecar = json.loads(files[rig.layout.sidecar_key(key)])
    assert (sidecar["recording_id"], sidecar["sha256"], sidecar["key"]) == (
        row.recording_id,
        truth["sha256"],
        key,
    )
    stored = rig.state.get(row.recording_id)
    assert stored is not None and (stored.status, stored.key, stored.sha256) == (
        "archived",
        key,
        truth["sha256"],
    )
    archived = [e for e in logs if e["event"] == "recording_archived"]
    assert len(archived) == 1 and archived[0]["key"] == key and archived[0]["bytes"] == truth["size"]
    archivist.manifest.close()  # the run's end writes the manifest part that lists it
    (manifest,) = [body for k, body in folder_files(rig.root).items() if k.startswith("_manifests/")]
    lines = [json.loads(line) for line in manifest.splitlines()]
    assert [(line["event"], line["recording_id"]) for line in lines[1:]] == [("archived", row.recording_id)]


def content_type_of(rig: Rig, row: Any) -> str:
    return str(rig.truth()[row.recording_id]["contentType"])


def test_recording_already_in_the_destination_is_marked_archived_without_a_download(
    make_rig: Callable[..., Rig],
) -> None:
    first = make_rig()
    rows = first.rows()
    archivist = first.archivist()
    for row in rows:
        assert run_both_stages(archivist.archive_one(row)).kind == "archived"
    downloads = first.downloads()
    # The state is lost (a new file): the next run finds every recording in the destination.
    again = make_rig(state_name="lost-state.db")
    sidecar = again.layout.sidecar_key(
        again.layout.key_for(rows[0].recording, content_type_of(again, rows[0]))
    )
    (again.root / sidecar).unlink()  # killed between the audio and its sidecar
    archivist = again.archivist()
    with capture_logs() as logs:
        outcomes = [archivist.archive_one(row) for row in again.rows()]
    assert outcomes == [Outcome(row.recording_id, Kind.FOUND_STORED) for row in rows]
    assert again.downloads() == downloads  # lookups, not downloads
    assert (again.root / sidecar).exists()  # the missing sidecar was written
    assert all(again.state.get(r.recording_id).status == "archived" for r in rows)  # type: ignore[union-attr]
    assert len([e for e in logs if e["event"] == "recording_already_archived"]) == len(rows)


def test_recording_a_refused_connection_to_ringcentral_is_never_charged(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    rows = rig.rows()
    refusing = RefusingTransport()
    rig.session.mount(rig.emulator.media_url, refusing)  # RingCentral's media host is down
    archivist = rig.archivist()
    with capture_logs() as logs:
        outcomes = [archivist.archive_one(row) for row in rows[:THRESHOLD]]
    assert [o.kind for o in outcomes if isinstance(o, Outcome)] == ["outage"] * THRESHOLD
    assert refusing.sent == 3 * THRESHOLD  # each download was retried, then told to the breaker
    for row in rows[:THRESHOLD]:
        after = rig.state.get(row.recording_id)
        assert after is not None and (after.status, after.attempts, after.last_error) == ("pending", 0, None)
    assert isinstance(rig.breaker.tripped, RingCentralUnavailable) and rig.cancel.is_set()
    deferred = [e for e in logs if e["event"] == "recording_deferred"]
    assert len(deferred) == THRESHOLD and {e["world"] for e in deferred} == {"ringcentral"}
    assert list(rig.spool.iterdir()) == [] and folder_files(rig.root) == {}


def test_recording_an_unwritable_spool_is_a_failing_world_and_nothing_is_downloaded(
    make_rig: Callable[..., Rig], tmp_path: Path
) -> None:
    rig = make_rig()
    rows = rig.rows()
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")
    rig.spool = blocked
    archivist = rig.archivist()
    outcomes = [archivist.archive_one(row) for row in rows[:THRESHOLD]]
    assert [o.kind for o in outcomes if isinstance(o, Outcome)] == ["outage"] * THRESHOLD
    assert rig.downloads() == 0
    assert all(rig.state.get(r.recording_id).attempts == 0 for r in rows)  # type: ignore[union-attr]
    assert isinstance(rig.breaker.tripped, SpoolError)


def test_recording_a_per_recording_404_is_charged_and_stays_pending(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(recording_delay=1e9)  # listed in the call log, content not available yet: 404 CMN-102
    rows = rig.rows()
    archivist = rig.archivist()
    for _ in range(THRESHOLD - 1):
        rig.breaker.failure("ringcentral", "timed out")  # the world failed just before
    with capture_logs() as logs:
        outcomes = [archivist.archive_one(row) for row in rows]
    assert {o.kind for o in outcomes if isinstance(o, Outcome)} == {"not_ready"}
    assert all(isinstance(o, Outcome) and o.attempts == 1 and not o.exhausted for o in outcomes)
    for row in rows:
        after = rig.state.get(row.recording_id)
        assert after is not None and (after.status, after.attempts) == ("pending", 1)
        assert after.last_error and "CMN-102" in after.last_error
    rig.breaker.failure("ringcentral", "timed out")
    assert rig.breaker.tripped is None and not rig.cancel.is_set()  # the world answered: the count restarted
    assert len([e for e in logs if e["event"] == "recording_not_ready"]) == len(rows)


def test_recording_a_404_on_its_last_attempt_is_exhausted(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(recording_delay=1e9)
    rig.max_attempts = 1
    row = rig.rows()[0]
    outcome = rig.archivist().archive_one(row)
    assert isinstance(outcome, Outcome) and (outcome.kind, outcome.exhausted) == ("not_ready", True)


def test_recording_not_available_past_its_deadline_is_lost(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(recording_delay=1e9)
    rows = rig.rows()
    rig.now = lambda: datetime.now(UTC) + timedelta(days=400)  # past RingCentral's retention
    with capture_logs() as logs:
        outcome = rig.archivist().archive_one(rows[0])
    assert isinstance(outcome, Outcome) and outcome.kind == "lost" and "retention ended" in outcome.reason
    after = rig.state.get(rows[0].recording_id)
    assert after is not None and after.status == "lost"
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["recording_lost"]


def test_recording_a_destination_that_refuses_writes_stops_the_run_and_charges_nothing(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    rows = rig.rows()
    shutil.rmtree(rig.root)
    rig.root.write_bytes(b"")  # the folder became a file: every write fails
    archivist = rig.archivist()
    outcome = run_both_stages(archivist.archive_one(rows[0]))
    assert outcome.kind == "fatal" and outcome.attempts == 0
    assert isinstance(rig.breaker.tripped, DestinationError) and rig.cancel.is_set()
    after = rig.state.get(rows[0].recording_id)
    assert after is not None and (after.status, after.attempts) == ("pending", 0)
    assert list(rig.spool.iterdir()) == []  # the download was removed from the spool


def test_recording_a_stop_while_waiting_for_the_rate_budget_is_not_charged(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(heavy=GroupLimit(1, 60.0, 60.0))  # the scan spends the one request of the window
    rows = rig.rows()
    rig.cancel.set()
    outcome = rig.archivist().archive_one(rows[0])
    assert outcome == Outcome(rows[0].recording_id, Kind.STOPPED)
    assert rig.downloads() == 0
    after = rig.state.get(rows[0].recording_id)
    assert after is not None and after.attempts == 0


def test_recording_force_upload_downloads_again_even_when_stored(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()
    archivist = rig.archivist()
    row = rig.rows()[0]
    assert run_both_stages(archivist.archive_one(row)).kind == "archived"
    again = archivist.archive_one(replace(row, force_upload=True))  # `verify --repair` found it corrupt
    assert isinstance(again, Then)
    assert run_both_stages(again).kind == "archived" and rig.downloads() == 2


def test_recording_uploads_that_keep_failing_trip_the_breaker_though_downloads_succeed(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig()
    rows = rig.rows()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # S3 is down: refused
    for name, value in AWS_ENV.items():
        monkeypatch.setenv(name, value)
    rig.destination = S3Destination("s3://rec-down/calls", make_s3_client(1))
    archivist = rig.archivist()
    outcomes = []
    for row in rows[:THRESHOLD]:  # downloads paced by RingCentral: each upload fails before the next one
        first = archivist.archive_one(replace(row, force_upload=True))
        assert isinstance(first, Then)  # RingCentral is fine
        outcomes.append(run_both_stages(first))
    assert [o.kind for o in outcomes] == ["outage"] * THRESHOLD  # never charged: that much holds
    assert isinstance(rig.breaker.tripped, DestinationError)


def test_recording_an_id_with_a_slash_is_that_recordings_problem_not_the_spools(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig()
    real = rig.rows()[0].recording
    record, _ = rig.state.source_of(real.recording_id)
    odd = {"id": "odd/id", "contentUri": real.content_uri + "-odd", "type": "Automatic"}
    raw = {**record, "recording": odd}
    raw.pop("legs", None)
    rig.state.note_found([found_in(raw, None)], RUN)
    (row,) = [r for r in rig.state.due(rig.max_attempts, rig.now()) if r.recording_id == "odd/id"]
    outcome = rig.archivist().archive_one(row)
    assert isinstance(outcome, Outcome) and outcome.kind != "outage"
    assert rig.breaker.tripped is None
