"""The RingCentral client against a scripted in-process server (archiver.ringcentral.fake): paging,
tokens, 401/403, 429 holds, 5xx backoff, bodies that are no recording, Range resumes, deletions."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from io import BytesIO
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from structlog.testing import capture_logs

from archiver.errors import AuthError, Cancelled, PermanentError, TransientError
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.client import RingCentralClient
from archiver.ringcentral.fake import Reply, ScriptedTransport
from archiver.ringcentral.pacer import RatePacer

PLATFORM = "https://platform.ringcentral.com"
MEDIA = "https://media.ringcentral.com"
CALL_LOG = "/restapi/v1.0/account/~/call-log"
DAY = datetime(2026, 11, 27, tzinfo=UTC)
AUDIO = bytes(range(256)) * 40
Api = Callable[[requests.PreparedRequest, str], Reply]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeRingCentral:
    """Token and revoke endpoints that work; every other request goes to `api` with its token."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.logins = 0
        self.revoked: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        path = urlsplit(str(request.url)).path
        with self.lock:
            if path == "/restapi/oauth/token":
                self.logins += 1
                grant = {"access_token": f"tok-{self.logins}", "token_type": "bearer", "expires_in": 3600}
                return Reply(200, {**grant, "scope": "ReadCallLog ReadCallRecording"})
            if path == "/restapi/oauth/revoke":
                self.revoked.append(parse_qs(str(request.body))["token"][0])
                return Reply(200)
        token = str(request.headers.get("Authorization", "")).removeprefix("Bearer ")
        return self.api(request, token)


class Rig:
    def __init__(self, api: Api, *, heavy_limit: int = 100, attempts: int = 3, cancel: bool = False) -> None:
        self.server = FakeRingCentral(api)
        self.transport = ScriptedTransport(self.server)
        session = requests.Session()
        session.mount("https://", self.transport)
        self.clock = Clock()
        self.sleeps: list[float] = []
        self.progress = 0
        self.cancel = threading.Event()
        if cancel:
            self.cancel.set()
        self.heavy = RatePacer("heavy", heavy_limit, 60.0, self.clock)
        auth = Authenticator(
            PLATFORM,
            "id",
            "secret",
            "jwt",
            session,
            (5, 5),
            RatePacer("auth", 100, 60.0, self.clock),
            self.clock,
        )
        self.client = RingCentralClient(
            PLATFORM,
            session,
            auth,
            self.heavy,
            (5, 5),
            attempts=attempts,
            cancel=self.cancel,
            on_progress=self.tick,
            sleep=self.sleeps.append,
        )

    def tick(self) -> None:
        self.progress += 1

    def api_requests(self) -> list[Any]:
        return [s for s in self.transport.sent if "/oauth/" not in s.url]


def error(status: int, code: str, **fields: str) -> Reply:
    return Reply(status, {"errors": [{"errorCode": code, "message": "m", **fields}]})


def record(call_id: str, recording: str | None = None, legs: tuple[str | None, ...] = ()) -> dict[str, Any]:
    def rec(rid: str) -> dict[str, Any]:
        return {
            "id": rid,
            "type": "Automatic",
            "contentUri": f"{MEDIA}/restapi/v1.0/account/1/recording/{rid}/content",
        }

    out: dict[str, Any] = {"id": call_id, "startTime": "2026-11-27T10:00:00.000Z", "duration": 60}
    if recording:
        out["recording"] = rec(recording)
    out["legs"] = [
        {"startTime": "2026-11-27T10:00:00.000Z", **({"recording": rec(r)} if r else {})} for r in legs
    ]
    return out


def page(records: list[dict[str, Any]], next_uri: str | None = None) -> Reply:
    navigation = {"nextPage": {"uri": next_uri}} if next_uri else {}
    return Reply(200, {"records": records, "paging": {"page": 1}, "navigation": navigation})


def audio(data: bytes = AUDIO, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, data, {"Content-Type": "audio/mpeg", **(headers or {})})


def pages(rig: Rig) -> list[str]:
    return [
        r.recording_id for p in rig.client.call_log_pages(DAY, DAY + timedelta(days=1)) for r in p.recordings
    ]


def test_client_call_log_scans_every_call_and_finds_leg_only_recordings() -> None:
    rig = Rig(
        lambda request, token: page(
            [record("c1", "r1", ("r1", "r2")), record("c2"), record("c3", None, ("r3",))]
        )
    )
    assert sorted(pages(rig)) == ["r1", "r2", "r3"]
    (sent,) = rig.api_requests()
    query = parse_qs(urlsplit(sent.url).query)
    assert "recordingType" not in query and "withRecording" not in query
    assert query["view"] == ["Detailed"] and query["perPage"] == ["1000"]


def test_client_next_page_followed_when_it_names_the_same_resource_and_query() -> None:
    """RingCentral's own links: the numeric account id, times re-rendered, defaults added (U22)."""
    followed: list[str] = []

    def api(request: requests.PreparedRequest, token: str) -> Reply:
        query = parse_qs(urlsplit(str(request.url)).query)
        if query.get("page") == ["2"]:
            return page([record("c2", "r2")])
        link = f"{PLATFORM}/restapi/v1.0/account/37439510/call-log?showBlocked=true&withRecording=false"
        link += "".join(
            f"&{k}={v[0].replace('.000Z', 'Z') if k.startswith('date') else v[0]}" for k, v in query.items()
        )
        followed.append(link + "&page=2")
        return page([record("c1", "r1")], followed[0])

    rig = Rig(api)
    assert pages(rig) == ["r1", "r2"]
    assert rig.api_requests()[1].url == followed[0]


@pytest.mark.parametrize(
    "next_uri",
    [
        f"{PLATFORM}/account/~/call-log?page=2",  # RingCentral's 2021 example: no /restapi/v1.0
        f"https://evil.example{CALL_LOG}?page=2",  # another host: it must never see our token
        f"http://platform.ringcentral.com{CALL_LOG}?page=2",  # another scheme
        f"{PLATFORM}{CALL_LOG}?cursor=abc",  # not the query asked for (urls.same_query): page 2 is built
    ],
)
def test_client_next_page_rebuilt_from_the_query_when_it_names_another_resource(next_uri: str) -> None:
    def api(request: requests.PreparedRequest, token: str) -> Reply:
        number = parse_qs(urlsplit(str(request.url)).query).get("page", ["1"])[0]
        return page([record("c1", "r1")], next_uri) if number == "1" else page([record("c2", "r2")])

    rig = Rig(api)
    assert pages(rig) == ["r1", "r2"]
    first, second = rig.api_requests()
    assert {urlsplit(s.url).netloc for s in rig.transport.sent} == {"platform.ringcentral.com"}
    assert urlsplit(second.url).path == CALL_LOG
    asked, rebuilt = parse_qs(urlsplit(first.url).query), parse_qs(urlsplit(second.url).query)
    assert rebuilt.pop("page") == ["2"] and rebuilt == asked


def test_client_token_renewed_once_across_threads_and_the_old_one_revoked() -> None:
    def api(request: requests.PreparedRequest, token: str) -> Reply:
        return error(401, "OAU-128") if token == "tok-1" else page([record("c1", "r1")])

    rig = Rig(api)
    start = threading.Barrier(8)
    results: list[list[str]] = []

    def scan() -> None:
        start.wait()
        results.append(pages(rig))

    threads = [threading.Thread(target=scan) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["r1"]] * 8
    assert rig.server.logins == 2  # the first login and one renewal, for eight threads
    assert rig.server.revoked == ["tok-1"]


@pytest.mark.parametrize("code", ["CMN-405", "OAU-151"])
def test_client_non_token_401_stops_after_one_fresh_token(code: str) -> None:
    """A session ended elsewhere may answer with a non-token code (U2 reading B): one fresh login, and
    a 401 again is the AuthError (exit 3), never a loop."""
    rig = Rig(lambda request, token: error(401, code))
    with pytest.raises(AuthError, match=code):
        pages(rig)
    assert len(rig.api_requests()) == 2 and rig.server.logins == 2


def test_client_non_token_401_for_a_pushed_out_session_is_survived() -> None:
    """U2 reading B: the first token was ended by other logins past the session cap and answers
    CMN-405; the fresh token works, and the scan goes on."""
    rig = Rig(
        lambda request, token: error(401, "CMN-405") if token == "tok-1" else page([record("c1", "r1")])
    )
    assert pages(rig) == ["r1"]
    assert rig.server.logins == 2


def test_client_403_names_the_missing_permission_and_the_fix() -> None:
    rig = Rig(lambda request, token: error(403, "CMN-401", permissionName="ReadCallRecording"))
    with pytest.raises(AuthError, match=r"CMN-401.*ReadCallRecording") as caught:
        rig.client.download(f"{MEDIA}/restapi/v1.0/account/1/recording/r1/content", BytesIO())
    assert "Developer Console" in caught.value.hint
    assert len(rig.api_requests()) == 1 and rig.server.logins == 1


def _http_date(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


@pytest.mark.parametrize(
    ("headers", "hold"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "7"}, 7.0),  # any spelling of the name
        ({"Retry-After": "<30 s from now, as an HTTP date>"}, 30.0),
        ({}, 60.0),  # absent: outlast RingCentral's 60 s default penalty
        ({"Retry-After": "soon"}, 60.0),
        ({"X-Rate-Limit-Window": "120"}, 120.0),  # absent, with a longer window
    ],
)
def test_client_429_holds_the_group(headers: dict[str, str], hold: float) -> None:
    if headers.get("Retry-After", "").startswith("<"):
        headers = {"Retry-After": _http_date(30)}  # made now, not at collection
    rig = Rig(lambda request, token: Reply(429, {"errors": [{"errorCode": "CMN-301"}]}, headers), cancel=True)
    with capture_logs() as logs, pytest.raises(Cancelled):  # the retry waits for the hold
        pages(rig)
    (event,) = [e for e in logs if e["event"] == "rate_limited"]
    assert event["group"] == "heavy" and event["hold"] == pytest.approx(hold, abs=2)
    assert len(rig.api_requests()) == 1  # nothing is sent during the hold
    rig.clock.now += event["hold"] + 1
    rig.heavy.acquire(rig.cancel)  # and the group opens again after it


def test_client_5xx_backs_off_from_two_seconds_and_honours_retry_after() -> None:
    replies = iter(
        [error(503, "CMN-203"), Reply(503, None, {"Retry-After": "9"}), page([record("c1", "r1")])]
    )
    rig = Rig(lambda request, token: next(replies))
    with capture_logs() as logs:
        assert pages(rig) == ["r1"]
    assert rig.sleeps[0] >= 2.0 and rig.sleeps[1] >= 9.0
    retries = [e for e in logs if e["event"] == "retrying"]
    assert [(e["host"], e["what"], e["attempt"]) for e in retries] == [
        ("platform.ringcentral.com", "call-log 2026-11-27", 1),
        ("platform.ringcentral.com", "call-log 2026-11-27", 2),
    ]


def test_client_download_gives_transient_error_when_retries_run_out() -> None:
    rig = Rig(lambda request, token: error(503, "CMN-203"), attempts=3)
    with pytest.raises(TransientError, match="503"):
        rig.client.download(f"{MEDIA}/restapi/v1.0/account/1/recording/r1/content", BytesIO(), "recording r1")
    assert len(rig.api_requests()) == 3


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (audio(b""), "empty body"),
        (
            Reply(200, b"<html>login</html>", {"Content-Type": "text/html; charset=utf-8"}),
            "text/html instead of audio",
        ),
        (Reply(200, b"data"), "no Content-Type instead of audio"),
        (Reply(200, AUDIO, {"Content-Type": "audio/mpeg", "Content-Encoding": "gzip"}), "gzip-encoded"),
    ],
)
def test_client_download_refuses_bodies_that_are_no_recording(reply: Reply, reason: str) -> None:
    rig = Rig(lambda request, token: reply)
    with pytest.raises(PermanentError, match=reason):
        rig.client.download(f"{MEDIA}/restapi/v1.0/account/1/recording/r1/content", BytesIO())
    assert len(rig.api_requests()) == 1


def test_client_download_asks_identity_and_resumes_with_range() -> None:
    cut = 1000

    def api(request: requests.PreparedRequest, token: str) -> Reply:
        wanted = request.headers.get("Range")
        if wanted is None:
            return Reply(
                200, AUDIO, {"Content-Type": "audio/mpeg", "Content-Length": str(len(AUDIO))}, cut_after=cut
            )
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        content_range = f"bytes {start}-{len(AUDIO) - 1}/{len(AUDIO)}"
        return audio(AUDIO[start:], 206, {"Content-Range": content_range})

    rig = Rig(api)
    sink = BytesIO()
    done = rig.client.download(f"{MEDIA}/restapi/v1.0/account/1/recording/r1/content", sink)
    assert sink.getvalue() == AUDIO and done.sha256 == hashlib.sha256(AUDIO).hexdigest()
    assert (done.size, done.resumed, done.content_type) == (len(AUDIO), 1, "audio/mpeg")
    first, second = rig.api_requests()
    assert first.headers["Accept-Encoding"] == second.headers["Accept-Encoding"] == "identity"
    assert "Range" not in first.headers and second.headers["Range"] == f"bytes={cut}-"
    assert rig.progress >= 4  # two replies and at least two chunks


def test_client_refuses_to_send_the_token_to_a_foreign_content_host() -> None:
    rig = Rig(lambda request, token: audio())
    with pytest.raises(PermanentError, match="not a RingCentral host"):
        rig.client.download("https://evil.example/recording/r1/content", BytesIO())
    assert rig.api_requests() == []


def test_client_content_moves_to_the_group_its_replies_name() -> None:
    media = {"X-Rate-Limit-Group": "media", "X-Rate-Limit-Limit": "30", "X-Rate-Limit-Window": "60"}
    rig = Rig(lambda request, token: audio(headers=media), heavy_limit=1, cancel=True)
    uri = f"{MEDIA}/restapi/v1.0/account/1/recording/r1/content"
    rig.client.download(uri, BytesIO())  # the first goes out under heavy, which is now full
    rig.client.download(uri, BytesIO())  # the second goes under media: heavy would raise Cancelled
    pacers = rig.client.pacers
    assert set(pacers) == {"heavy", "auth", "media"}
    assert (pacers["media"].limit, pacers["media"].window) == (30, 60.0)
    with pytest.raises(Cancelled):
        pages(rig)  # the call log stays in heavy


def test_client_delete_recordings_sends_the_ids_in_one_heavy_call() -> None:
    rig = Rig(lambda request, token: Reply(204))
    rig.client.delete_recordings(["r1", "r2"])
    (sent,) = rig.api_requests()
    assert (sent.method, sent.url) == ("DELETE", f"{PLATFORM}/restapi/v1.0/account/~/call-recordings")
    assert sent.json() == {"records": ["r1", "r2"]}
    assert rig.heavy.limit == 100 and rig.client.pacers["heavy"] is rig.heavy
    with pytest.raises(ValueError, match="at most 100"):
        rig.client.delete_recordings([str(n) for n in range(101)])
    assert len(rig.api_requests()) == 1


def test_client_delete_recordings_403_names_both_permissions() -> None:
    rig = Rig(lambda request, token: error(403, "CMN-401", permissionName="EditCallLog"))
    with pytest.raises(AuthError, match=r"EditCallLog.*EditCompanyCallRecordings"):
        rig.client.delete_recordings(["r1"])


def test_client_persistent_token_401_stops_after_two_logins() -> None:
    rig = Rig(lambda request, token: error(401, "OAU-213"), attempts=6)
    with pytest.raises(AuthError, match="fresh tokens"):
        pages(rig)
    assert rig.server.logins == 2 and rig.server.revoked == ["tok-1"]
    assert len(rig.api_requests()) <= 3


CONTENT = f"{MEDIA}/restapi/v1.0/account/1/recording/r1/content"


def ranged(request: requests.PreparedRequest) -> int | None:
    wanted = request.headers.get("Range")
    return int(wanted.removeprefix("bytes=").rstrip("-")) if wanted else None


def rest_of(start: int, total: int = len(AUDIO)) -> Reply:
    """What a server holding `total` bytes of AUDIO answers to `Range: bytes=<start>-`."""
    if start >= total:
        return Reply(416, None, {"Content-Range": f"bytes */{total}"})
    content_range = f"bytes {start}-{total - 1}/{total}"
    return Reply(
        206, AUDIO[start:total], {"Content-Type": "audio/mpeg", "Content-Range": content_range}, framed=False
    )


@pytest.mark.parametrize(
    ("first", "asked"),
    [
        (3000, [None, "bytes=3000-"]),  # the rest's Content-Range names the total: that proves the end
        (len(AUDIO), [None, f"bytes={len(AUDIO)}-"]),  # whole, but only a 416 naming the total proves it
    ],
)
def test_client_download_proves_the_end_of_a_connection_delimited_body(
    first: int, asked: list[str | None]
) -> None:
    """No Content-Length, no chunks: a cut looks like the end, so the client asks for what follows."""

    def api(request: requests.PreparedRequest, token: str) -> Reply:
        start = ranged(request)
        if start is None:
            return Reply(200, AUDIO[:first], {"Content-Type": "audio/mpeg"}, framed=False)
        return rest_of(start)

    rig = Rig(api)
    sink = BytesIO()
    done = rig.client.download(CONTENT, sink)
    assert sink.getvalue() == AUDIO and done.size == len(AUDIO)
    assert [s.headers.get("Range") for s in rig.api_requests()] == asked


@pytest.mark.parametrize(
    ("probe", "error", "why"),
    [
        (Reply(200, AUDIO, {"Content-Type": "audio/mpeg"}, framed=False), PermanentError, "ignores Range"),
        (Reply(416, None, {}), PermanentError, "names no total"),
        (  # a 206 that never brings a byte: asked again and again, never taken as the end
            Reply(
                206, b"", {"Content-Type": "audio/mpeg", "Content-Range": "bytes 3000-3000/*"}, framed=False
            ),
            TransientError,
            "no bytes|unproven",
        ),
    ],
)
def test_client_download_never_takes_an_unproven_end_for_the_end(
    probe: Reply, error: type[Exception], why: str
) -> None:
    def api(request: requests.PreparedRequest, token: str) -> Reply:
        if ranged(request) is None:
            return Reply(200, AUDIO[:3000], {"Content-Type": "audio/mpeg"}, framed=False)
        return probe

    rig = Rig(api, attempts=2)
    with pytest.raises(error, match=why):
        rig.client.download(CONTENT, BytesIO())
    assert len(rig.api_requests()) <= 2 * 10  # bounded: at most a few asks per attempt


def test_client_download_resume_naming_another_size_starts_over() -> None:
    """The first reply announces the whole size; a resume whose Content-Range names another total is
    another body: the bytes so far are dropped and the download starts again, whole and right."""
    calls: list[int | None] = []

    def api(request: requests.PreparedRequest, token: str) -> Reply:
        start = ranged(request)
        calls.append(start)
        if start is None:
            cut = 6000 if len(calls) == 1 else None
            return Reply(200, AUDIO, {"Content-Type": "audio/mpeg"}, cut_after=cut)
        return rest_of(start, total=8000)  # consistent with itself, not with the first reply

    rig = Rig(api, attempts=4)
    sink = BytesIO()
    done = rig.client.download(CONTENT, sink)
    assert sink.getvalue() == AUDIO and done.sha256 == hashlib.sha256(AUDIO).hexdigest()
    assert calls == [None, 6000, None]


def test_client_download_resume_from_another_byte_is_refused_not_spliced() -> None:
    calls: list[int | None] = []

    def api(request: requests.PreparedRequest, token: str) -> Reply:
        start = ranged(request)
        calls.append(start)
        if start is None:
            return Reply(200, AUDIO, {"Content-Type": "audio/mpeg"}, cut_after=5000)
        if len(calls) == 2:  # answers from byte 0 although 5000 was asked
            return Reply(
                206,
                AUDIO,
                {"Content-Type": "audio/mpeg", "Content-Range": f"bytes 0-{len(AUDIO) - 1}/{len(AUDIO)}"},
            )
        return rest_of(start)

    rig = Rig(api, attempts=4)
    sink = BytesIO()
    rig.client.download(CONTENT, sink)
    assert sink.getvalue() == AUDIO and calls == [None, 5000, 5000]
