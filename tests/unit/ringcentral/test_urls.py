"""Where the token may go, and which nextPage links are followed: pure rules, one table each."""

from __future__ import annotations

import pytest

from archiver.ringcentral.urls import ringcentral_host, same_query, same_resource

PLATFORM = "https://platform.ringcentral.com"
CALL_LOG = f"{PLATFORM}/restapi/v1.0/account/~/call-log?page=1"


@pytest.mark.parametrize(
    ("url", "platform", "allowed"),
    [
        ("https://media.ringcentral.com/restapi/v1.0/account/1/recording/r/content", PLATFORM, True),
        ("https://media.ringcentral.com:443/restapi/v1.0/account/1/recording/r/content", PLATFORM, True),
        ("https://platform.ringcentral.com/restapi/v1.0/account/~/call-log", PLATFORM, True),
        ("http://media.ringcentral.com/x", PLATFORM, False),  # never in clear text
        ("https://evil.example/x", PLATFORM, False),
        ("https://ringcentral.com.evil.example/x", PLATFORM, False),
        ("https://media.devtest.example.net/x", "https://platform.devtest.example.net", True),  # beside it
        ("http://127.0.0.1:9001/x", "http://127.0.0.1:9000", True),  # the emulator's two listeners
        ("http://127.0.0.2:9001/x", "http://127.0.0.1:9000", False),
    ],
)
def test_urls_ringcentral_host(url: str, platform: str, allowed: bool) -> None:
    assert ringcentral_host(url, platform) is allowed


@pytest.mark.parametrize(
    ("candidate", "same"),
    [
        (f"{PLATFORM}/restapi/v1.0/account/~/call-log?page=2", True),
        ("https://platform.ringcentral.com:443/restapi/v1.0/account/~/call-log?page=2", True),
        (f"{PLATFORM}/account/~/call-log?page=2", False),  # no /restapi/v1.0
        ("http://platform.ringcentral.com/restapi/v1.0/account/~/call-log?page=2", False),
        ("https://media.ringcentral.com/restapi/v1.0/account/~/call-log?page=2", False),
        ("/restapi/v1.0/account/~/call-log?page=2", False),  # relative
        # Real links name the numeric account id where we asked for `~`, with parameters we never sent.
        (
            f"{PLATFORM}/restapi/v1.0/account/123456/call-log?showBlocked=true&withRecording=false&page=2",
            True,
        ),
        (f"{PLATFORM}/account/123456/call-log?page=2", False),  # the id does not excuse a missing prefix
        (f"{PLATFORM}/restapi/v1.0/account/123456/extension/789/call-log?page=2", False),  # another resource
        (f"{PLATFORM}/restapi/v1.0/account/12ab/call-log?page=2", False),  # not an account id
        (f"{PLATFORM}/restapi/v1.0/account/~/call-log/123456?page=2", False),
        ("https://media.ringcentral.com/restapi/v1.0/account/123456/call-log?page=2", False),
    ],
)
def test_urls_same_resource(candidate: str, same: bool) -> None:
    assert same_resource(candidate, CALL_LOG) is same


def test_urls_same_resource_treats_account_tilde_and_id_alike_both_ways() -> None:
    by_id = f"{PLATFORM}/restapi/v1.0/account/123456/call-log?page=1"
    assert same_resource(CALL_LOG, by_id) and same_resource(by_id, CALL_LOG)
    assert same_resource(f"{PLATFORM}/restapi/v1.0/account/654321/call-log", by_id)


ASKED = [
    ("dateFrom", "2026-12-01T00:00:00Z"),
    ("dateTo", "2026-12-02T00:00:00Z"),
    ("view", "Detailed"),
    ("perPage", "1000"),
]
LINK = f"{PLATFORM}/restapi/v1.0/account/123456/call-log?"
# what ASKED says, as a query
Q = "dateFrom=2026-12-01T00:00:00Z&dateTo=2026-12-02T00:00:00Z&view=Detailed&perPage=1000"


@pytest.mark.parametrize(
    ("query", "same"),
    [
        (Q + "&page=2", True),
        # a page skipped, repeated, missing or not a number: pages in between would go unread
        (
            Q + "&page=3",
            False,
        ),
        (
            Q + "&page=1",
            False,
        ),
        (Q, False),
        (
            Q + "&page=abc",
            False,
        ),
        # RingCentral re-renders the times and adds defaults nobody asked for (U22): the same query
        (
            "view=Detailed&showBlocked=true&withRecording=false&dateFrom=2026-12-01T00:00:00.000Z"
            "&dateTo=2026-12-02T00:00:00.000Z&page=2&perPage=1000",
            True,
        ),
        # narrowed: a filter, another day, a smaller view, a dropped bound, a doubled parameter
        (
            Q + "&withRecording=true",
            False,
        ),
        (
            Q + "&recordingType=Automatic",
            False,
        ),
        ("dateFrom=2026-12-01T00:00:01Z&dateTo=2026-12-02T00:00:00Z&view=Detailed&perPage=1000", False),
        ("dateFrom=2026-12-01T00:00:00Z&dateTo=2026-12-02T00:00:00Z&view=Simple&perPage=1000", False),
        ("dateFrom=2026-12-01T00:00:00Z&view=Detailed&perPage=1000&page=2", False),
        (
            "dateFrom=2026-12-01T00:00:00Z&dateTo=2026-12-02T00:00:00Z&view=Detailed&view=Simple&perPage=1000",
            False,
        ),
        ("dateFrom=yesterday&dateTo=2026-12-02T00:00:00Z&view=Detailed&perPage=1000", False),
    ],
)
def test_urls_same_query_accepts_only_links_that_do_not_narrow_the_scan(query: str, same: bool) -> None:
    assert same_query(LINK + query, ASKED, page=2) is same
