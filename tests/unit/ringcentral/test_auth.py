"""The authenticator against a scripted token endpoint (archiver.ringcentral.fake): login errors and
their hints, the environment's CA bundle, revocation of replaced tokens, bounded renewals."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from structlog.testing import capture_logs

from archiver.errors import AuthError, RateLimited
from archiver.ringcentral.auth import Authenticator
from archiver.ringcentral.fake import Reply, ScriptedTransport
from archiver.ringcentral.pacer import RatePacer

PLATFORM = "https://platform.ringcentral.com"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def granted(n: int, expires_in: int = 3600) -> Reply:
    return Reply(
        200, {"access_token": f"tok-{n}", "token_type": "bearer", "expires_in": expires_in, "scope": "A B"}
    )


class TokenEndpoint:
    """Grants tok-1, tok-2, ... unless `refuse` says otherwise; records revocations."""

    def __init__(self, refuse: Callable[[int], Reply | None] = lambda n: None) -> None:
        self.refuse = refuse
        self.logins = 0
        self.revoked: list[str] = []

    def __call__(self, request: requests.PreparedRequest) -> Reply:
        form = parse_qs(str(request.body))
        if urlsplit(str(request.url)).path == "/restapi/oauth/revoke":
            self.revoked.append(form["token"][0])
            return Reply(200)
        self.logins += 1
        return self.refuse(self.logins) or granted(self.logins)


Built = tuple[Authenticator, "TokenEndpoint", ScriptedTransport, "Clock"]
Rig = Callable[..., Built]


@pytest.fixture
def rig() -> Iterator[Rig]:
    def build(endpoint: TokenEndpoint | None = None, attempts: int = 5) -> Built:
        endpoint = endpoint or TokenEndpoint()
        transport = ScriptedTransport(endpoint)
        session = requests.Session()
        session.mount("https://", transport)
        clock = Clock()
        pacer = RatePacer("auth", 5, 60.0, clock)
        auth = Authenticator(PLATFORM, "id", "secret", "jwt", session, (5, 5), pacer, clock, attempts)
        return auth, endpoint, transport, clock

    yield build


def oauth(status: int, error: str, code: str) -> Reply:
    return Reply(
        status, {"error": error, "error_description": "d", "errors": [{"errorCode": code, "message": "m"}]}
    )


@pytest.mark.parametrize(
    ("reply", "in_message", "in_hint", "not_in_hint"),
    [
        (oauth(400, "invalid_grant", "OAU-140"), "invalid_grant", "RC_JWT", "RC_CLIENT_SECRET"),
        (oauth(401, "invalid_client", "OAU-146"), "OAU-146", "RC_CLIENT_SECRET", "RC_JWT"),
        (oauth(400, "unauthorized_client", "OAU-251"), "OAU-251", "Developer Console", "check RC_JWT"),
        (oauth(400, "unsupported_grant_type", "OAU-250"), "OAU-250", "JWT auth flow", "check RC_JWT"),
    ],
)
def test_auth_login_refusal_names_the_code_and_the_right_fix(
    rig: Rig,
    reply: Reply,
    in_message: str,
    in_hint: str,
    not_in_hint: str,
) -> None:
    auth, endpoint, _, _ = rig(TokenEndpoint(lambda n: reply))
    with pytest.raises(AuthError, match=in_message) as caught:
        auth.token()
    assert in_hint in caught.value.hint and not_in_hint not in caught.value.hint
    assert endpoint.logins == 1  # refusals are never retried
    assert "secret" not in str(caught.value) and "jwt" not in str(caught.value)


def test_auth_429_reads_retry_after_in_any_spelling(
    rig: Rig,
) -> None:
    endpoint = TokenEndpoint(
        lambda n: Reply(429, {"errors": [{"errorCode": "CMN-301"}]}, {"retry-after": "17"})
    )
    auth, _, _, _ = rig(endpoint, attempts=1)
    with capture_logs() as logs, pytest.raises(RateLimited) as caught:
        auth.token()
    assert caught.value.retry_after == 17.0
    (event,) = [e for e in logs if e["event"] == "rate_limited"]
    assert event["group"] == "auth" and event["retry_after"] == 17.0
    assert auth.pacer.penalties == 1


def test_auth_honours_the_environment_ca_bundle(
    rig: Rig,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    auth, _, transport, _ = rig()
    auth.token()
    auth.revoke()
    assert [s.verify for s in transport.sent] == ["/etc/corp/ca.pem", "/etc/corp/ca.pem"]


def test_auth_renewal_near_expiry_revokes_the_replaced_token(
    rig: Rig,
) -> None:
    auth, endpoint, _, clock = rig()
    assert auth.token() == "tok-1" and auth.scope == "A B"
    clock.now += 3600 - 119  # inside the renewal margin
    assert auth.token() == "tok-2"
    assert endpoint.revoked == ["tok-1"]
    auth.revoke()
    assert endpoint.revoked == ["tok-1", "tok-2"]


def test_auth_renew_of_a_replaced_token_returns_the_new_one_without_a_login(
    rig: Rig,
) -> None:
    auth, endpoint, _, _ = rig()
    stale = auth.token()
    assert auth.renew(stale) == "tok-2"
    assert auth.renew(stale) == "tok-2"  # a second thread with the same stale token
    assert endpoint.logins == 2 and endpoint.revoked == ["tok-1"]


def test_auth_renewals_are_bounded_by_token_lifetimes_not_failures(
    rig: Rig,
) -> None:
    auth, endpoint, _, clock = rig()
    auth.renew(auth.token())  # one early renewal is fine (a session cap dropped ours)
    with pytest.raises(AuthError, match="fresh tokens"):
        auth.renew(auth.token())  # a second within the same lifetime is not
    assert endpoint.logins == 2
    clock.now += 3600
    auth.renew(auth.token())  # a lifetime later, renewing early is allowed again
