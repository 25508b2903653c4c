"""The emulator's replies, under both readings, checked against RingCentral's own OpenAPI spec.

Every reply the archiver can meet on the six operations it uses (token, revoke, the company call log,
recording metadata, recording content, deleting recordings) is provoked over HTTP, under the default
and the `--pessimistic` reading, and checked against the part of RingCentral's public spec that
tests/data/rc-archiver-subset.openapi.json holds (a copy of ../shared/ringcentral/, plus the delete
operation, kept in the repository so a fresh clone runs this): a JSON body against the schema the spec
declares for that operation and status, a binary body against the media types it declares.

Where the spec declares no schema for a status it answers (no entry at all, or a description without
content), that is a gap of the spec, not of the emulator: SPEC_GAPS lists each one, and the test fails
both on a gap not listed and on a listed gap no reply showed, so the list stays exact. A JSON error body
on a gap still has to be RingCentral's error model (ApiErrorResponseModel).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
import requests

from archiver.emulator import DataOptions, Emulator, FaultOptions
from tests.helpers import JWT_GRANT, SUBSET_SPEC

SPEC = SUBSET_SPEC
ALL_TIME = {"dateFrom": "2000-01-01T00:00:00Z"}
SCOPE = "ReadCallLog ReadCallRecording EditCallLog"
DATA = DataOptions(seed=17, calls=40, days=2, bytes_per_second=20, leg_only_fraction=0.1)
# (method, path template) of each operation, and the pattern a request path matches.
OPERATIONS = {
    "getToken": ("post", "/restapi/oauth/token", r"/restapi/oauth/token"),
    "revokeToken": ("post", "/restapi/oauth/revoke", r"/restapi/oauth/revoke"),
    "readCompanyCallLog": (
        "get",
        "/restapi/v1.0/account/{accountId}/call-log",
        r"/restapi/v1\.0/account/[^/]+/call-log",
    ),
    "readCallRecording": (
        "get",
        "/restapi/v1.0/account/{accountId}/recording/{recordingId}",
        r"/restapi/v1\.0/account/[^/]+/recording/[^/]+",
    ),
    "readCallRecordingContent": (
        "get",
        "/restapi/v1.0/account/{accountId}/recording/{recordingId}/content",
        r"/restapi/v1\.0/account/[^/]+/recording/[^/]+/content",
    ),
    "deleteCompanyCallRecordings": (
        "delete",
        "/restapi/v1.0/account/{accountId}/call-recordings",
        r"/restapi/v1\.0/account/[^/]+/call-recordings",
    ),
}
# The statuses the emulator answers for which the spec declares no schema, with why RingCentral answers
# them (docs/ringcentral-api.md names the source of each).
SPEC_GAPS: dict[tuple[str, int], str] = {
    ("getToken", 401): "bad client credentials (OAU-146) or a bad JWT (OAU-140): the guide's errors table",
    ("getToken", 415): "declared without a body schema: a form body is required",
    ("getToken", 429): "declared without a body schema: the Auth group's limit",
    ("getToken", 500): "an injected server error: the guide's errors table",
    ("revokeToken", 401): "bad client credentials (OAU-146)",
    ("revokeToken", 429): "the Auth group's limit (revoke is Auth, x-throttling-group)",
    ("readCompanyCallLog", 401): "an unknown, expired or ended token (OAU-128/213, U2's CMN-405)",
    ("readCompanyCallLog", 429): "the Heavy group's limit (x-throttling-group: Heavy)",
    ("readCallRecording", 401): "an unknown, expired or ended token",
    ("readCallRecording", 429): "the Heavy group's limit",
    ("readCallRecordingContent", 206): "a Range request (the guide's media page: partial content)",
    ("readCallRecordingContent", 401): "an unknown, expired or ended token",
    ("readCallRecordingContent", 403): "the app lacks ReadCallRecording (CMN-401)",
    ("readCallRecordingContent", 404): "not ready or deleted (CMN-102, U9)",
    ("readCallRecordingContent", 416): "a range past the end (CMN-107, the guide's errors table)",
    ("readCallRecordingContent", 429): "the Heavy (or media) group's limit",
    ("readCallRecordingContent", 500): "a server error",
    ("readCallRecordingContent", 503): "a server error",
    ("deleteCompanyCallRecordings", 401): "an unknown, expired or ended token",
    ("deleteCompanyCallRecordings", 429): "the Heavy group's limit",
}
# Statuses only one reading answers: reading B of U20 (406 for a JSON-only Accept on content).
PESSIMISTIC_GAPS: dict[tuple[str, int], str] = {
    ("readCallRecordingContent", 406): "a JSON-only Accept on content (U20 reading B, ringcentral-python#51)",
}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _validate(schema: dict[str, Any], instance: Any) -> None:
    jsonschema.Draft4Validator(
        {**schema, "components": SPEC["components"]}, format_checker=jsonschema.FormatChecker()
    ).validate(instance)


@dataclass
class Checked:
    """What the replies showed: (operation, status) pairs validated against a schema, and the gaps."""

    validated: set[tuple[str, int]] = field(default_factory=set)
    gaps: set[tuple[str, int]] = field(default_factory=set)
    replies: int = 0

    def check(self, reply: requests.Response) -> None:
        method = reply.request.method.lower() if reply.request.method else ""
        path = requests.utils.urlparse(reply.url).path
        operation = next(
            op for op, (m, _, pattern) in OPERATIONS.items() if m == method and re.fullmatch(pattern, path)
        )
        m, template, _ = OPERATIONS[operation]
        declared = SPEC["paths"][template][m]["responses"]
        status = reply.status_code
        response = _resolve(declared[str(status)]) if str(status) in declared else None
        content = (response or {}).get("content", {})
        media_type = (reply.headers.get("Content-Type") or "").split(";")[0].strip()
        self.replies += 1
        if response is not None and not content and status < 400:  # a success declared without a body
            assert reply.content == b"", f"{operation} {status} has a body the spec does not declare"
            self.validated.add((operation, status))
            return
        if not content:  # not declared, or an error declared with a description only
            self.gaps.add((operation, status))
            self._error_body(reply, media_type)
            return
        assert media_type in content, f"{operation} {status}: {media_type} is not one of {sorted(content)}"
        schema = content[media_type].get("schema", {})
        if media_type == "application/json":
            _validate(schema, reply.json())
        else:
            assert schema.get("format") == "binary" and reply.content
        self.validated.add((operation, status))

    @staticmethod
    def _error_body(reply: requests.Response, media_type: str) -> None:
        if not reply.content:
            return
        if reply.status_code < 300:  # a partial body of a recording
            assert media_type.startswith("audio/"), (reply.status_code, media_type)
        elif media_type == "application/json":
            _validate({"$ref": "#/components/schemas/ApiErrorResponseModel"}, reply.json())
        else:  # only the HTML 429 of U21 reading B is not RingCentral's JSON
            assert reply.status_code == 429 and media_type == "text/html", (reply.status_code, media_type)


def _basic(emu: Emulator, secret: str | None = None) -> dict[str, str]:
    pair = f"{emu.config.client_id}:{secret or emu.config.client_secret}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def _replies(emu: Emulator, refused: Emulator) -> Iterator[requests.Response]:
    """Every kind of reply to the six operations: successes, each documented error, 429s and faults."""
    token_url, revoke_url = f"{emu.url}/restapi/oauth/token", f"{emu.url}/restapi/oauth/revoke"
    jwt = {"grant_type": JWT_GRANT, "assertion": emu.config.jwt}
    post = requests.post
    login = post(token_url, data=jwt, headers=_basic(emu), timeout=10)
    yield login
    tok = login.json()["access_token"]
    bearer = {"Authorization": f"Bearer {tok}"}
    yield post(token_url, data={**jwt, "assertion": "bad"}, headers=_basic(emu), timeout=10)
    yield post(token_url, data=jwt, headers=_basic(emu, "wrong"), timeout=10)
    yield post(token_url, data={"grant_type": "password"}, headers=_basic(emu), timeout=10)
    yield post(token_url, json=jwt, headers=_basic(emu), timeout=10)  # not a form: 415
    call_log = f"{emu.url}/restapi/v1.0/account/~/call-log"
    by_id = f"{emu.url}/restapi/v1.0/account/400131227008/call-log"
    get = requests.get
    for params in (
        ALL_TIME,
        {**ALL_TIME, "view": "Detailed", "perPage": "5"},
        {**ALL_TIME, "view": "Detailed", "perPage": "5", "page": "2"},
        {**ALL_TIME, "recordingType": "All", "perPage": "max"},
        {**ALL_TIME, "page": "1001"},  # U24: refused, or the last page again
        {"dateFrom": "yesterday"},
        {**ALL_TIME, "perPage": "0"},
    ):
        yield get(call_log, params=params, headers=bearer, timeout=10)
    yield get(by_id, params=ALL_TIME, headers=bearer, timeout=10)
    yield get(call_log, params=ALL_TIME, headers={"Authorization": "Bearer unknown"}, timeout=10)
    ready = [entry["recordingId"] for entry in emu.ground_truth()]  # served (a call still going is not)
    rec = emu.state.data.recordings[ready[0]]
    metadata = f"{emu.url}/restapi/v1.0/account/~/recording/{rec.id}"
    content = f"{emu.media_url}/restapi/v1.0/account/~/recording/{rec.id}/content"
    yield get(metadata, headers=bearer, timeout=10)
    yield get(f"{emu.url}/restapi/v1.0/account/~/recording/0", headers=bearer, timeout=10)
    yield get(metadata, headers={"Authorization": "Bearer unknown"}, timeout=10)
    yield get(content, headers=bearer, timeout=10)
    yield get(content, headers={**bearer, "Range": "bytes=0-9"}, timeout=10)
    yield get(content, headers={**bearer, "Range": f"bytes={rec.size}-"}, timeout=10)
    yield get(content, headers={**bearer, "Accept": "application/json"}, timeout=10)  # U20
    yield get(content.replace(rec.id, "0"), headers=bearer, timeout=10)
    yield get(content, headers={"Authorization": "Bearer unknown"}, timeout=10)
    delete = f"{emu.url}/restapi/v1.0/account/~/call-recordings"
    other = ready[-1]
    yield requests.delete(delete, json={"records": [other]}, headers=bearer, timeout=10)
    yield requests.delete(delete, json={"records": []}, headers=bearer, timeout=10)
    yield requests.delete(delete, json={"records": [other, "0"]}, headers=bearer, timeout=10)  # U10
    yield requests.delete(
        delete, json={"records": [other]}, headers={"Authorization": "Bearer x"}, timeout=10
    )
    # Faults on every operation: the 429s (each form of U21 in turn under reading B) and server errors.
    for kind in ("429", "429", "429", "500", "503"):
        emu.set_faults(FaultOptions(rates={kind: 1.0}))
        yield get(call_log, params=ALL_TIME, headers=bearer, timeout=10)
        yield get(metadata, headers=bearer, timeout=10)
        yield get(content, headers=bearer, timeout=10)
        yield requests.delete(delete, json={"records": [other]}, headers=bearer, timeout=10)
        if kind != "503":
            yield post(token_url, data=jwt, headers=_basic(emu), timeout=10)
        if kind == "429":
            yield post(revoke_url, data={"token": "x"}, headers=_basic(emu), timeout=10)
    emu.set_faults(FaultOptions())
    # Permissions: an app without ReadCallRecording, a user without FullCompanyCallLog and
    # EditCompanyCallRecordings.
    their = post(
        f"{refused.url}/restapi/oauth/token",
        data={**jwt, "assertion": refused.config.jwt},
        headers=_basic(refused),
        timeout=10,
    ).json()["access_token"]
    theirs = {"Authorization": f"Bearer {their}"}
    yield get(f"{refused.url}/restapi/v1.0/account/~/call-log", params=ALL_TIME, headers=theirs, timeout=10)
    yield get(content.replace(emu.media_url, refused.media_url), headers=theirs, timeout=10)
    yield requests.delete(
        delete.replace(emu.url, refused.url), json={"records": [other]}, headers=theirs, timeout=10
    )
    yield post(revoke_url, data={"token": tok}, headers=_basic(emu, "wrong"), timeout=10)
    yield post(revoke_url, params={"token": tok}, headers=_basic(emu), timeout=10)  # by query string


@pytest.mark.parametrize("pessimistic", [False, True], ids=["default", "pessimistic"])
def test_conformance_emulator_replies_validate_against_the_spec(
    emulator_factory: Callable[..., Emulator], pessimistic: bool
) -> None:
    emu = emulator_factory(data=DATA, pessimistic=pessimistic, scope=SCOPE, fault_auth=True)
    refused = emulator_factory(
        data=DATA, pessimistic=pessimistic, scope="ReadCallLog EditCallLog", user_permissions=""
    )
    checked = Checked()
    for reply in _replies(emu, refused):
        checked.check(reply)
    expected = set(SPEC_GAPS) | (set(PESSIMISTIC_GAPS) if pessimistic else set())
    assert checked.gaps - expected == set(), "a status the spec declares no schema for: list it in SPEC_GAPS"
    assert expected - checked.gaps == set(), "a listed gap no reply showed: the list must stay exact"
    # The statuses the spec does declare a schema (or no body) for, each met and valid.
    assert checked.validated >= {
        ("getToken", 200),
        ("getToken", 400),
        ("revokeToken", 200),
        ("readCompanyCallLog", 200),
        ("readCompanyCallLog", 400),
        ("readCompanyCallLog", 403),
        ("readCompanyCallLog", 500),
        ("readCompanyCallLog", 503),
        ("readCallRecording", 200),
        ("readCallRecording", 404),
        ("readCallRecording", 500),
        ("readCallRecordingContent", 200),
        ("deleteCompanyCallRecordings", 204),
        ("deleteCompanyCallRecordings", 400),
        ("deleteCompanyCallRecordings", 403),
    }
    if pessimistic:
        assert ("deleteCompanyCallRecordings", 404) in checked.validated  # U10 reading B
