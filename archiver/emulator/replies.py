"""RingCentral's documented error replies, and the Retry-After forms a 429 can carry.

Codes and messages come from the developer guide's errors table (ringcentral-api-docs
docs/basics/errors.md) unless a comment says otherwise. The body shape is ApiErrorResponseModel:
`{"errors": [{"errorCode", "message", ...}]}`; a missing permission also carries `permissionName`
at the top level and in the error, with the top-level `errorCode` "InsufficientPermissions", exactly as
the guide's call-recording page shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

RETRY_AFTER_MODES = ("seconds", "absent", "http-date")
# The "varied" reading of a 429 (U21), in turn: X-Rate-Limit-Remaining above 0 (a 429 "without warning",
# grokify/ringcentral-sdk-ruby#68), no X-Rate-Limit-* header at all (another limit than the user's,
# docs/basics/rate-limits.md), and a text/html body from a gateway instead of RingCentral's JSON.
VARIED_429_FORMS = ("remaining", "headerless", "html")
TOO_MANY_HTML = (
    b"<html><head><title>429 Too Many Requests</title></head><body>Too Many Requests</body></html>"
)
# The body of the "html" fault: a 200 that is a sign-in page (a proxy or captive portal), not audio.
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Please sign in.</p></body></html>"
)


@dataclass(frozen=True)
class ErrorReply:
    """One canned API error: status, RingCentral errorCode, message, and the permission it names."""

    status: int
    code: str
    message: str
    permission: str | None = None

    def payload(self) -> dict[str, Any]:
        error: dict[str, Any] = {"errorCode": self.code, "message": self.message}
        if self.permission is None:
            return {"errors": [error]}
        error["permissionName"] = self.permission
        return {
            "errorCode": "InsufficientPermissions",
            "message": self.message,
            "errors": [error],
            "permissionName": self.permission,
        }


def app_permission(name: str) -> ErrorReply:
    """403 CMN-401: the app lacks an app permission (its token's scope does not have it)."""
    return ErrorReply(
        403,
        "CMN-401",
        f"In order to call this API endpoint, application needs to have [{name}] permission",
        name,
    )


def user_permission(name: str) -> ErrorReply:
    """403 CMN-408: the JWT's user lacks a user permission, e.g. FullCompanyCallLog."""
    return ErrorReply(
        403,
        "CMN-408",
        f"In order to call this API endpoint, user needs to have [{name}] permission for requested resource.",
        name,
    )


# Test knobs: answer every content (or call-log) request with one of these instead of its body.
API_ERRORS: dict[str, ErrorReply] = {
    # 401s that are not token problems: logging in again cannot fix them.
    "login-required": ErrorReply(401, "CMN-405", "Login to extension required"),
    "auth-method": ErrorReply(401, "OAU-151", "Authorization method not supported"),
    "no-read-call-recording": app_permission("ReadCallRecording"),
    "no-read-call-log": app_permission("ReadCallLog"),
    "no-edit-call-log": app_permission("EditCallLog"),
    "no-full-company-call-log": user_permission("FullCompanyCallLog"),
    "no-edit-company-call-recordings": user_permission("EditCompanyCallRecordings"),
}

# The token endpoint's knob. OAU-251 is not in the guide's table; status, error and message are as
# RingCentral answers an app not enabled for the JWT grant (400 unauthorized_client, seen in the wild).
TOKEN_ERRORS: dict[str, tuple[int, str, str, str]] = {
    "unauthorized-grant": (400, "unauthorized_client", "Unauthorized for this grant type", "OAU-251"),
}

# Server errors as the errors table lists them (not CMN-500/CMN-503, which it does not have).
INTERNAL_ERROR = ErrorReply(500, "CMN-203", "Internal Server Error")
# The table gives CMN-201 with 500; the "503" fault keeps its status and carries the same code.
UNAVAILABLE = ErrorReply(503, "CMN-201", "Service Temporary Unavailable")
RATE_EXCEEDED = ErrorReply(429, "CMN-301", "Request rate exceeded")
RANGE_NOT_SATISFIABLE = ErrorReply(416, "CMN-107", "Requested Range Not Satisfiable")
BAD_JSON = ErrorReply(400, "CMN-103", "JSON can't be parsed.")


def retry_after_headers(mode: str, seconds: float, now: float) -> dict[str, str]:
    """The Retry-After header of a 429 in the configured form ("absent": none at all)."""
    if mode == "absent":
        return {}
    wait = max(0, math.ceil(seconds))
    if mode == "http-date":
        # An HTTP date has whole seconds: round up so a client that honours it is never early.
        return {"Retry-After": formatdate(math.ceil(now) + wait, usegmt=True)}
    return {"Retry-After": str(wait)}
