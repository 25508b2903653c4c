"""What public reports show RingCentral doing (issue 21), each an emulator option with both readings,
and the spec departures fixed: revoke by query string, the media host's `access_token`, rate headers on
401s and token errors, the paging cap, the user permissions, the refresh reuse window."""

from __future__ import annotations

import base64
import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.emulator.readings import PESSIMISTIC
from tests.helpers import BIN, JWT_GRANT, SUBSET_SPEC, free_port, login, token, validate, wait_for_port

SPEC = SUBSET_SPEC
ALL_TIME = {"dateFrom": "2000-01-01T00:00:00Z"}


def basic(emu: Emulator) -> dict[str, str]:
    cfg = emu.config
    return {
        "Authorization": "Basic " + base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()
    }


def get(url: str, tok: str | None, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    auth = {"Authorization": f"Bearer {tok}"} if tok else {}
    return requests.get(url, params=params or None, headers={**auth, **(headers or {})}, timeout=10)


def call_log_url(emu: Emulator) -> str:
    return f"{emu.url}/restapi/v1.0/account/~/call-log"


def content_url(emu: Emulator) -> str:
    rec_id = next(iter(emu.state.data.recordings))
    return f"{emu.media_url}/restapi/v1.0/account/~/recording/{rec_id}/content"


# -- U20: JSON Accept on media ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("accept", "served"),
    [
        (None, True),
        ("*/*", True),
        ("audio/*", True),
        ("audio/mpeg, audio/wav", True),
        ("application/json, */*;q=0.1", True),
        ("application/json", False),
        ("application/json, audio/*;q=0", False),
        ("text/html", False),
    ],
)
def test_emulator_media_accept_refuse_answers_406_to_a_json_only_accept(
    emulator_factory: Callable[..., Emulator], accept: str | None, served: bool
) -> None:
    emu = emulator_factory(media_accept="refuse", data=DataOptions(seed=5, calls=10, bytes_per_second=10))
    tok = token(emu)
    reply = get(content_url(emu), tok, {"Accept": accept} if accept else None)
    if served:
        assert reply.status_code == 200 and reply.headers["Content-Type"].startswith("audio/")
        return
    assert reply.status_code == 406
    validate("ApiErrorResponseModel", reply.json())
    assert reply.json()["errors"][0]["parameterName"] == "Accept"
    assert emu.stats.snapshot()["downloads"] == {}
    # Reading A serves the same request.
    lenient = emulator_factory(media_accept="ignore", data=DataOptions(seed=5, calls=10, bytes_per_second=10))
    assert (
        get(content_url(lenient), token(lenient), {"Accept": accept} if accept else None).status_code == 200
    )


# -- U21: 429s in every reported shape ---------------------------------------------------------------
def test_emulator_varied_429s_take_each_reported_shape_in_turn(
    emulator_factory: Callable[..., Emulator],
) -> None:
    now = [1_800_000_000.0]
    emu = emulator_factory(
        heavy=GroupLimit(1, 60.0, 60.0),
        rate_429_form="varied",
        retry_after_mode="seconds",
        clock=lambda: now[0],
    )
    tok = token(emu)
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200
    refused = [get(call_log_url(emu), tok, **ALL_TIME) for _ in range(3)]
    assert [r.status_code for r in refused] == [429, 429, 429]
    remaining, headerless, html = refused
    assert int(remaining.headers["X-Rate-Limit-Remaining"]) > 0  # "without warning"
    assert remaining.json()["errors"][0]["errorCode"] == "CMN-301"
    assert not [h for h in headerless.headers if h.lower().startswith("x-rate-limit-")]
    validate("ApiErrorResponseModel", headerless.json())
    assert html.headers["Content-Type"].startswith("text/html") and b"Too Many Requests" in html.content
    assert all(r.headers["Retry-After"] == "60" for r in refused)  # the penalty runs (and restarts) alike


def test_emulator_standard_429s_say_remaining_zero(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(heavy=GroupLimit(1, 60.0, 60.0), rate_429_form="standard")
    tok = token(emu)
    get(call_log_url(emu), tok, **ALL_TIME)
    refused = [get(call_log_url(emu), tok, **ALL_TIME) for _ in range(3)]
    assert {(r.status_code, r.headers["X-Rate-Limit-Remaining"]) for r in refused} == {(429, "0")}
    assert all(r.json()["errors"][0]["errorCode"] == "CMN-301" for r in refused)


# -- U22: parameters the request never sent, in paging links -----------------------------------------
@pytest.mark.parametrize("links", ["plain", "extra"])
def test_emulator_paging_links_carry_extra_parameters_under_reading_b(
    emulator_factory: Callable[..., Emulator], links: str
) -> None:
    emu = emulator_factory(page_links=links, next_page_style="absolute")
    tok = token(emu)
    page = get(call_log_url(emu), tok, perPage=5, view="Detailed", **ALL_TIME).json()
    validate("CallLogResponse", page)
    next_uri = page["navigation"]["nextPage"]["uri"]
    query = parse_qs(urlsplit(next_uri).query)
    assert "/account/400131227008/call-log" in next_uri  # the numeric id, never `~`
    if links == "extra":
        assert (query["showBlocked"], query["withRecording"]) == (["true"], ["false"])
    else:
        assert "showBlocked" not in query and "withRecording" not in query
    followed = get(next_uri, tok).json()
    asked = get(call_log_url(emu), tok, perPage=5, page=2, view="Detailed", **ALL_TIME).json()
    assert [r["id"] for r in followed["records"]] == [r["id"] for r in asked["records"]]


# -- U23: call-queue fan-out records -------------------------------------------------------------------
def test_emulator_queue_fanout_logs_a_record_per_member_with_one_recording(
    emulator_factory: Callable[..., Emulator],
) -> None:
    data = DataOptions(seed=9, calls=200, days=2, bytes_per_second=10)
    single = emulator_factory(data=data, queue_records="single")
    fanout = emulator_factory(data=data, queue_records="fanout")
    per_recording = Counter(
        r["recording"]["id"]
        for r in get(call_log_url(fanout), token(fanout), perPage="max", **ALL_TIME).json()["records"]
        if "recording" in r
    )
    fanned = [rec_id for rec_id, n in per_recording.items() if n >= 3]  # a queue rings 2 to 4 members
    assert fanned
    truth = {e["recordingId"]: e for e in fanout.ground_truth()}
    assert all(len(truth[rec_id]["callIds"]) == per_recording[rec_id] for rec_id in fanned)
    assert len(fanout.state.data.calls) > len(single.state.data.calls)
    assert max(len(e["callIds"]) for e in single.ground_truth()) <= 2  # internal calls only


# -- U2: an ended token's code ----------------------------------------------------------------------
@pytest.mark.parametrize(("reading", "code"), [("token-code", "OAU-213"), ("other-code", "CMN-405")])
def test_emulator_ended_session_code_follows_the_reading(
    emulator_factory: Callable[..., Emulator], reading: str, code: str
) -> None:
    emu = emulator_factory(ended_session=reading)
    tok = token(emu)
    requests.post(f"{emu.url}/restapi/oauth/revoke", data={"token": tok}, headers=basic(emu), timeout=10)
    ended = get(call_log_url(emu), tok, **ALL_TIME)
    assert ended.status_code == 401
    assert ended.json()["errors"][0]["errorCode"] == code
    never_issued = get(call_log_url(emu), "never-issued", **ALL_TIME)
    assert never_issued.json()["errors"][0]["errorCode"] == "OAU-213"  # only ended ones differ


# -- U13: whose Auth budget --------------------------------------------------------------------------
@pytest.mark.parametrize(("bucket", "fourth"), [("user", 200), ("client", 429)])
def test_emulator_auth_bucket_per_user_or_per_client(
    emulator_factory: Callable[..., Emulator], bucket: str, fourth: int
) -> None:
    emu = emulator_factory(
        auth=GroupLimit(3, 60.0, 60.0), auth_bucket=bucket, other_jwts=("second-user-jwt",)
    )
    first_user = [login(emu).status_code for _ in range(3)]
    assert first_user == [200, 200, 200]
    second = login(emu, assertion="second-user-jwt")
    assert second.status_code == fourth
    if fourth == 200:
        assert second.json()["owner_id"] == "400131227010"  # a user of its own, with its own budget
        assert login(emu).status_code == 429  # the first user's own budget is spent


# -- the user permission on DELETE and on the call log -----------------------------------------------------
def test_emulator_user_permissions_answer_cmn_408(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(
        scope="ReadCallLog ReadCallRecording EditCallLog", user_permissions="FullCompanyCallLog"
    )
    tok = token(emu)
    rec_id = next(iter(emu.state.data.recordings))
    refused = requests.delete(
        f"{emu.url}/restapi/v1.0/account/~/call-recordings",
        json={"records": [rec_id]},
        headers={"Authorization": f"Bearer {tok}"},
        timeout=10,
    )
    assert refused.status_code == 403
    validate("ApiErrorResponseModel", refused.json())
    error = refused.json()["errors"][0]
    assert (error["errorCode"], error["permissionName"]) == ("CMN-408", "EditCompanyCallRecordings")
    assert emu.deleted() == []
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200
    no_log = emulator_factory(user_permissions="")
    refused_log = get(call_log_url(no_log), token(no_log), **ALL_TIME)
    assert refused_log.status_code == 403
    assert refused_log.json()["errors"][0]["permissionName"] == "FullCompanyCallLog"


# -- U24: the paging cap ---------------------------------------------------------------------------
@pytest.mark.parametrize("cap", ["refuse", "cap"])
def test_emulator_page_past_the_spec_maximum(emulator_factory: Callable[..., Emulator], cap: str) -> None:
    emu = emulator_factory(page_cap=cap, max_page=2)
    tok = token(emu)
    last = get(call_log_url(emu), tok, perPage=1, page=2, **ALL_TIME).json()
    past = get(call_log_url(emu), tok, perPage=1, page=3, **ALL_TIME)
    if cap == "refuse":
        assert past.status_code == 400
        validate("ApiErrorResponseModel", past.json())
        assert past.json()["errors"][0]["parameterName"] == "page"
    else:
        assert past.status_code == 200
        validate("CallLogResponse", past.json())
        assert past.json()["paging"]["page"] == 2
        assert past.json()["records"] == last["records"]


@pytest.mark.parametrize(("pessimistic", "status"), [(False, 400), (True, 200)])
def test_emulator_page_1001_at_the_spec_maximum(
    emulator_factory: Callable[..., Emulator], pessimistic: bool, status: int
) -> None:
    emu = emulator_factory(
        pessimistic=pessimistic, page_cap=PESSIMISTIC.page_cap if pessimistic else "refuse"
    )
    reply = get(call_log_url(emu), token(emu), page=1001, **ALL_TIME)
    assert reply.status_code == status
    if status == 200:
        assert reply.json()["paging"]["page"] == 1000
        validate("CallLogResponse", reply.json())


# -- spec departures fixed -------------------------------------------------------------------------
def test_emulator_revoke_reads_the_token_from_the_query_string(emulator: Emulator) -> None:
    tok = token(emulator)
    reply = requests.post(
        f"{emulator.url}/restapi/oauth/revoke", params={"token": tok}, headers=basic(emulator), timeout=10
    )
    assert reply.status_code == 200
    assert get(call_log_url(emulator), tok, **ALL_TIME).status_code == 401
    assert emulator.stats.snapshot()["revokes"] == 1


def test_emulator_media_host_takes_access_token_as_a_query_parameter(emulator: Emulator) -> None:
    tok = token(emulator)
    assert get(content_url(emulator), None, access_token=tok).status_code == 200
    assert get(content_url(emulator), None, access_token="wrong").status_code == 401
    # Only the media host: the platform wants the header.
    rec_id = next(iter(emulator.state.data.recordings))
    metadata = get(f"{emulator.url}/restapi/v1.0/account/~/recording/{rec_id}", None, access_token=tok)
    assert metadata.status_code == 401


def test_emulator_401s_and_token_errors_carry_rate_headers(emulator: Emulator) -> None:
    refused = get(call_log_url(emulator), "never-issued", **ALL_TIME)
    assert refused.status_code == 401 and refused.headers["X-Rate-Limit-Group"] == "heavy"
    media = get(content_url(emulator), "never-issued")
    assert media.status_code == 401 and "X-Rate-Limit-Limit" in media.headers
    bad_client = requests.post(
        f"{emulator.url}/restapi/oauth/token",
        data={"grant_type": JWT_GRANT, "assertion": emulator.config.jwt},
        headers={"Authorization": "Basic " + base64.b64encode(b"nobody:nothing").decode()},
        timeout=10,
    )
    assert bad_client.status_code == 401 and bad_client.headers["X-Rate-Limit-Group"] == "auth"
    bad_jwt = login(emulator, assertion="not-the-jwt")
    assert bad_jwt.status_code == 401 and bad_jwt.headers["X-Rate-Limit-Group"] == "auth"


# -- U25: the refresh reuse window ------------------------------------------------------------------
@pytest.mark.parametrize("reuse", ["window", "once"])
def test_emulator_refresh_token_reuse_window(emulator_factory: Callable[..., Emulator], reuse: str) -> None:
    now = [1_800_000_000.0]
    emu = emulator_factory(refresh_tokens=True, refresh_reuse=reuse, clock=lambda: now[0])
    refresh = login(emu).json()["refresh_token"]

    def use() -> requests.Response:
        form = {"grant_type": "refresh_token", "refresh_token": refresh}
        return requests.post(f"{emu.url}/restapi/oauth/token", data=form, headers=basic(emu), timeout=10)

    first = use()
    assert first.status_code == 200
    validate("TokenInfo", first.json())
    again = use()
    if reuse == "window":
        assert again.status_code == 200
        assert again.json()["access_token"] == first.json()["access_token"]  # the same reply, no new session
    else:
        assert again.status_code == 400 and again.json()["errors"][0]["errorCode"] == "OAU-211"
    now[0] += 11
    late = use()
    assert late.status_code == 400 and late.json()["errors"][0]["errorCode"] == "OAU-211"
    assert get(call_log_url(emu), first.json()["access_token"], **ALL_TIME).status_code == 200


def test_emulator_command_pessimistic_as_a_client_probes_it(tmp_path: Path) -> None:
    """Issue 21's "done when", against the real `rc-archiver emulator --pessimistic` process: JSON-Accept
    media refused, a deleted recording dropped from the call log, `page` capped at the spec's maximum, a
    revoke by query string honoured."""
    port, media = free_port(), free_port()
    command = [str(BIN / "rc-archiver"), "emulator", "--pessimistic", "--port", str(port), "--media-port"]
    command += [str(media), "--calls", "30", "--days", "1", "--recording-delay", "0", "--record-delay", "0"]
    command += ["--scope", "ReadCallLog ReadCallRecording EditCallLog"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        wait_for_port(media)
        platform, client = (
            f"http://127.0.0.1:{port}",
            {
                "Authorization": "Basic "
                + base64.b64encode(b"emulator-client-id:emulator-client-secret").decode()
            },
        )
        form = {"grant_type": JWT_GRANT, "assertion": "emulator-jwt-assertion"}
        tok = requests.post(f"{platform}/restapi/oauth/token", data=form, headers=client, timeout=10).json()[
            "access_token"
        ]
        records = get(f"{platform}/restapi/v1.0/account/~/call-log", tok, perPage="max", **ALL_TIME).json()[
            "records"
        ]
        recorded = [r for r in records if "recording" in r]
        uri = recorded[-1]["recording"]["contentUri"]  # the oldest: ready long ago
        rec_id = recorded[-1]["recording"]["id"]
        assert get(uri, tok, {"Accept": "application/json"}).status_code == 406
        assert get(uri, tok, {"Accept": "*/*"}).status_code == 200
        deleted = requests.delete(
            f"{platform}/restapi/v1.0/account/~/call-recordings",
            json={"records": [rec_id]},
            headers={"Authorization": f"Bearer {tok}"},
            timeout=10,
        )
        assert deleted.status_code == 204
        after = get(f"{platform}/restapi/v1.0/account/~/call-log", tok, perPage="max", **ALL_TIME).json()
        listed = {r["recording"]["id"] for r in after["records"] if "recording" in r}
        listed |= {
            leg["recording"]["id"]
            for r in after["records"]
            for leg in r.get("legs", [])
            if "recording" in leg
        }
        assert rec_id not in listed and {r["id"] for r in after["records"]} >= {recorded[-1]["id"]}
        capped = get(f"{platform}/restapi/v1.0/account/~/call-log", tok, page=1001, **ALL_TIME)
        assert capped.status_code == 200 and capped.json()["paging"]["page"] == 1000
        revoked = requests.post(
            f"{platform}/restapi/oauth/revoke", params={"token": tok}, headers=client, timeout=10
        )
        assert revoked.status_code == 200
        assert get(f"{platform}/restapi/v1.0/account/~/call-log", tok, **ALL_TIME).status_code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
