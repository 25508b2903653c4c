"""The RingCentral client against the emulator over HTTP: the unfiltered scan is complete (leg-only
recordings included) and downloads are byte-identical, within the emulator's reported groups."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from io import BytesIO

import requests

from archiver.emulator import Emulator
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.client import RingCentralClient, make_session
from archiver.ringcentral.pacer import RatePacer


def connect(emulator: Emulator, session: requests.Session) -> RingCentralClient:
    cfg = emulator.config
    auth = Authenticator(
        emulator.url, cfg.client_id, cfg.client_secret, cfg.jwt, session, (5, 30), RatePacer("auth", 5, 60.0)
    )
    return RingCentralClient(
        emulator.url, session, auth, RatePacer("heavy", 10, 60.0), (5, 30), cancel=threading.Event()
    )


def test_client_scan_against_the_emulator_finds_every_recording_and_downloads_them_intact(
    emulator: Emulator,
) -> None:
    truth = {entry["recordingId"]: entry for entry in emulator.ground_truth()}
    session = make_session(2)
    client = connect(emulator, session)
    found = {}
    start = datetime.fromtimestamp(0, UTC)
    for page in client.call_log_pages(start, datetime.now(UTC)):
        found.update({ref.recording_id: ref for ref in page.recordings})
    assert set(found) >= set(truth)
    assert any(ref.on_leg_only for ref in found.values())
    for recording_id in sorted(truth)[:3]:
        sink = BytesIO()
        done = client.download(found[recording_id].content_uri, sink)
        assert done.sha256 == truth[recording_id]["sha256"] == hashlib.sha256(sink.getvalue()).hexdigest()
        assert done.content_type.startswith("audio/")
    sample = client.sample(found[sorted(truth)[0]].content_uri)
    assert sample.status == 206 and len(sample.first_bytes) == 1
    assert set(client.pacers) == {"heavy", "auth"}  # the emulator reports content in heavy
    session.close()
