"""The emulator behaves as RingCentral does (docs/ringcentral-api.md); replies validate against the spec."""

from __future__ import annotations

import base64
import http.client
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from ringcentral import SDK

from archiver.emulator import DataOptions, Emulator, FaultOptions, GroupLimit
from archiver.emulator.data import HOSTILE_STRINGS, iso
from tests.helpers import BIN, JWT_GRANT, SUBSET_SPEC, free_port, login, token, validate, wait_for_port

SPEC = SUBSET_SPEC


def call_log(emu: Emulator, tok: str, url: str | None = None, **params: Any) -> requests.Response:
    return requests.get(
        url or f"{emu.url}/restapi/v1.0/account/~/call-log",
        params=None if url else params,
        headers={"Authorization": f"Bearer {tok}"},
        timeout=10,
    )


ALL_TIME = {"dateFrom": "2000-01-01T00:00:00Z"}


def test_emulator_token_reply_validates_and_sdk_logs_in(emulator: Emulator) -> None:
    reply = login(emulator)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    validate("TokenInfo", reply.json())
    assert "refresh_token" not in reply.json()  # off by default, as at RingCentral

    sdk = SDK(emulator.config.client_id, emulator.config.client_secret, emulator.url)
    platform = sdk.platform()
    platform.login(jwt=emulator.config.jwt)  # the SDK sends 'bearer' lowercase on API calls
    page = platform.get(
        "/restapi/v1.0/account/~/call-log", {"view": "Detailed", "dateFrom": "2000-01-01T00:00:00Z"}
    )
    validate("CallLogResponse", page.json_dict())
    assert page.json_dict()["records"]


def test_emulator_oauth_errors_are_ringcentral_bodies(emulator: Emulator) -> None:
    bad_client = requests.post(
        f"{emulator.url}/restapi/oauth/token",
        data={"grant_type": JWT_GRANT, "assertion": emulator.config.jwt},
        headers={"Authorization": "Basic " + base64.b64encode(b"who:wrong").decode()},
        timeout=10,
    )
    assert bad_client.status_code == 401
    assert bad_client.json()["error"] == "invalid_client"
    assert bad_client.json()["errors"][0]["errorCode"] == "OAU-146"
    validate("ApiErrorResponseModel", bad_client.json())

    bad_jwt = login(emulator, assertion="not-the-jwt")
    assert bad_jwt.status_code == 401  # the errors table: OAU-140 is a 401
    assert bad_jwt.json()["error"] == "invalid_grant"
    assert bad_jwt.json()["errors"][0]["errorCode"] == "OAU-140"
    validate("ApiErrorResponseModel", bad_jwt.json())

    refresh = login(emulator, grant_type="refresh_token", refresh_token="anything")
    assert refresh.status_code == 400  # refresh tokens are off: there is nothing to refresh


def test_emulator_expired_and_revoked_tokens_answer_401(emulator_factory: Callable[..., Emulator]) -> None:
    now = [1_800_000_000.0]
    # An ended token's code is U2's reading: this test states reading A (OAU-213).
    emu = emulator_factory(token_ttl=30, clock=lambda: now[0], ended_session="token-code")
    tok = token(emu)
    assert call_log(emu, tok, **ALL_TIME).status_code == 200
    now[0] += 31
    expired = call_log(emu, tok, **ALL_TIME)
    assert expired.status_code == 401
    assert expired.json()["errors"][0]["errorCode"] == "OAU-128"
    validate("ApiErrorResponseModel", expired.json())

    tok = token(emu)
    cfg = emu.config
    basic = base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()
    revoke = requests.post(
        f"{emu.url}/restapi/oauth/revoke",
        data={"token": tok},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert revoke.status_code == 200
    revoked = call_log(emu, tok, **ALL_TIME)
    assert revoked.status_code == 401
    assert revoked.json()["errors"][0]["errorCode"] == "OAU-213"
    assert emu.stats.snapshot()["revokes"] == 1


def test_emulator_refresh_grant_when_enabled(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(refresh_tokens=True)
    first = login(emu).json()
    validate("TokenInfo", first)
    again = login(emu, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 200
    assert call_log(emu, first["access_token"], **ALL_TIME).status_code == 401  # the old token is gone
    assert call_log(emu, again.json()["access_token"], **ALL_TIME).status_code == 200


def test_emulator_pages_newest_first_without_totals(emulator_factory: Callable[..., Emulator]) -> None:
    emulator = emulator_factory(next_page_style="absolute")  # links that can be followed as they are
    tok = token(emulator)
    reply = call_log(emulator, tok, view="Detailed", recordingType="All", perPage=7, **ALL_TIME)
    records: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert reply.status_code == 200
        page = reply.json()
        validate("CallLogResponse", page)
        assert "totalPages" not in page["paging"] and "totalElements" not in page["paging"]
        records += page["records"]
        pages += 1
        next_page = page["navigation"].get("nextPage")
        if next_page is None:
            break
        assert next_page["uri"].startswith("http://127.0.0.1:")
        reply = call_log(emulator, tok, url=next_page["uri"])
    starts = [r["startTime"] for r in records]
    assert starts == sorted(starts, reverse=True)
    assert len({r["id"] for r in records}) == len(records)
    assert pages == -(-len(records) // 7) and pages > 2
    for record in records:
        validate("CallLogRecord", record)
        has_recording = "recording" in record or any("recording" in leg for leg in record["legs"])
        assert has_recording  # recordingType=All returns recorded calls only


def test_emulator_call_log_holds_every_shape_of_recording(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(data=DataOptions(seed=3, calls=300, days=3, bytes_per_second=10))
    tok = token(emu)
    records = call_log(emu, tok, view="Detailed", perPage="max", **ALL_TIME).json()["records"]
    assert len(records) == len(emu.state.data.calls)
    leg_only = [
        leg["recording"]["id"]
        for r in records
        for leg in r["legs"]
        if "recording" in leg and leg["recording"]["id"] != r.get("recording", {}).get("id")
    ]
    assert leg_only, "transferred calls with a recording only on a leg"
    top = [r["recording"]["id"] for r in records if "recording" in r]
    assert len(top) > len(set(top)), "internal calls logged twice with one recording"
    assert any(r.get("shortRecording") for r in records)
    assert any("recording" not in r and not any("recording" in leg for leg in r["legs"]) for r in records)
    kinds = {r["recording"]["type"] for r in records if "recording" in r}
    assert kinds == {"Automatic", "OnDemand"}
    types = {rec.content_type for rec in emu.state.data.recordings.values()}
    assert types == {"audio/mpeg", "audio/wav"}
    simple = call_log(emu, tok, view="Simple", perPage="max", **ALL_TIME).json()["records"]
    assert all("legs" not in r for r in simple)


def test_emulator_filters_and_parameters(emulator: Emulator) -> None:
    tok = token(emulator)
    everything = call_log(emulator, tok, perPage=1000, **ALL_TIME).json()["records"]
    inbound = call_log(emulator, tok, perPage=1000, direction="Inbound", **ALL_TIME).json()["records"]
    assert inbound and {r["direction"] for r in inbound} == {"Inbound"}
    faxes = call_log(emulator, tok, perPage=1000, type="Fax", **ALL_TIME).json()["records"]
    assert all(r["type"] == "Fax" for r in faxes)
    on_demand = call_log(
        emulator, tok, perPage=1000, recordingType="OnDemand", view="Detailed", **ALL_TIME
    ).json()["records"]
    assert on_demand and len(on_demand) < len(everything)
    clamped = call_log(emulator, tok, perPage=5000, **ALL_TIME).json()
    assert clamped["paging"]["perPage"] == 1000
    default_window = call_log(emulator, tok).json()["records"]  # dateFrom defaults to 24 h back
    day_ago = iso(emulator.config.clock() - 86400)
    assert default_window and all(r["startTime"] >= day_ago for r in default_window)
    assert len(default_window) < len(everything)
    bad = call_log(emulator, tok, perPage="lots")
    assert bad.status_code == 400
    validate("ApiErrorResponseModel", bad.json())
    # An unencoded '+00:00' arrives as a space: RingCentral refuses it, and so does the emulator.
    unencoded = requests.get(
        f"{emulator.url}/restapi/v1.0/account/~/call-log?dateFrom=2026-01-01T00:00:00+00:00",
        headers={"Authorization": f"Bearer {tok}"},
        timeout=10,
    )
    assert unencoded.status_code == 400


def test_emulator_recording_metadata_and_ranged_content(emulator: Emulator) -> None:
    tok = token(emulator)
    auth = {"Authorization": f"bearer {tok}"}  # lowercase, as the SDK sends it
    rec = next(iter(emulator.state.data.recordings.values()))
    meta = requests.get(f"{emulator.url}/restapi/v1.0/account/~/recording/{rec.id}", headers=auth, timeout=10)
    assert meta.status_code == 200
    validate("GetCallRecordingResponse", meta.json())
    content_uri = meta.json()["contentUri"]
    assert content_uri.startswith(emulator.media_url)

    full = requests.get(content_uri, headers=auth, timeout=10)
    assert full.status_code == 200
    assert full.headers["Content-Type"] == rec.content_type
    assert full.headers["Accept-Ranges"] == "bytes"
    assert int(full.headers["Content-Length"]) == rec.size == len(full.content)
    part = requests.get(content_uri, headers={**auth, "Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{rec.size}"
    assert part.content == full.content[100:200]
    tail = requests.get(content_uri, headers={**auth, "Range": "bytes=-10"}, timeout=10)
    assert tail.content == full.content[-10:]
    beyond = requests.get(content_uri, headers={**auth, "Range": f"bytes={rec.size}-"}, timeout=10)
    assert beyond.status_code == 416
    on_platform = requests.get(
        content_uri.replace(emulator.media_url, emulator.url), headers=auth, timeout=10
    )
    assert on_platform.status_code == 404  # content is served by the media host only
    again = requests.get(content_uri, headers=auth, timeout=10)
    assert again.content == full.content  # deterministic bytes


def test_emulator_large_recording_streams_in_chunks(emulator_factory: Callable[..., Emulator]) -> None:
    size = 300 * 1024 * 1024
    emu = emulator_factory(
        data=DataOptions(
            seed=5, calls=1, days=1, fixed_size=size, unrecorded_fraction=0, short_fraction=0, fax_fraction=0
        )
    )
    rec = next(iter(emu.state.data.recordings.values()))
    tok = token(emu)
    with requests.get(
        f"{emu.media_url}/restapi/v1.0/account/~/recording/{rec.id}/content",
        headers={"Authorization": f"Bearer {tok}"},
        stream=True,
        timeout=30,
    ) as reply:
        assert int(reply.headers["Content-Length"]) == size
        received = sum(len(chunk) for chunk in reply.iter_content(1024 * 1024))
    assert received == size


def test_emulator_not_ready_recording_is_404_cmn_102(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(recording_delay=10 * 86400)
    tok = token(emu)
    rec = next(iter(emu.state.data.recordings.values()))
    reply = requests.get(
        f"{emu.media_url}/restapi/v1.0/account/~/recording/{rec.id}/content",
        headers={"Authorization": f"Bearer {tok}"},
        timeout=10,
    )
    assert reply.status_code == 404
    assert reply.json()["errors"][0]["errorCode"] == "CMN-102"
    validate("ApiErrorResponseModel", reply.json())
    assert emu.ground_truth() == []  # nothing is ready, so nothing is owed


def test_emulator_rate_limit_headers_and_the_429_trap(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(
        heavy=GroupLimit(3, 1.0, 1.0), retry_after_mode="seconds", rate_429_form="standard"
    )
    tok = token(emu)
    replies = [call_log(emu, tok, **ALL_TIME) for _ in range(3)]
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert [r.headers["X-Rate-Limit-Remaining"] for r in replies] == ["2", "1", "0"]
    for reply in replies:
        assert reply.headers["X-Rate-Limit-Group"] == "heavy"
        assert reply.headers["X-Rate-Limit-Limit"] == "3"
        assert reply.headers["X-Rate-Limit-Window"] == "1"
    refused = call_log(emu, tok, **ALL_TIME)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["errors"][0]["errorCode"] == "CMN-301"
    validate("ApiErrorResponseModel", refused.json())
    # The trap: knocking during the penalty restarts it, for as long as one keeps knocking.
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        assert call_log(emu, tok, **ALL_TIME).status_code == 429
        time.sleep(0.3)
    time.sleep(1.1)  # a full quiet penalty
    assert call_log(emu, tok, **ALL_TIME).status_code == 200
    assert emu.stats.snapshot()["rate_limited"] >= 5


def test_emulator_auth_group_is_limited_separately(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(auth=GroupLimit(2, 60.0, 60.0), rate_429_form="standard")
    assert [login(emu).status_code for _ in range(3)] == [200, 200, 429]
    assert login(emu).headers["X-Rate-Limit-Group"] == "auth"


@pytest.mark.parametrize("kind", ["429", "500", "503", "reset", "truncate", "slow"])
def test_emulator_injects_each_fault_kind(emulator: Emulator, kind: str) -> None:
    tok = token(emulator)
    rec = next(iter(emulator.state.data.recordings.values()))
    url = f"{emulator.media_url}/restapi/v1.0/account/~/recording/{rec.id}/content"
    emulator.set_faults(FaultOptions(rates={kind: 1.0}, slow_seconds=0.5))
    started = time.monotonic()
    try:
        reply = requests.get(url, headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        outcome: int | str = reply.status_code
        body = reply.content
    except requests.RequestException as exc:
        outcome, body = type(exc).__name__, b""
    elapsed = time.monotonic() - started
    emulator.set_faults(FaultOptions())
    if kind in ("429", "500", "503"):
        assert outcome == int(kind)
    elif kind == "reset":
        assert outcome == "ConnectionError"
    elif kind == "truncate":
        assert outcome == "ChunkedEncodingError" or len(body) < rec.size
    else:
        assert outcome == 200 and len(body) == rec.size and elapsed >= 0.5
    assert emulator.stats.snapshot()["faults"] == {kind: 1}


def raw_get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes, bool]:
    """GET over http.client: status, headers, body read to its end, and whether the server closed."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        conn.request("GET", parts.path, headers=headers)
        reply = conn.getresponse()
        body = reply.read()  # raises IncompleteRead if the framing announced more than arrived
        return reply.status, dict(reply.getheaders()), body, reply.will_close
    finally:
        conn.close()


def test_emulator_close_framing_hides_a_truncated_body(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(content_framing="close", faults=FaultOptions(rates={"truncate": 1.0}, seed=3))
    tok = token(emu)
    rec = next(r for r in emu.state.data.recordings.values() if r.size > 100)
    url = f"{emu.media_url}/restapi/v1.0/account/~/recording/{rec.id}/content"
    auth = {"Authorization": f"Bearer {tok}"}
    status, headers, body, closed = raw_get(url, auth)
    assert status == 200 and closed
    assert "Content-Length" not in headers and "Transfer-Encoding" not in headers
    assert headers["Connection"] == "close"
    assert len(body) < rec.size  # cut short, yet read without any error: the framing cannot tell
    # requests, as the archiver uses it, sees a clean end too.
    reply = requests.get(url, headers=auth, timeout=10)
    assert reply.status_code == 200 and len(reply.content) < rec.size
    assert emu.stats.snapshot()["faults"] == {"truncate": 2}

    emu.set_faults(FaultOptions())
    status, headers, whole, closed = raw_get(url, auth)
    assert status == 200 and closed and "Content-Length" not in headers and len(whole) == rec.size
    assert whole.startswith(body)
    # A Range at the full size proves the size: 416 with the total; one in the middle: 206 with the rest.
    status, headers, error, _ = raw_get(url, {**auth, "Range": f"bytes={rec.size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{rec.size}"
    assert json.loads(error)["errors"][0]["errorCode"] == "CMN-107"
    middle = rec.size // 2
    status, headers, rest, closed = raw_get(url, {**auth, "Range": f"bytes={middle}-"})
    assert status == 206 and closed and "Content-Length" not in headers
    assert headers["Content-Range"] == f"bytes {middle}-{rec.size - 1}/{rec.size}"
    assert rest == whole[middle:]


def test_emulator_length_framing_keeps_the_connection_alive(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory()  # content_framing="length", as RingCentral sends bodies
    tok = token(emu)
    rec = next(iter(emu.state.data.recordings.values()))
    parts = urlsplit(emu.media_url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=10)
    try:
        path = f"/restapi/v1.0/account/~/recording/{rec.id}/content"
        answers = []
        for extra in ({}, {"Range": f"bytes={rec.size}-"}, {"Range": "bytes=1-"}):
            conn.request("GET", path, headers={"Authorization": f"Bearer {tok}", **extra})
            reply = conn.getresponse()
            body = reply.read()
            answers.append((reply.status, reply.getheader("Content-Length"), len(body), reply.will_close))
            sock = conn.sock
            assert sock is not None  # still open: the next request goes over the same connection
    finally:
        conn.close()
    assert answers[0] == (200, str(rec.size), rec.size, False)
    assert answers[1][0] == 416 and not answers[1][3]
    assert answers[2] == (206, str(rec.size - 1), rec.size - 1, False)
    # A truncated reply under "length" is short of its Content-Length: the client sees the cut.
    emu.set_faults(FaultOptions(rates={"truncate": 1.0}))
    with pytest.raises(http.client.IncompleteRead):
        raw_get(f"{emu.media_url}{path}", {"Authorization": f"Bearer {tok}"})


def test_emulator_faults_are_seeded(emulator_factory: Callable[..., Emulator]) -> None:
    draws = []
    for _ in range(2):
        emu = emulator_factory(faults=FaultOptions(rates={"500": 0.3, "503": 0.2}, seed=42))
        draws.append([emu.state.faults.draw() for _ in range(50)])
    assert draws[0] == draws[1]
    assert {None, "500", "503"} == set(draws[0])


def test_emulator_hostile_names_on_request(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(data=DataOptions(seed=2, calls=40, days=1, hostile_fraction=1.0))
    records = call_log(emu, token(emu), perPage="max", view="Detailed", **ALL_TIME).json()["records"]
    values = {r["from"]["name"] for r in records} | {r["to"]["phoneNumber"] for r in records}
    assert values & set(HOSTILE_STRINGS)
    assert any("../" in v for v in values)


def test_emulator_ground_truth_and_stats_under_their_own_prefix(emulator: Emulator) -> None:
    truth = requests.get(f"{emulator.url}/_emulator/ground-truth", timeout=10).json()["recordings"]
    assert len(truth) == len(emulator.state.data.recordings)
    assert all(len(item["sha256"]) == 64 and item["size"] > 0 for item in truth)
    tok = token(emulator)
    item = truth[0]
    body = requests.get(
        f"{emulator.media_url}/restapi/v1.0/account/~/recording/{item['recordingId']}/content",
        headers={"Authorization": f"Bearer {tok}"},
        timeout=10,
    ).content
    import hashlib

    assert hashlib.sha256(body).hexdigest() == item["sha256"]
    stats = requests.get(f"{emulator.url}/_emulator/stats", timeout=10).json()
    assert stats["downloads"] == {item["recordingId"]: 1}
    assert stats["grants"] == {"jwt-bearer": 1}
    assert stats["requests"]["content 200"] == 1


def test_emulator_command_serves_until_sigterm(tmp_path: Path) -> None:
    port, media = free_port(), free_port()
    proc = subprocess.Popen(
        [
            str(BIN / "rc-archiver"),
            "emulator",
            "--port",
            str(port),
            "--media-port",
            str(media),
            "--calls",
            "20",
            "--seed",
            "7",
            "--days",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port)
        wait_for_port(media)
        sdk = SDK("emulator-client-id", "emulator-client-secret", f"http://127.0.0.1:{port}")
        sdk.platform().login(jwt="emulator-jwt-assertion")
        page = sdk.platform().get("/restapi/v1.0/account/~/call-log", {"dateFrom": "2000-01-01T00:00:00Z"})
        assert page.json_dict()["records"]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert '"emulator_ready"' in out
