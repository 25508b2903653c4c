"""Both readings of what RingCentral leaves open, its documented error replies, and the test knobs."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, FaultOptions, GroupLimit
from archiver.emulator.readings import OPTIMISTIC, PESSIMISTIC, Readings
from tests.helpers import SUBSET_SPEC, login, token, validate

SPEC = SUBSET_SPEC
ALL_TIME = {"dateFrom": "2000-01-01T00:00:00Z"}
# Enough calls that every shape is certain, records whose only recording is on a leg included.
MANY_SHAPES = DataOptions(seed=3, calls=300, days=3, bytes_per_second=10, leg_only_fraction=0.05)


def get(url: str, tok: str, **params: Any) -> requests.Response:
    return requests.get(url, params=params or None, headers={"Authorization": f"Bearer {tok}"}, timeout=10)


def call_log_url(emu: Emulator) -> str:
    return f"{emu.url}/restapi/v1.0/account/~/call-log"


def content_url(emu: Emulator, recording_id: str | None = None) -> str:
    rec_id = recording_id or next(iter(emu.state.data.recordings))
    return f"{emu.media_url}/restapi/v1.0/account/~/recording/{rec_id}/content"


def recording_ids(records: list[dict[str, Any]], *, legs: bool) -> set[str]:
    ids = {r["recording"]["id"] for r in records if "recording" in r}
    if legs:
        ids |= {leg["recording"]["id"] for r in records for leg in r.get("legs", []) if "recording" in leg}
    return ids


@pytest.mark.parametrize("top_level_only", [False, True])
def test_emulator_recording_type_filter_under_both_readings(
    emulator_factory: Callable[..., Emulator], top_level_only: bool
) -> None:
    emu = emulator_factory(data=MANY_SHAPES, filter_top_level_only=top_level_only)
    tok = token(emu)
    unfiltered = get(call_log_url(emu), tok, view="Detailed", perPage="max", **ALL_TIME).json()["records"]
    filtered_page = get(
        call_log_url(emu), tok, view="Detailed", perPage="max", recordingType="All", **ALL_TIME
    ).json()
    validate("CallLogResponse", filtered_page)
    filtered = filtered_page["records"]
    # Recordings of records that have none of their own: only a filter that reads legs returns them.
    hidden = recording_ids([r for r in unfiltered if "recording" not in r], legs=True)
    assert hidden, "the data must hold records whose only recording is on a leg"
    seen = recording_ids(filtered, legs=True)
    if top_level_only:
        assert all("recording" in r for r in filtered)
        assert not hidden & seen  # seen by unfiltered scans alone
    else:
        assert hidden <= seen
    assert recording_ids(unfiltered, legs=True) - hidden <= seen  # the rest match either way


def test_emulator_leg_only_records_appear_with_the_filter_reading(
    emulator_factory: Callable[..., Emulator],
) -> None:
    shapes = DataOptions(seed=3, calls=300, days=3, bytes_per_second=10)
    default = emulator_factory(data=shapes, filter_top_level_only=False)
    assert all(c.recording is not None for c in default.state.data.calls if c.legs[-1].recording)
    filtered = emulator_factory(data=DataOptions(seed=3, calls=300, days=3), filter_top_level_only=True)
    assert any(c.recording is None and c.recordings() for c in filtered.state.data.calls)


@pytest.mark.parametrize(
    ("knob", "status", "code", "permission"),
    [
        ("login-required", 401, "CMN-405", None),
        ("auth-method", 401, "OAU-151", None),
        ("no-read-call-recording", 403, "CMN-401", "ReadCallRecording"),
    ],
)
def test_emulator_content_error_knob_answers_ringcentral_body(
    emulator_factory: Callable[..., Emulator], knob: str, status: int, code: str, permission: str | None
) -> None:
    emu = emulator_factory(content_error=knob)
    tok = token(emu)
    reply = get(content_url(emu), tok)
    assert reply.status_code == status
    body = reply.json()
    validate("ApiErrorResponseModel", body)
    assert body["errors"][0]["errorCode"] == code
    if permission is not None:
        assert body["errorCode"] == "InsufficientPermissions"
        assert body["permissionName"] == body["errors"][0]["permissionName"] == permission
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200  # only content is affected
    assert emu.stats.snapshot()["downloads"] == {}


def test_emulator_call_log_error_knob_names_the_user_permission(
    emulator_factory: Callable[..., Emulator],
) -> None:
    emu = emulator_factory(call_log_error="no-full-company-call-log")
    tok = token(emu)
    reply = get(call_log_url(emu), tok, **ALL_TIME)
    assert reply.status_code == 403
    validate("ApiErrorResponseModel", reply.json())
    error = reply.json()["errors"][0]
    assert (error["errorCode"], error["permissionName"]) == ("CMN-408", "FullCompanyCallLog")
    assert get(content_url(emu), tok).status_code == 200


def test_emulator_scope_decides_app_permissions(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(scope="ReadCallLog")
    reply = login(emu)
    validate("TokenInfo", reply.json())
    assert reply.json()["scope"] == "ReadCallLog"
    tok = reply.json()["access_token"]
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200
    refused = get(content_url(emu), tok)
    assert refused.status_code == 403
    assert refused.json()["errors"][0] == {
        "errorCode": "CMN-401",
        "message": (
            "In order to call this API endpoint, application needs to have [ReadCallRecording] permission"
        ),
        "permissionName": "ReadCallRecording",
    }


def test_emulator_token_error_knob_answers_oau_251(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(token_error="unauthorized-grant")
    reply = login(emu)
    assert reply.status_code == 400
    body = reply.json()
    validate("ApiErrorResponseModel", body)
    assert body["error"] == "unauthorized_client"
    assert body["errors"][0]["errorCode"] == "OAU-251"
    assert emu.stats.snapshot()["logins"] == 0


def test_emulator_session_cap_ends_the_oldest_session(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(session_cap=2, ended_session="token-code")
    first, second, third = token(emu), token(emu), token(emu)
    ended = get(call_log_url(emu), first, **ALL_TIME)
    assert ended.status_code == 401
    assert ended.json()["errors"][0]["errorCode"] == "OAU-213"
    assert get(call_log_url(emu), second, **ALL_TIME).status_code == 200
    assert get(call_log_url(emu), third, **ALL_TIME).status_code == 200
    cfg = emu.config
    basic = base64.b64encode(f"{cfg.client_id}:{cfg.client_secret}".encode()).decode()
    revoked = requests.post(
        f"{emu.url}/restapi/oauth/revoke",
        data={"token": second},
        headers={"Authorization": f"Basic {basic}"},
        timeout=10,
    )
    assert revoked.status_code == 200
    fourth = token(emu)  # a revoked session frees its place: nobody is knocked out
    assert get(call_log_url(emu), third, **ALL_TIME).status_code == 200
    assert get(call_log_url(emu), fourth, **ALL_TIME).status_code == 200
    stats = emu.stats.snapshot()
    assert (stats["logins"], stats["sessions_invalidated"]) == (4, 1)


def test_emulator_session_cap_zero_means_none(emulator_factory: Callable[..., Emulator]) -> None:
    emulator = emulator_factory(session_cap=0)
    tokens = [token(emulator) for _ in range(7)]
    assert all(get(call_log_url(emulator), t, **ALL_TIME).status_code == 200 for t in tokens)
    assert emulator.stats.snapshot()["sessions_invalidated"] == 0


@pytest.mark.parametrize("mode", ["seconds", "absent", "http-date"])
def test_emulator_retry_after_modes_on_limiter_and_fault_429s(
    emulator_factory: Callable[..., Emulator], mode: str
) -> None:
    now = [1_800_000_000.0]
    emu = emulator_factory(heavy=GroupLimit(1, 60.0, 60.0), retry_after_mode=mode, clock=lambda: now[0])
    tok = token(emu)
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200
    refused = get(call_log_url(emu), tok, **ALL_TIME)
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["errorCode"] == "CMN-301"
    header = refused.headers.get("Retry-After")
    if mode == "absent":
        assert header is None
    elif mode == "seconds":
        assert header == "60"
    else:
        assert header is not None
        assert parsedate_to_datetime(header).timestamp() == now[0] + 60
    # The penalty runs whatever the header says: a request 59 s later restarts it.
    now[0] += 59
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 429
    now[0] += 61
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200

    now[0] += 61  # a fresh window: the next 429 is the injected one
    emu.set_faults(FaultOptions(rates={"429": 1.0}, retry_after=3))
    injected = get(call_log_url(emu), tok, **ALL_TIME)
    assert injected.status_code == 429
    expected = {"seconds": "3", "absent": None, "http-date": "present"}[mode]
    if expected == "present":
        assert parsedate_to_datetime(injected.headers["Retry-After"]).timestamp() == now[0] + 3
    else:
        assert injected.headers.get("Retry-After") == expected


def test_emulator_no_version_next_page_links_lead_to_404(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(next_page_style="no-version")
    tok = token(emu)
    page = get(call_log_url(emu), tok, perPage=5, view="Detailed", **ALL_TIME).json()
    validate("CallLogResponse", page)
    next_uri = page["navigation"]["nextPage"]["uri"]
    assert next_uri.startswith(f"{emu.url}/account/")
    assert "/restapi/v1.0" not in next_uri and "/restapi/v1.0" not in page["navigation"]["firstPage"]["uri"]
    followed = get(next_uri, tok)
    assert followed.status_code == 404
    validate("ApiErrorResponseModel", followed.json())
    # The same page asked for properly is there.
    again = get(call_log_url(emu), tok, perPage=5, page=2, view="Detailed", **ALL_TIME)
    assert again.status_code == 200 and again.json()["records"]


def test_emulator_media_group_has_its_own_budget(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(
        heavy=GroupLimit(2, 60.0, 60.0), media_group="media", media=GroupLimit(3, 60.0, 60.0)
    )
    tok = token(emu)
    downloads = [get(content_url(emu), tok) for _ in range(3)]
    assert [r.status_code for r in downloads] == [200, 200, 200]
    assert {r.headers["X-Rate-Limit-Group"] for r in downloads} == {"media"}
    assert [r.headers["X-Rate-Limit-Remaining"] for r in downloads] == ["2", "1", "0"]
    assert downloads[0].headers["X-Rate-Limit-Limit"] == "3"
    assert downloads[0].headers["X-Rate-Limit-Window"] == "60"
    assert get(content_url(emu), tok).status_code == 429
    pages = [get(call_log_url(emu), tok, **ALL_TIME) for _ in range(2)]  # heavy is untouched
    assert [p.status_code for p in pages] == [200, 200]
    assert pages[0].headers["X-Rate-Limit-Group"] == "heavy"


def test_emulator_media_can_share_heavy(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(heavy=GroupLimit(2, 60.0, 60.0), media_group="heavy")
    tok = token(emu)
    download = get(content_url(emu), tok)
    assert download.headers["X-Rate-Limit-Group"] == "heavy"
    assert get(call_log_url(emu), tok, **ALL_TIME).status_code == 200
    assert get(content_url(emu), tok).status_code == 429  # one budget for both


@pytest.mark.parametrize("kind", ["empty", "html"])
def test_emulator_bad_content_faults_are_200s_without_audio(emulator: Emulator, kind: str) -> None:
    tok = token(emulator)
    emulator.set_faults(FaultOptions(rates={kind: 1.0}))
    reply = get(content_url(emulator), tok)
    emulator.set_faults(FaultOptions())
    assert reply.status_code == 200
    if kind == "empty":
        assert reply.content == b""
        assert reply.headers["Content-Length"] == "0"
    else:
        assert reply.headers["Content-Type"].startswith("text/html")
        assert reply.content.startswith(b"<!DOCTYPE html>")
    stats = emulator.stats.snapshot()
    assert stats["faults"] == {kind: 1}
    assert stats["downloads"] == {}


@pytest.mark.parametrize(("kind", "code"), [("500", "CMN-203"), ("503", "CMN-201")])
def test_emulator_server_errors_carry_documented_codes(emulator: Emulator, kind: str, code: str) -> None:
    tok = token(emulator)
    emulator.set_faults(FaultOptions(rates={kind: 1.0}))
    reply = get(call_log_url(emulator), tok, **ALL_TIME)
    emulator.set_faults(FaultOptions())
    assert reply.status_code == int(kind)
    validate("ApiErrorResponseModel", reply.json())
    assert reply.json()["errors"][0]["errorCode"] == code


def test_emulator_unsatisfiable_range_answers_cmn_107(emulator: Emulator) -> None:
    tok = token(emulator)
    rec = next(iter(emulator.state.data.recordings.values()))
    reply = requests.get(
        content_url(emulator, rec.id),
        headers={"Authorization": f"Bearer {tok}", "Range": f"bytes={rec.size}-"},
        timeout=10,
    )
    assert reply.status_code == 416
    assert reply.headers["Content-Range"] == f"bytes */{rec.size}"
    validate("ApiErrorResponseModel", reply.json())
    assert reply.json()["errors"][0]["errorCode"] == "CMN-107"


def test_emulator_pessimistic_switch_takes_every_worse_reading() -> None:
    assert EmulatorConfig().readings() == OPTIMISTIC
    pessimistic = EmulatorConfig(pessimistic=True)
    assert pessimistic.readings() == PESSIMISTIC
    assert PESSIMISTIC.filter_top_level_only and PESSIMISTIC.session_cap == 5
    assert (PESSIMISTIC.retry_after_mode, PESSIMISTIC.next_page_style) == ("absent", "no-version")
    assert PESSIMISTIC.media_group != "heavy"
    assert (PESSIMISTIC.deleted_listing, PESSIMISTIC.delete_unknown) == ("dropped", "refuse")
    assert (OPTIMISTIC.deleted_listing, OPTIMISTIC.delete_unknown) == ("kept", "ignore")
    # The permission and non-token 401 knobs are per-test faults, never part of the switch.
    assert (pessimistic.content_error, pessimistic.call_log_error, pessimistic.token_error) == ("", "", "")
    assert (pessimistic.content_framing, pessimistic.delete_fault) == ("length", "")
    # An option set explicitly wins over the switch.
    explicit = EmulatorConfig(
        pessimistic=True, next_page_style="absolute", session_cap=0, deleted_listing="kept"
    )
    assert explicit.readings().next_page_style == "absolute"
    assert explicit.readings().deleted_listing == "kept"
    assert explicit.readings().delete_unknown == "refuse"
    assert explicit.readings().session_cap == 0
    assert explicit.readings().retry_after_mode == "absent"


def test_emulator_pessimistic_over_http(emulator_factory: Callable[..., Emulator]) -> None:
    emu = emulator_factory(pessimistic=True, media=GroupLimit(1, 60.0, 60.0))
    tok = token(emu)
    page = get(call_log_url(emu), tok, perPage=5, **ALL_TIME).json()
    assert "/restapi/v1.0" not in page["navigation"]["nextPage"]["uri"]
    download = get(content_url(emu), tok)
    assert download.headers["X-Rate-Limit-Group"] == "media"
    refused = get(content_url(emu), tok)
    assert refused.status_code == 429 and "Retry-After" not in refused.headers


@pytest.mark.parametrize(
    "changes",
    [
        {"retry_after_mode": "sometimes"},
        {"next_page_style": "relative"},
        {"media_group": "auth"},
        {"session_cap": -1},
        {"content_error": "nope"},
        {"token_error": "nope"},
        {"retention": 0.0},
        {"deleted_listing": "hidden"},
        {"delete_unknown": "sometimes"},
        {"content_framing": "chunked"},
        {"delete_fault": "slow"},
    ],
)
def test_emulator_config_refuses_unknown_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        Emulator(EmulatorConfig(**changes))


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com", "::"])  # noqa: S104 - refused
def test_emulator_command_refuses_a_host_beyond_loopback(host: str) -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "rc-archiver"), "emulator", "--host", host, "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "is not a loopback address" in proc.stdout + proc.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.5.6.7", "::1", "localhost"])
def test_emulator_command_accepts_loopback_hosts(host: str) -> None:
    import argparse

    from archiver.emulator.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(parser.parse_args(["--host", host, "--pessimistic", "--media", "4/60s"]))
    assert config.host == host
    assert config.readings() == PESSIMISTIC
    assert config.media == GroupLimit(4, 60.0, 60.0)


def test_emulator_command_options_reach_the_config() -> None:
    import argparse

    from archiver.emulator.cli import add_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = [
        "--pessimistic",
        "--no-filter-top-level-only",
        "--session-cap=0",
        "--retry-after=http-date",
        "--next-page-style=absolute",
        "--media-group=heavy",
        "--retention=30d",
        "--scope=ReadCallLog ReadCallRecording EditCallLog",
        "--content-error=login-required",
        "--call-log-error=no-full-company-call-log",
        "--token-error=unauthorized-grant",
        "--leg-only=0.1",
        "--delete-unknown=ignore",
        "--content-framing=close",
        "--delete-fault=partial",
    ]
    config = config_from_args(parser.parse_args(args))
    # --pessimistic gives "dropped"; --delete-unknown overrides its "refuse".
    assert config.readings() == replace(
        PESSIMISTIC,
        filter_top_level_only=False,
        session_cap=0,
        retry_after_mode="http-date",
        next_page_style="absolute",
        media_group="heavy",
        delete_unknown="ignore",
    )
    assert config.readings().deleted_listing == "dropped"
    assert (config.content_framing, config.delete_fault) == ("close", "partial")
    kept = config_from_args(parser.parse_args(["--deleted-listing=kept", "--delete-fault=lost"]))
    assert (kept.readings().deleted_listing, kept.delete_fault) == ("kept", "lost")
    assert config.retention == 30 * 86400
    assert config.scope.split() == ["ReadCallLog", "ReadCallRecording", "EditCallLog"]
    assert (config.content_error, config.call_log_error, config.token_error) == (
        "login-required",
        "no-full-company-call-log",
        "unauthorized-grant",
    )
    assert config.data.leg_only_fraction == 0.1
    defaults = config_from_args(parser.parse_args([]))
    assert defaults.readings() == OPTIMISTIC and defaults.retention is None
    assert (defaults.content_framing, defaults.delete_fault) == ("length", "")


@pytest.mark.parametrize(("switch", "expected"), [("1", PESSIMISTIC), ("", OPTIMISTIC)])
def test_emulator_factory_follows_the_suite_switch(
    emulator_factory: Callable[..., Emulator],
    monkeypatch: pytest.MonkeyPatch,
    switch: str,
    expected: Readings,
) -> None:
    monkeypatch.setenv("RC_EMULATOR_PESSIMISTIC", switch)
    assert emulator_factory().state.readings == expected
    assert emulator_factory(session_cap=0).state.readings.session_cap == 0  # explicit wins
