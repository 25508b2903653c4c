"""The RingCentral client against the emulator over HTTP: the unfiltered scan is complete (leg-only
recordings included) and downloads are byte-identical, within the emulator's reported groups."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from io import BytesIO

import pytest
import requests
from structlog.testing import capture_logs

import archiver.ringcentral.paging as paging_module
from archiver.emulator import DataOptions, Emulator, FaultOptions
from archiver.errors import PermanentError, RateLimited
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
    emulator_factory: Callable[..., Emulator],
) -> None:
    emulator = emulator_factory(media_group="heavy")  # content counted in heavy, under either switch
    truth = {entry["recordingId"]: entry for entry in emulator.ground_truth()}
    session = make_session(2)
    client = connect(emulator, session)
    found = {}
    start = datetime.fromtimestamp(0, UTC)
    for page in client.call_log_pages(start, datetime.now(UTC)):
        found.update({ref.recording_id: ref for ref in page.recordings})
    assert set(found) >= set(truth)
    assert any(ref.recording.on_leg_only for ref in found.values())
    for recording_id in sorted(truth)[:3]:
        sink = BytesIO()
        done = client.download(found[recording_id].recording.content_uri, sink)
        assert done.sha256 == truth[recording_id]["sha256"] == hashlib.sha256(sink.getvalue()).hexdigest()
        assert done.content_type.startswith("audio/")
    sample = client.sample(found[sorted(truth)[0]].recording.content_uri)
    assert sample.status == 206 and len(sample.first_bytes) == 1
    assert set(client.pacers) == {"heavy", "auth"}  # the emulator reports content in heavy
    session.close()


# -- issue 21: the client against what public reports show RingCentral doing ----------------------------
MORE_THAN_A_PAGE = DataOptions(seed=13, calls=1100, days=1, bytes_per_second=5)


@pytest.mark.parametrize("links", ["plain", "extra"])
def test_client_follows_next_page_links_that_name_the_numeric_account_id(
    emulator_factory: Callable[..., Emulator], links: str
) -> None:
    """Every link the emulator writes names account 400131227008 where the client asked for `~` (and under
    "extra" carries showBlocked/withRecording): the client follows it instead of rebuilding the page."""
    emulator = emulator_factory(data=MORE_THAN_A_PAGE, next_page_style="absolute", page_links=links)
    session = make_session(2)
    client = connect(emulator, session)
    with capture_logs() as logs:
        pages = list(client.call_log_pages(datetime.fromtimestamp(0, UTC), datetime.now(UTC)))
    session.close()
    assert [p.records for p in pages][:1] == [1000] and len(pages) == 2 and pages[1].records
    assert not [e for e in logs if e["event"] == "next_page_rebuilt"]
    found = {ref.recording_id for page in pages for ref in page.recordings}
    assert found == {e["recordingId"] for e in emulator.ground_truth()}


def test_client_never_asks_for_media_as_json(emulator_factory: Callable[..., Emulator]) -> None:
    """Under reading B of U20 (the pessimistic switch) a JSON Accept on content is refused, so a regression
    in our headers fails here: the client's own download is served, the same request with Accept JSON not."""
    emulator = emulator_factory(media_accept="refuse")
    session = make_session(2)
    client = connect(emulator, session)
    rec_id = next(iter(emulator.state.data.recordings))
    uri = f"{emulator.media_url}/restapi/v1.0/account/~/recording/{rec_id}/content"
    sink = BytesIO()
    assert client.download(uri, sink).size == emulator.state.data.recordings[rec_id].size
    with pytest.raises(PermanentError, match="406"):
        client._channel.send("content", uri, "probe", headers={"Accept": "application/json"})
    session.close()
    assert emulator.stats.snapshot()["requests"]["content 406"] == 1


def test_client_survives_429s_of_every_reported_shape(emulator_factory: Callable[..., Emulator]) -> None:
    """429s with Remaining > 0, without rate headers, and with an HTML body (reading B of U21), arriving
    without warning: each holds the group for its Retry-After and the downloads still complete intact."""
    emulator = emulator_factory(
        rate_429_form="varied",
        retry_after_mode="seconds",
        faults=FaultOptions(rates={"429": 0.4}, seed=1, routes=frozenset({"content"})),
    )
    session = make_session(2)
    client = connect(emulator, session)
    truth = {e["recordingId"]: e for e in emulator.ground_truth()}
    with capture_logs() as logs:
        for rec_id in sorted(truth)[:8]:
            uri = f"{emulator.media_url}/restapi/v1.0/account/~/recording/{rec_id}/content"
            assert client.download(uri, BytesIO()).sha256 == truth[rec_id]["sha256"]
    session.close()
    assert emulator.stats.snapshot()["requests"].get("content 429", 0) >= 3  # every shape was met
    assert len([e for e in logs if e["event"] == "rate_limited"]) >= 3


def test_client_login_reads_an_html_429_as_rate_limited(emulator_factory: Callable[..., Emulator]) -> None:
    emulator = emulator_factory(
        rate_429_form="varied",
        fault_auth=True,
        faults=FaultOptions(rates={"429": 1.0}, routes=frozenset({"token"})),
    )
    for _ in range(3):  # the three shapes in turn
        cfg = emulator.config
        auth = Authenticator(
            emulator.url,
            cfg.client_id,
            cfg.client_secret,
            cfg.jwt,
            make_session(1),
            (5, 30),
            RatePacer("auth", 5, 60.0),
            attempts=1,
        )
        with pytest.raises(RateLimited):
            auth.token()


def test_client_retries_a_token_it_replaced_whatever_the_401_code(
    emulator_factory: Callable[..., Emulator],
) -> None:
    """Reading B of U2: a token we replaced (and so revoked) answers 401 CMN-405, a code that is not a
    token code; a request that was sent with it goes again with the new token instead of stopping the run."""
    emulator = emulator_factory(ended_session="other-code")
    session = make_session(2)
    client = connect(emulator, session)
    auth = client._auth
    stale = auth.token()
    fresh = auth.renew(stale)  # logs in again and revokes `stale`
    assert fresh != stale
    auth.token = lambda: stale  # type: ignore[method-assign]  # a thread that took the token before
    pages = list(client.call_log_pages(datetime.fromtimestamp(0, UTC), datetime.now(UTC)))
    session.close()
    assert pages
    assert emulator.stats.snapshot()["requests"]["call-log 401"] == 1


def test_client_never_asks_past_the_last_page_ringcentral_serves(
    emulator_factory: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spec serves at most 1000 pages (U24): the client stops with a PermanentError instead of asking for
    page 1001 (refused, or page 1000 again for ever). Scaled down: one page of 1000 calls allowed."""
    monkeypatch.setattr(paging_module, "MAX_PAGES", 1)
    emulator = emulator_factory(data=MORE_THAN_A_PAGE, max_page=1, page_cap="cap")
    session = make_session(2)
    client = connect(emulator, session)
    with pytest.raises(PermanentError, match="more than 1 pages"):
        list(client.call_log_pages(datetime.fromtimestamp(0, UTC), datetime.now(UTC)))
    session.close()
    assert emulator.stats.snapshot()["requests"]["call-log 200"] == 1
