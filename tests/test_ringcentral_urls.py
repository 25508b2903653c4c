"""Where the token may go, and which nextPage links are followed: pure rules, one table each."""

from __future__ import annotations

import pytest

from archiver.ringcentral.urls import ringcentral_host, same_resource

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
    ],
)
def test_urls_same_resource(candidate: str, same: bool) -> None:
    assert same_resource(candidate, CALL_LOG) is same
