"""Routes and gates: the plumbing every route shares (replies, errors, faults), and the gates a request
passes before its route answers: the token (`_authorize`), its rate group (`_rate_check`, the 429 trap),
injected faults, the app and user permissions (`_api_gate`). The routes are mixins of HandlerBase, one
module per job: oauth.py, calllog.py, media.py, deleting.py; server.py dispatches to them.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from archiver.emulator.data import ACCOUNT_ID, Recording, parse_iso
from archiver.emulator.ratelimit import Decision
from archiver.emulator.replies import (
    API_ERRORS,
    HTML_PAGE,
    INTERNAL_ERROR,
    RATE_EXCEEDED,
    TOO_MANY_HTML,
    UNAVAILABLE,
    ErrorReply,
    app_permission,
    retry_after_headers,
    user_permission,
)
from archiver.emulator.state import OWNER_ID, EmulatorState, TokenRecord

JSON = "application/json; charset=UTF-8"
CALL_LOG_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/call-log$")
RECORDING_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/recording/([^/]+)$")
CONTENT_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/recording/([^/]+)/content$")
DELETE_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/call-recordings$")
# The user permission (the JWT user's role) each route needs beside its app permission (the spec's
# x-user-permission): a user without it gets 403 CMN-408 naming it.
USER_PERMISSIONS = {"call-log": "FullCompanyCallLog", "delete-recordings": "EditCompanyCallRecordings"}


class _Reset(Exception):
    """Raised to drop the connection with a TCP reset instead of answering."""


class HandlerBase(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; do not delay them
    server_version = "RingCentralEmulator/1"
    state: EmulatorState
    media: bool
    # Set per request by a DELETE under delete_fault "lost"; handle_one_request clears it.
    _lose_reply = False

    # The standard handler prints every request to stderr; tests and the demo want quiet.
    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _rate_headers(self, decision: Decision | None) -> dict[str, str]:
        if decision is None or not self.state.config.rate_limits:
            return {}  # limits off: nothing to announce
        if self.media and not self.state.config.media_rate_headers:
            return {}
        return {
            "X-Rate-Limit-Group": decision.group,
            "X-Rate-Limit-Limit": str(decision.limit),
            "X-Rate-Limit-Remaining": str(max(0, decision.remaining)),
            "X-Rate-Limit-Window": str(int(decision.window)),
        }

    def _send(
        self,
        route: str,
        status: int,
        payload: Any = None,
        headers: dict[str, str] | None = None,
        fault: str | None = None,
    ) -> None:
        if self._lose_reply:
            # delete_fault "lost": the request was carried out, its reply never leaves.
            self.state.stats.count_outcome(route, "lost")
            self._reset_connection()
        body = b"" if payload is None else json.dumps(payload).encode()
        self.state.stats.count(route, status)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", JSON)
        if status != 204:  # a 204 carries no Content-Length (RFC 9110 8.6)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if fault == "truncate" and body:
            cut = self.state.faults.truncate_point(len(body))
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)

    def _error(
        self,
        route: str,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        **error_fields: str,
    ) -> None:
        error: dict[str, Any] = {"errorCode": code, "message": message, **error_fields}
        payload: dict[str, Any] = {**(extra or {}), "errors": [error]}
        self._send(route, status, payload, headers)

    def _reply(self, route: str, reply: ErrorReply, headers: dict[str, str] | None = None) -> None:
        self._send(route, reply.status, reply.payload(), headers)

    def _retry_after(self, seconds: float) -> dict[str, str]:
        return retry_after_headers(self.state.readings.retry_after_mode, seconds, self.state.config.clock())

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees "connection reset".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Reset

    def handle_one_request(self) -> None:
        self._lose_reply = False  # one handler serves every request of a keep-alive connection
        try:
            super().handle_one_request()
        except _Reset:
            self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _draw_fault(self, route: str, eligible: bool) -> str | None:
        routes = self.state.faults.options.routes
        if not eligible or (routes and route not in routes):
            return None
        fault = self.state.faults.draw()
        if fault is None:
            return None
        self.state.stats.count_fault(fault)
        if fault == "slow":
            time.sleep(self.state.faults.options.slow_seconds)
            return None
        if fault == "reset":
            self.state.stats.count(route, 0)
            self._reset_connection()
        return fault

    def _apply_status_fault(self, route: str, fault: str | None, rate: dict[str, str]) -> bool:
        """Answer an injected 429/500/503 or bad 200; True when the request has been answered."""
        if fault == "429":
            # A 429 out of the blue (another limit than the user's): it starts no penalty.
            self._too_many(route, rate, self.state.faults.options.retry_after)
            return True
        if fault == "500":
            self._reply(route, INTERNAL_ERROR, rate)
            return True
        if fault == "503":
            self._reply(route, UNAVAILABLE, {**rate, "Retry-After": "1"})
            return True
        if fault == "empty":
            self._raw(route, 200, b"", {**rate, "Content-Type": "audio/mpeg"})
            return True
        if fault == "html":
            self._raw(route, 200, HTML_PAGE, {**rate, "Content-Type": "text/html; charset=UTF-8"})
            return True
        return False

    def _raw(self, route: str, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.state.stats.count(route, status)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _bearer(self) -> str:
        """The request's access token: the Authorization header's, or on the media host the
        `access_token` query parameter (Guide docs/basics/media.md documents it there)."""
        scheme, _, token = self.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        if self.media:
            return parse_qs(urlsplit(self.path).query).get("access_token", [""])[0]
        return ""

    def _authorize(self, route: str, group: str) -> TokenRecord | None:
        """The token owner for an API call, or None after answering 401 (with the rate headers of
        `group`, as every RingCentral reply has them)."""
        token = self._bearer()
        with self.state.tokens_lock:
            record = self.state.tokens.get(token) if token else None
            ended = token in self.state.ended
        rate = self._rate_headers(self.state.limiter.peek(record.owner if record else OWNER_ID, group))
        if not token:
            self._error(route, 401, "OAU-123", "Authorization header is not specified", rate)
        elif record is None and ended and self.state.readings.ended_session == "other-code":
            # U2 reading B: an ended token answered with a code that does not say "token".
            self._reply(route, API_ERRORS["login-required"], rate)
        elif record is None:
            self._error(route, 401, "OAU-213", "Token not found", rate)
        elif self.state.config.clock() >= record.expires_at:
            self._error(route, 401, "OAU-128", "Access token expired", rate)
        else:
            return record
        return None

    def _rate_check(self, route: str, owner: str, group: str) -> Decision | None:
        decision = self.state.limiter.check(owner, group)
        if decision.allowed:
            return decision
        # With Retry-After absent the penalty still runs: the trap is the same, only unannounced.
        self._too_many(route, self._rate_headers(decision), decision.retry_after)
        return None

    def _too_many(self, route: str, rate: dict[str, str], retry_after: float) -> None:
        """A 429 in the form the U21 reading gives it (RATE_EXCEEDED with its rate headers, or in turn
        one saying Remaining > 0, one without rate headers, one with an HTML body)."""
        headers = {**rate, **self._retry_after(retry_after)}
        form = self.state.too_many_form()
        if form == "remaining" and "X-Rate-Limit-Limit" in headers:
            headers["X-Rate-Limit-Remaining"] = str(max(1, int(headers["X-Rate-Limit-Limit"]) // 2))
        elif form == "headerless":
            headers = {k: v for k, v in headers.items() if not k.startswith("X-Rate-Limit-")}
        elif form == "html":
            self._raw(route, 429, TOO_MANY_HTML, {**headers, "Content-Type": "text/html; charset=UTF-8"})
            return
        self._reply(route, RATE_EXCEEDED, headers)

    def _api_gate(
        self, route: str, permission: str, group: str = "heavy", knob: str = ""
    ) -> tuple[dict[str, str], str | None] | None:
        """Token, rate group, faults, the app permission (in the token's scope) and the route's error
        knob for an API call; None when already answered."""
        fault = self._draw_fault(route, True)
        record = self._authorize(route, group)
        if record is None:
            return None
        decision = self._rate_check(route, record.owner, group)
        if decision is None:
            return None
        rate = self._rate_headers(decision)
        if self._apply_status_fault(route, fault, rate):
            return None
        if permission not in record.scope:
            self._reply(route, app_permission(permission), rate)
            return None
        needed = USER_PERMISSIONS.get(route)
        if needed is not None and needed not in self.state.config.user_permissions.split():
            self._reply(route, user_permission(needed), rate)
            return None
        if knob:
            self._reply(route, API_ERRORS[knob], rate)
            return None
        return rate, fault

    def _recording_json(self, rec: Recording) -> dict[str, Any]:
        base = f"/restapi/v1.0/account/{ACCOUNT_ID}/recording/{rec.id}"
        return {
            "id": rec.id,
            "uri": f"{self.state.platform_url}{base}",
            "type": rec.type,
            "contentUri": f"{self.state.media_url}{base}/content",
        }

    def _introspect(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/_emulator/stats":
            self._send("introspect", 200, self.state.stats.snapshot())
        elif path == "/_emulator/ground-truth":
            now = self.state.config.clock()
            date_to = parse_iso(query["dateTo"][0]) if "dateTo" in query else now
            date_from = parse_iso(query["dateFrom"][0]) if "dateFrom" in query else 0.0
            self._send("introspect", 200, {"recordings": self.state.ground_truth(date_from, date_to)})
        elif path == "/_emulator/deleted":
            self._send("introspect", 200, {"deleted": self.state.deleted()})
        else:
            self._send("introspect", 404, {"error": "unknown introspection path"})
