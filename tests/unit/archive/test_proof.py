"""The deletion proof's pure parts, table-driven: lock strength, audio first bytes, what a DELETE
reply confirms."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import requests

from archiver.archive.proof import LockRequirement, audio_head_ok
from archiver.destinations.base import StoredObject
from archiver.ringcentral.client import confirmed_deletions

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
WRITTEN = NOW - timedelta(hours=2)


def locked(mode: str | None, days: float | None, hold: bool = False) -> StoredObject:
    until = WRITTEN + timedelta(days=days) if days is not None else None
    return StoredObject("k.mp3", 10, retained_until=until, legal_hold=hold, lock_mode=mode, modified=WRITTEN)


@pytest.mark.parametrize(
    ("required", "stored", "why"),
    [
        (LockRequirement(), locked(None, None), ""),  # no lock configured: nothing to check
        (LockRequirement("GOVERNANCE", 1), locked("GOVERNANCE", 1), ""),
        (LockRequirement("GOVERNANCE", 1), locked("COMPLIANCE", 30), ""),  # stronger is fine
        (
            LockRequirement("COMPLIANCE", 3650),
            locked("GOVERNANCE", 3650),
            "weaker than the configured COMPLIANCE",
        ),
        (LockRequirement("COMPLIANCE", 3650), locked("COMPLIANCE", 1), "less than the configured 3650 days"),
        (LockRequirement("GOVERNANCE", 3650), locked("GOVERNANCE", 1), "less than the configured 3650 days"),
        (LockRequirement("GOVERNANCE", 1), locked(None, None), "no Object Lock retention"),
        (LockRequirement("GOVERNANCE", 1), locked("GOVERNANCE", 0.05), "retention ended"),
        (LockRequirement("COMPLIANCE", 3650), locked(None, None, hold=True), ""),  # a legal hold suffices
        (LockRequirement("", 0, legal_hold=True), locked("COMPLIANCE", 30), "no legal hold"),
        (LockRequirement("", 0, legal_hold=True), locked(None, None, hold=True), ""),
    ],
)
def test_proof_lock_strength_is_judged_by_mode_and_the_destination_dates(
    required: LockRequirement, stored: StoredObject, why: str
) -> None:
    found = required.shortfall(stored, NOW)
    assert (why in found) if why else found == ""


def test_proof_lock_tolerates_an_hour_of_clock_difference_and_no_more() -> None:
    required = LockRequirement("GOVERNANCE", 1)
    slightly_short = StoredObject(
        "k",
        1,
        retained_until=WRITTEN + timedelta(days=1, minutes=-30),
        lock_mode="GOVERNANCE",
        modified=WRITTEN,
    )
    assert required.shortfall(slightly_short, NOW) == ""
    too_short = StoredObject(
        "k", 1, retained_until=WRITTEN + timedelta(days=1, hours=-2), lock_mode="GOVERNANCE", modified=WRITTEN
    )
    assert "less than the configured 1 days" in required.shortfall(too_short, NOW)


@pytest.mark.parametrize(
    ("content_type", "head", "ok"),
    [
        ("audio/mpeg", b"ID3\x04\x00\x00\x00\x00\x00\x00", True),
        ("audio/mpeg", b"\xff\xfb\x90\x64", True),  # an MPEG frame header, no tag
        ("audio/mpeg", b"<!DOCTYPE html>", False),
        ("audio/mpeg", b"", False),
        ("audio/wav", b"RIFF\x24\x00\x00\x00WAVEfmt ", True),
        ("audio/x-wav; charset=binary", b"RIFF\x24\x00\x00\x00WAVE", True),
        ("audio/wav", b"RIFF\x24\x00\x00\x00AVI ", False),
        ("audio/ogg", b"OggS", True),  # no cheap check for other types
    ],
)
def test_proof_audio_first_bytes(content_type: str, head: bytes, ok: bool) -> None:
    assert audio_head_ok(content_type, head) is ok


def reply(status: int, body: object = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = b"" if body is None else json.dumps(body).encode()
    return response


def html_reply() -> requests.Response:
    response = reply(200)
    response._content = b"<html><body>Blocked by policy</body></html>"
    response.headers["Content-Type"] = "text/html"
    return response


IDS = ["r1", "r2", "r3"]


@pytest.mark.parametrize(
    ("answer", "confirmed"),
    [
        (reply(204), set(IDS)),
        (reply(200), set()),  # only a 204 speaks for the whole batch
        (reply(207), set()),  # multi-status without its list: nothing confirmed
        (html_reply(), set()),  # a proxy's page is nobody's word
        (reply(202), set()),
        (
            reply(
                207,
                {
                    "records": [
                        {"id": "r1", "status": 204},
                        {"id": "r2", "status": 500},
                        {"id": "rX", "status": 204},
                    ]
                },
            ),
            {"r1"},
        ),
        (reply(200, {"records": [{"id": "r3", "status": 200}, {"id": "r1", "status": "204"}]}), {"r3"}),
        (reply(200, {"unrelated": True}), set()),  # a 200 that says nothing per id confirms nothing
        (reply(200, {"errorCode": "CMN-400"}), set()),
    ],
)
def test_deletion_reply_confirms_only_what_ringcentral_says(
    answer: requests.Response, confirmed: set[str]
) -> None:
    assert confirmed_deletions(answer, IDS) == confirmed
