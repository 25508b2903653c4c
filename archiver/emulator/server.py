"""The RingCentral emulator: a platform listener and a media listener on loopback.

Routes (as RingCentral serves them, see docs/ringcentral-api.md#hosts):
  platform  POST /restapi/oauth/token          JWT bearer grant (and refresh, when enabled)
            POST /restapi/oauth/revoke
            GET  /restapi/v1.0/account/{~|id}/call-log
            GET  /restapi/v1.0/account/{~|id}/recording/{id}
            DELETE /restapi/v1.0/account/{~|id}/call-recordings  {"records": [ids]}, at most 100
  media     GET  /restapi/v1.0/account/{~|id}/recording/{id}/content   (Range supported)
Introspection for tests lives under /_emulator/, a prefix the real API does not have:
            GET  /_emulator/stats, GET /_emulator/ground-truth?dateFrom=&dateTo=, POST /_emulator/reset-stats
            GET  /_emulator/deleted (every recording gone: when, and whether by the API or retention)
Where no public source settles how RingCentral behaves, both readings are options (readings.py).
Per-test faults that no reading covers are options too: error knobs (`content_error`, ...), how content
bodies are framed (`content_framing`) and what befalls every DELETE (`delete_fault`); faults.py lists them.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import socket
import struct
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from archiver.emulator.data import (
    ACCOUNT_ID,
    LEG_ONLY_WHEN_FILTERED,
    Call,
    CallLogData,
    DataOptions,
    Leg,
    Party,
    Recording,
    generate,
    iso,
    parse_iso,
)
from archiver.emulator.deletions import Deletions
from archiver.emulator.faults import CONTENT_FRAMINGS, DELETE_FAULTS, FaultInjector, FaultOptions
from archiver.emulator.ratelimit import Decision, GroupLimit, RateLimiter
from archiver.emulator.readings import DELETE_UNKNOWN, DELETED_LISTINGS, NEXT_PAGE_STYLES, Readings, resolve
from archiver.emulator.replies import (
    API_ERRORS,
    BAD_JSON,
    INTERNAL_ERROR,
    RANGE_NOT_SATISFIABLE,
    RATE_EXCEEDED,
    RETRY_AFTER_MODES,
    TOKEN_ERRORS,
    UNAVAILABLE,
    ErrorReply,
    app_permission,
    retry_after_headers,
)

JSON = "application/json; charset=UTF-8"
CALL_LOG_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/call-log$")
RECORDING_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/recording/([^/]+)$")
CONTENT_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/recording/([^/]+)/content$")
DELETE_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/call-recordings$")
MAX_DELETE_IDS = 100  # CallRecordingIds.records maxItems in the public spec
HTML_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><p>Please sign in.</p></body></html>"
)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
OWNER_ID = "400131227009"


@dataclass
class EmulatorConfig:
    """Everything the emulator can be told. Defaults are RingCentral's."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port
    media_port: int = 0
    client_id: str = "emulator-client-id"
    client_secret: str = "emulator-client-secret"  # noqa: S105 - the emulator's own test credential
    jwt: str = "emulator-jwt-assertion"
    data: DataOptions = field(default_factory=DataOptions)
    token_ttl: int = 3600
    refresh_tokens: bool = False  # RingCentral apps issue no refresh tokens by default
    refresh_ttl: int = 604800
    heavy: GroupLimit = field(default_factory=lambda: GroupLimit(10, 60.0, 60.0))
    auth: GroupLimit = field(default_factory=lambda: GroupLimit(5, 60.0, 60.0))
    rate_limits: bool = True
    media_rate_headers: bool = True
    record_delay: float = 20.0  # a call appears in the log this long after it ends
    recording_delay: float = 60.0  # its recording content is ready this long after it ends (else 404 CMN-102)
    faults: FaultOptions = field(default_factory=FaultOptions)
    fault_auth: bool = False  # also inject faults on the token/revoke endpoints
    clock: Callable[[], float] = time.time
    scope: str = "ReadCallLog ReadCallRecording"  # the token reply's scope; API calls need theirs in it
    # The unverified points (readings.py): None takes the optimistic reading, or the pessimistic one
    # when `pessimistic` is on; a value set here wins either way.
    pessimistic: bool = False
    filter_top_level_only: bool | None = None
    session_cap: int | None = None
    retry_after_mode: str | None = None  # seconds | absent | http-date
    next_page_style: str | None = None  # absolute | no-version
    media_group: str | None = None  # "heavy", or the name of the media listener's own group
    media: GroupLimit | None = None  # that group's limit (None: the heavy numbers)
    deleted_listing: str | None = None  # kept | dropped: a recording deleted by the API, in the log (U10)
    delete_unknown: str | None = None  # ignore | refuse: a delete batch with unknown/deleted ids (U10)
    # Per-test faults, never part of the pessimistic switch: a key of replies.API_ERRORS that every
    # content (call-log) request answers instead of its body, and of replies.TOKEN_ERRORS for logins.
    content_error: str = ""
    call_log_error: str = ""
    token_error: str = ""
    # "close": content bodies end with the connection (no Content-Length, no chunked), as some proxies
    # send them; a "truncate" fault is then invisible to HTTP framing (faults.CONTENT_FRAMINGS).
    content_framing: str = "length"
    delete_fault: str = ""  # misroute | partial | lost: every DELETE of recordings (faults.DELETE_FAULTS)
    retention: float | None = None  # seconds after call start that a recording's content is deleted

    def readings(self) -> Readings:
        return resolve(
            self.pessimistic,
            filter_top_level_only=self.filter_top_level_only,
            session_cap=self.session_cap,
            retry_after_mode=self.retry_after_mode,
            next_page_style=self.next_page_style,
            media_group=self.media_group,
            deleted_listing=self.deleted_listing,
            delete_unknown=self.delete_unknown,
        )

    def validate(self) -> None:
        """Raise ValueError naming every option with a value the emulator does not know."""
        readings = self.readings()
        problems = []
        if readings.retry_after_mode not in RETRY_AFTER_MODES:
            problems.append(f"retry_after_mode must be one of {', '.join(RETRY_AFTER_MODES)}")
        if readings.next_page_style not in NEXT_PAGE_STYLES:
            problems.append(f"next_page_style must be one of {', '.join(NEXT_PAGE_STYLES)}")
        if readings.media_group in ("", "auth"):
            problems.append("media_group must be 'heavy' or a group name of its own")
        if readings.session_cap < 0:
            problems.append("session_cap must be 0 (no cap) or more")
        if readings.deleted_listing not in DELETED_LISTINGS:
            problems.append(f"deleted_listing must be one of {', '.join(DELETED_LISTINGS)}")
        if readings.delete_unknown not in DELETE_UNKNOWN:
            problems.append(f"delete_unknown must be one of {', '.join(DELETE_UNKNOWN)}")
        if self.content_framing not in CONTENT_FRAMINGS:
            problems.append(f"content_framing must be one of {', '.join(CONTENT_FRAMINGS)}")
        if self.delete_fault and self.delete_fault not in DELETE_FAULTS:
            problems.append(f"delete_fault must be one of {', '.join(DELETE_FAULTS)}")
        for name in ("content_error", "call_log_error"):
            if getattr(self, name) and getattr(self, name) not in API_ERRORS:
                problems.append(f"{name} must be one of {', '.join(API_ERRORS)}")
        if self.token_error and self.token_error not in TOKEN_ERRORS:
            problems.append(f"token_error must be one of {', '.join(TOKEN_ERRORS)}")
        if self.retention is not None and self.retention <= 0:
            problems.append("retention must be a positive number of seconds")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class TokenRecord:
    owner: str
    expires_at: float
    session: str
    scope: frozenset[str] = frozenset()
    refresh_token: str | None = None
    refresh_expires_at: float = 0.0


class Stats:
    """Request counts for tests: per route and status, 429s, downloads per recording, token grants."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.requests: Counter[str] = Counter()
            self.rate_limited = 0
            self.downloads: Counter[str] = Counter()  # complete 200/206 bodies started, per recording
            self.grants: Counter[str] = Counter()
            self.revokes = 0
            self.faults: Counter[str] = Counter()
            self.logins = 0  # successful JWT grants
            self.sessions_invalidated = 0  # sessions the session cap ended
            # recording id -> when the delete endpoint removed it; only ids it really removed (not the
            # unknown, already gone or left-undeleted ids of a batch), under every reading and fault.
            self.deleted: dict[str, float] = {}
            # (monotonic time, route, status) of every answered request, for pacing assertions.
            self.timeline: deque[tuple[float, str, int]] = deque(maxlen=100_000)

    def count(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[f"{route} {status}"] += 1
            self.timeline.append((time.monotonic(), route, status))
            if status == 429:
                self.rate_limited += 1

    def count_outcome(self, route: str, outcome: str) -> None:
        """A request that got no status at all (e.g. "lost": done, then no reply); timeline status 0."""
        with self._lock:
            self.requests[f"{route} {outcome}"] += 1
            self.timeline.append((time.monotonic(), route, 0))

    def count_fault(self, kind: str) -> None:
        with self._lock:
            self.faults[kind] += 1

    def count_download(self, recording_id: str) -> None:
        with self._lock:
            self.downloads[recording_id] += 1

    def count_grant(self, grant: str) -> None:
        with self._lock:
            self.grants[grant] += 1

    def count_revoke(self) -> None:
        with self._lock:
            self.revokes += 1

    def count_login(self) -> None:
        with self._lock:
            self.logins += 1

    def count_invalidated(self) -> None:
        with self._lock:
            self.sessions_invalidated += 1

    def count_deleted(self, recording_ids: list[str], when: float) -> None:
        with self._lock:
            for rec_id in recording_ids:
                self.deleted.setdefault(rec_id, when)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "rate_limited": self.rate_limited,
                "downloads": dict(self.downloads),
                "grants": dict(self.grants),
                "revokes": self.revokes,
                "faults": dict(self.faults),
                "logins": self.logins,
                "sessions_invalidated": self.sessions_invalidated,
                "deleted": {rec_id: iso(when) for rec_id, when in self.deleted.items()},
            }


class _Reset(Exception):
    """Raised to drop the connection with a TCP reset instead of answering."""


class EmulatorState:
    """Shared by both listeners: data, tokens, limits, faults and stats."""

    def __init__(self, config: EmulatorConfig) -> None:
        config.validate()
        self.config = config
        self.readings = config.readings()
        if not config.data.anchor:
            config.data.anchor = config.clock()
        options = config.data
        if options.leg_only_fraction is None:
            # Records whose only recording is on a leg matter only under the top-level filter reading.
            share = LEG_ONLY_WHEN_FILTERED if self.readings.filter_top_level_only else 0.0
            options = replace(options, leg_only_fraction=share)
        self.data: CallLogData = generate(options)
        self.deletions = Deletions(self.data, config.retention)
        self.tokens: dict[str, TokenRecord] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> access token
        self.tokens_lock = threading.Lock()
        groups = {"heavy": config.heavy, "auth": config.auth}
        if self.readings.media_group != "heavy":
            groups[self.readings.media_group] = config.media or config.heavy
        self.limiter = RateLimiter(groups, config.clock, config.rate_limits)
        self.faults = FaultInjector(config.faults)
        self.stats = Stats()
        self.platform_url = ""
        self.media_url = ""

    # -- ground truth -------------------------------------------------------------------------
    def visible(self, call: Call, now: float) -> bool:
        return call.end + self.config.record_delay <= now

    def ready(self, recording: Recording, now: float) -> bool:
        return recording.call_end + self.config.recording_delay <= now

    def gone(self, recording: Recording, now: float) -> bool:
        return self.deletions.deleted_at(recording.id, now) is not None

    def listed(self, recording: Recording | None, now: float) -> Recording | None:
        """The recording as the call log shows it on its record or leg (None: no `recording` field).

        Under the "dropped" reading of U10 one deleted through the API is no longer shown; one gone by
        retention still is under both (U10 is about the delete endpoint only)."""
        if recording is None:
            return None
        if self.readings.deleted_listing == "dropped" and self.deletions.deleted_by_api(recording.id, now):
            return None
        return recording

    def ground_truth(self, date_from: float, date_to: float) -> list[dict[str, Any]]:
        """Every recording a correct archiver must archive for calls that started in [from, to).

        Each entry also says when retention deletes it (`deadline`, None without retention) and whether
        and when it is gone (`deletedAt`, `deletedBy` "api" | "retention"): one deleted before it was
        archived is owed as lost, not as archived."""
        now = self.config.clock()
        out: dict[str, dict[str, Any]] = {}
        for call in self.data.calls:
            if not (date_from <= call.start < date_to) or not self.visible(call, now):
                continue
            for rec in call.recordings():
                if not self.ready(rec, now):
                    continue
                entry = out.setdefault(
                    rec.id,
                    {
                        "recordingId": rec.id,
                        "callIds": [],
                        "size": rec.size,
                        "sha256": self.data.sha256(rec),
                        "contentType": rec.content_type,
                        "startTime": iso(call.start),
                        **self._deletion_facts(rec.id, now),
                    },
                )
                entry["callIds"].append(call.id)
        return sorted(out.values(), key=lambda e: e["recordingId"])

    def _deletion_facts(self, recording_id: str, now: float) -> dict[str, Any]:
        deadline = self.deletions.deadline(recording_id)
        gone = self.deletions.deleted_at(recording_id, now)
        return {
            "deadline": None if deadline is None else iso(deadline),
            "deletedAt": None if gone is None else iso(gone[0]),
            "deletedBy": None if gone is None else gone[1],
        }

    def deleted(self) -> list[dict[str, Any]]:
        """Every recording RingCentral no longer has content for, earliest deletion first."""
        now = self.config.clock()
        return [
            {"recordingId": rec_id, "deletedAt": iso(when), "deletedBy": by}
            for rec_id, when, by in self.deletions.listing(now)
        ]


class _Handler(BaseHTTPRequestHandler):
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

    # -- plumbing ------------------------------------------------------------------------------
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
            retry = self._retry_after(self.state.faults.options.retry_after)
            self._reply(route, RATE_EXCEEDED, {**rate, **retry})  # it starts no penalty
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

    def _authorize(self, route: str) -> TokenRecord | None:
        """The token owner for an API call, or None after answering 401."""
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            self._error(route, 401, "OAU-123", "Authorization header is not specified")
            return None
        with self.state.tokens_lock:
            record = self.state.tokens.get(token.strip())
        if record is None:
            self._error(route, 401, "OAU-213", "Token not found")
            return None
        if self.state.config.clock() >= record.expires_at:
            self._error(route, 401, "OAU-128", "Access token expired")
            return None
        return record

    def _rate_check(self, route: str, owner: str, group: str) -> Decision | None:
        decision = self.state.limiter.check(owner, group)
        if decision.allowed:
            return decision
        # With Retry-After absent the penalty still runs: the trap is the same, only unannounced.
        headers = {**self._rate_headers(decision), **self._retry_after(decision.retry_after)}
        self._reply(route, RATE_EXCEEDED, headers)
        return None

    # -- dispatch ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path.startswith("/_emulator/"):
            self._introspect(url.path, query)
            return
        if self.media:
            match = CONTENT_RE.match(url.path)
            if match:
                self._content(match.group(2))
                return
        else:
            if CALL_LOG_RE.match(url.path):
                self._call_log(query)
                return
            match = RECORDING_RE.match(url.path)
            if match:
                self._recording(match.group(2))
                return
        self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if self.media:
            self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")
        elif url.path == "/restapi/oauth/token":
            self._token(body)
        elif url.path == "/restapi/oauth/revoke":
            self._revoke(body)
        elif url.path == "/_emulator/reset-stats":
            self.state.stats.reset()
            self._send("introspect", 200, {"ok": True})
        else:
            self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")

    def do_DELETE(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if not self.media and DELETE_RE.match(url.path):
            self._delete_recordings(body)
        else:
            self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")

    # -- OAuth ---------------------------------------------------------------------------------
    def _client_ok(self) -> bool:
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            client_id, _, client_secret = base64.b64decode(encoded.strip()).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        cfg = self.state.config
        return secrets.compare_digest(client_id, cfg.client_id) and secrets.compare_digest(
            client_secret, cfg.client_secret
        )

    def _oauth_error(self, route: str, status: int, error: str, description: str, code: str) -> None:
        self._error(
            route, status, code, description, extra={"error": error, "error_description": description}
        )

    def _auth_gate(self, route: str) -> dict[str, str] | None:
        """Faults and the Auth rate group for the token endpoints; None when already answered."""
        fault = self._draw_fault(route, self.state.config.fault_auth)
        decision = self._rate_check(route, f"client:{self.state.config.client_id}", "auth")
        if decision is None:
            return None
        rate = self._rate_headers(decision)
        if self._apply_status_fault(route, fault, rate):
            return None
        return rate

    def _token(self, raw: bytes) -> None:
        route = "token"
        rate = self._auth_gate(route)
        if rate is None:
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            self._oauth_error(route, 415, "invalid_request", "Unsupported Media Type", "OAU-101")
            return
        if not self._client_ok():
            self._oauth_error(route, 401, "invalid_client", "Invalid client", "OAU-146")
            return
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        grant = form.get("grant_type", "")
        cfg = self.state.config
        now = cfg.clock()
        if cfg.token_error:
            status, error, description, code = TOKEN_ERRORS[cfg.token_error]
            self._oauth_error(route, status, error, description, code)
            return
        if grant == JWT_GRANT:
            if not secrets.compare_digest(form.get("assertion", ""), cfg.jwt):
                # The errors table: 401 OAU-140 (not 400), with OAuth's invalid_grant.
                self._oauth_error(
                    route, 401, "invalid_grant", "Invalid resource owner credentials.", "OAU-140"
                )
                return
        elif grant == "refresh_token":
            with self.state.tokens_lock:
                old_access = self.state.refresh_tokens.pop(form.get("refresh_token", ""), None)
                old = self.state.tokens.pop(old_access, None) if old_access else None
            if not cfg.refresh_tokens or old is None or now >= old.refresh_expires_at:
                self._oauth_error(route, 400, "invalid_grant", "Token not found", "OAU-211")
                return
        else:
            self._oauth_error(route, 400, "unsupported_grant_type", "Unsupported grant type", "OAU-250")
            return
        access = secrets.token_urlsafe(32)
        record = TokenRecord(
            owner=OWNER_ID,
            expires_at=now + cfg.token_ttl,
            session=secrets.token_hex(8),
            scope=frozenset(cfg.scope.split()),
        )
        reply: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": cfg.token_ttl,
            "scope": cfg.scope,
            "owner_id": OWNER_ID,
            "endpoint_id": secrets.token_urlsafe(8),
            "session_id": record.session,
        }
        if cfg.refresh_tokens:
            refresh = secrets.token_urlsafe(32)
            record.refresh_token = refresh
            record.refresh_expires_at = now + cfg.refresh_ttl
            reply["refresh_token"] = refresh
            reply["refresh_token_expires_in"] = cfg.refresh_ttl
        with self.state.tokens_lock:
            if grant == JWT_GRANT:
                self._cap_sessions(record.owner, now)
            self.state.tokens[access] = record
            if record.refresh_token:
                self.state.refresh_tokens[record.refresh_token] = access
        if grant == JWT_GRANT:
            self.state.stats.count_login()
        self.state.stats.count_grant(grant.rsplit(":", 1)[-1])
        self._send(route, 200, reply, rate)

    def _cap_sessions(self, owner: str, now: float) -> None:
        """Make room for one more session: the oldest live ones end (their tokens then answer 401
        OAU-213 "Token not found", as a replaced token does). Call with tokens_lock held."""
        cap = self.state.readings.session_cap
        if not cap:
            return
        tokens = self.state.tokens
        live = [t for t, r in tokens.items() if r.owner == owner and now < r.expires_at]  # oldest first
        for access in live[: max(0, len(live) - cap + 1)]:
            ended = tokens.pop(access)
            if ended.refresh_token:
                self.state.refresh_tokens.pop(ended.refresh_token, None)
            self.state.stats.count_invalidated()

    def _revoke(self, raw: bytes) -> None:
        route = "revoke"
        rate = self._auth_gate(route)
        if rate is None:
            return
        if not self._client_ok():
            self._oauth_error(route, 401, "invalid_client", "Invalid client", "OAU-146")
            return
        token = parse_qs(raw.decode()).get("token", [""])[0]
        with self.state.tokens_lock:
            access = self.state.refresh_tokens.get(token, token)
            record = self.state.tokens.pop(access, None)
            if record and record.refresh_token:
                self.state.refresh_tokens.pop(record.refresh_token, None)
        self.state.stats.count_revoke()
        self._send(route, 200, None, rate)

    # -- API -----------------------------------------------------------------------------------
    def _api_gate(
        self, route: str, permission: str, group: str = "heavy", knob: str = ""
    ) -> tuple[dict[str, str], str | None] | None:
        """Token, rate group, faults, the app permission (in the token's scope) and the route's error
        knob for an API call; None when already answered."""
        fault = self._draw_fault(route, True)
        record = self._authorize(route)
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
        if knob:
            self._reply(route, API_ERRORS[knob], rate)
            return None
        return rate, fault

    def _call_log(self, query: dict[str, list[str]]) -> None:
        route = "call-log"
        gate = self._api_gate(route, "ReadCallLog", knob=self.state.config.call_log_error)
        if gate is None:
            return
        rate, fault = gate
        now = self.state.config.clock()

        def bad(name: str) -> None:
            self._error(
                route,
                400,
                "CMN-101",
                f"Parameter [{name}] value is invalid",
                rate,
                parameterName=name,
                parameterValue=query.get(name, [""])[0][:200],
            )

        try:
            date_to = parse_iso(query["dateTo"][0]) if "dateTo" in query else now
        except ValueError:
            bad("dateTo")
            return
        try:
            date_from = parse_iso(query["dateFrom"][0]) if "dateFrom" in query else date_to - 86400
        except ValueError:
            bad("dateFrom")
            return
        view = query.get("view", ["Simple"])[0]
        if view not in ("Simple", "Detailed"):
            bad("view")
            return
        recording_type = query.get("recordingType", [""])[0]
        if query.get("withRecording", [""])[0].lower() == "true" and not recording_type:
            recording_type = "All"
        if recording_type not in ("", "All", "Automatic", "OnDemand"):
            bad("recordingType")
            return
        types = set(query.get("type", []))
        directions = set(query.get("direction", []))
        raw_per_page = query.get("perPage", ["100"])[0]
        if raw_per_page == "max":
            per_page = 1000
        else:
            try:
                per_page = int(raw_per_page)
            except ValueError:
                bad("perPage")
                return
            if per_page < 1:
                bad("perPage")
                return
            per_page = min(per_page, 1000)
        try:
            page = int(query.get("page", ["1"])[0])
        except ValueError:
            bad("page")
            return
        if page < 1:
            bad("page")
            return

        def wanted(call: Call) -> bool:
            if not (date_from <= call.start < date_to) or not self.state.visible(call, now):
                return False
            if types and call.type not in types:
                return False
            if directions and call.direction not in directions:
                return False
            if recording_type:
                # The filter sees what the record shows: under "dropped" (U10) a deleted recording
                # no longer makes its call match.
                if self.state.readings.filter_top_level_only:
                    # The other reading: the filter looks at the record's own recording only, so a
                    # recording that exists only on a leg is seen by unfiltered scans alone.
                    own = self.state.listed(call.recording, now)
                    kinds = {own.type} if own is not None else set()
                else:
                    kinds = {r.type for r in call.recordings() if self.state.listed(r, now) is not None}
                return bool(kinds) if recording_type == "All" else recording_type in kinds
            return True

        matching = [c for c in self.state.data.calls if wanted(c)]  # already newest first
        start = (page - 1) * per_page
        records = [self._record_json(c, view == "Detailed", now) for c in matching[start : start + per_page]]
        # "no-version": links without /restapi/v1.0, as in RingCentral's 2021 Detailed-view example;
        # following one reaches no route and answers 404.
        prefix = "" if self.state.readings.next_page_style == "no-version" else "/restapi/v1.0"
        base = f"{self.state.platform_url}{prefix}/account/{ACCOUNT_ID}/call-log"
        params: list[tuple[str, str]] = [
            (k, v) for k, values in query.items() if k not in ("page", "perPage") for v in values
        ]
        params += [("dateFrom", iso(date_from))] if "dateFrom" not in query else []
        params += [("dateTo", iso(date_to))] if "dateTo" not in query else []

        def page_uri(n: int) -> dict[str, str]:
            return {"uri": f"{base}?{urlencode([*params, ('page', str(n)), ('perPage', str(per_page))])}"}

        navigation: dict[str, Any] = {"firstPage": page_uri(1)}
        if start + per_page < len(matching):
            navigation["nextPage"] = page_uri(page + 1)
        if page > 1:
            navigation["previousPage"] = page_uri(page - 1)
        paging: dict[str, Any] = {"page": page, "perPage": per_page}
        if records:
            paging["pageStart"] = start
            paging["pageEnd"] = start + len(records) - 1
        payload = {
            "uri": page_uri(page)["uri"],
            "records": records,
            "paging": paging,
            "navigation": navigation,
        }
        self._send(route, 200, payload, rate, fault)

    def _recording_json(self, rec: Recording) -> dict[str, Any]:
        base = f"/restapi/v1.0/account/{ACCOUNT_ID}/recording/{rec.id}"
        return {
            "id": rec.id,
            "uri": f"{self.state.platform_url}{base}",
            "type": rec.type,
            "contentUri": f"{self.state.media_url}{base}/content",
        }

    def _party_json(self, party: Party) -> dict[str, Any]:
        out: dict[str, Any] = {"phoneNumber": party.phone_number, "name": party.name}
        if party.extension_id:
            out["extensionId"] = party.extension_id
            out["extensionNumber"] = party.extension_number
        if party.location:
            out["location"] = party.location
        return out

    def _base_json(self, item: Call | Leg, call: Call) -> dict[str, Any]:
        account_uri = f"{self.state.platform_url}/restapi/v1.0/account/{ACCOUNT_ID}"
        out: dict[str, Any] = {
            "startTime": iso(item.start),
            "duration": item.duration,
            "durationMs": item.duration * 1000,
            "type": call.type,
            "direction": item.direction,
            "action": item.action,
            "result": call.result,
            "from": self._party_json(item.from_party),
            "to": self._party_json(item.to_party),
            "telephonySessionId": call.telephony_session_id,
            "extension": {
                "id": int(call.extension_id) if call.extension_id.isdigit() else 0,
                "uri": f"{account_uri}/extension/{call.extension_id}",
            },
        }
        return out

    def _record_json(self, call: Call, detailed: bool, now: float) -> dict[str, Any]:
        out = self._base_json(call, call)
        out.update(
            id=call.id,
            uri=f"{self.state.platform_url}/restapi/v1.0/account/{ACCOUNT_ID}/call-log/{call.id}",
            sessionId=call.session_id,
        )
        own = self.state.listed(call.recording, now)
        if own is not None:
            out["recording"] = self._recording_json(own)
        if call.short_recording:
            out["shortRecording"] = True
        if detailed:
            out["lastModifiedTime"] = iso(call.end + 20)
            out["transport"] = "PSTN"
            legs = []
            for leg in call.legs:
                leg_json = self._base_json(leg, call)
                leg_json["legType"] = leg.leg_type
                leg_json["master"] = leg.master
                on_leg = self.state.listed(leg.recording, now)
                if on_leg is not None:
                    leg_json["recording"] = self._recording_json(on_leg)
                legs.append(leg_json)
            out["legs"] = legs
        return out

    def _find_recording(self, route: str, recording_id: str, rate: dict[str, str]) -> Recording | None:
        rec = self.state.data.recordings.get(recording_id)
        now = self.state.config.clock()
        if rec is None or not self.state.ready(rec, now) or self.state.gone(rec, now):
            # A recording not (yet) available: 404 CMN-102
            # (docs/ringcentral-api.md#u9-not-ready-and-deleted-recordings). A deleted one (by the API
            # or by retention) answers the same: RingCentral documents nothing else for a recording
            # it no longer has, and CMN-102 is its "resource not found".
            self._error(
                route,
                404,
                "CMN-102",
                "Resource for parameter [recordingId] is not found",
                rate,
                parameterName="recordingId",
                parameterValue=recording_id[:100],
            )
            return None
        return rec

    def _recording_gate(
        self, route: str, recording_id: str, group: str = "heavy", knob: str = ""
    ) -> tuple[Recording, dict[str, str], str | None] | None:
        """The API gate, then the recording if it exists and is ready; None when already answered."""
        gate = self._api_gate(route, "ReadCallRecording", group, knob)
        if gate is None:
            return None
        rate, fault = gate
        rec = self._find_recording(route, recording_id, rate)
        return None if rec is None else (rec, rate, fault)

    def _recording(self, recording_id: str) -> None:
        route = "recording"
        found = self._recording_gate(route, recording_id)
        if found is None:
            return
        rec, rate, fault = found
        payload = {
            "id": rec.id,
            "contentUri": self._recording_json(rec)["contentUri"],
            "contentType": rec.content_type,
            "duration": rec.duration,
        }
        self._send(route, 200, payload, rate, fault)

    def _content(self, recording_id: str) -> None:
        route = "content"
        readings, cfg = self.state.readings, self.state.config
        found = self._recording_gate(route, recording_id, readings.media_group, cfg.content_error)
        if found is None:
            return
        rec, rate, fault = found
        start, end, status = 0, rec.size, 200
        headers = {**rate, "Accept-Ranges": "bytes", "Content-Type": rec.content_type}
        range_header = self.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, rec.size)
            if parsed is None:
                self._reply(route, RANGE_NOT_SATISFIABLE, {**rate, "Content-Range": f"bytes */{rec.size}"})
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.size}"
        self.state.stats.count(route, status)
        self.state.stats.count_download(rec.id)
        by_close = cfg.content_framing == "close"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if by_close:
            # The body ends where the connection does (RFC 9112 6.3, last rule): no Content-Length and
            # no chunked coding, so the client cannot tell a cut body from a whole one by framing.
            # send_header sets close_connection for this header; set it outright all the same, as the
            # keep-alive loop must not read another request from a connection whose end is the body's.
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(end - start))
        self.end_headers()
        cut = end
        if fault == "truncate":
            cut = start + self.state.faults.truncate_point(end - start)
        self._stream(self.state.data.iter_content(rec, start, cut))
        if cut < end and not by_close:
            # Fewer bytes than Content-Length, then the end: the client sees an incomplete body.
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        # Under "close" a cut body ends like a whole one: the handler returns, finish() flushes and the
        # server closes the connection (FIN, not RST), which is the clean end of body the client expects.

    def _stream(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.wfile.write(chunk)

    def _delete_recordings(self, raw: bytes) -> None:
        """deleteCompanyCallRecordings: Heavy, app permission EditCallLog, 204 with no body.

        What a batch naming unknown or already deleted ids does is the `delete_unknown` reading (U10);
        `delete_fault` breaks every call on purpose (faults.DELETE_FAULTS). Only what is really deleted
        reaches Deletions and the stats, so both stay ground truth under every option."""
        route = "delete-recordings"
        fault = self.state.config.delete_fault
        if fault == "misroute":
            # A proxy sends the call somewhere that does not know the path: RingCentral never sees it,
            # so no token check, no Heavy request, nothing deleted; content stays served.
            self._error(route, 404, "CMN-102", "Resource for parameter [path] is not found")
            return
        gate = self._api_gate(route, "EditCallLog")
        if gate is None:
            return
        rate, _ = gate
        # From here RingCentral has the request and carries it out; under "lost" whatever it answers
        # never arrives (_send resets the connection instead).
        self._lose_reply = fault == "lost"
        try:
            document = json.loads(raw or b"null")
        except ValueError:
            self._reply(route, BAD_JSON, rate)
            return
        ids = document.get("records") if isinstance(document, dict) else None
        if (
            not isinstance(ids, list)
            or not 1 <= len(ids) <= MAX_DELETE_IDS
            or not all(isinstance(i, str) and i for i in ids)
        ):
            # The spec's CallRecordingIds: 1..100 string ids; past that, InvalidRequest (CMN-101).
            self._error(
                route,
                400,
                "CMN-101",
                "Parameter [records] value is invalid.",
                rate,
                parameterName="records",
                parameterValue=raw.decode(errors="replace")[:200],
            )
            return
        now = self.state.config.clock()
        deletions = self.state.deletions
        missing = [i for i in ids if not deletions.exists(i, now)]
        if missing and self.state.readings.delete_unknown == "refuse":
            # Reading B of U10: the whole call is refused, nothing deleted (an already deleted id is
            # "not found" too, so a retry after a lost 204 gets this 404). Under "ignore" the ids that
            # exist are deleted and the call answers 204.
            self._error(
                route,
                404,
                "CMN-102",
                "Resource for parameter [records] is not found",
                rate,
                parameterName="records",
                parameterValue=missing[0][:100],
            )
            return
        if fault == "partial":
            # Only the first half goes (at least one id); the reply says so per id, as a multi-status
            # reply would. An id in the first half that was already gone (possible under "ignore") is
            # reported 204 like the rest of that half: it is gone, which is what 204 promises.
            done = set(ids[: max(1, len(ids) // 2)])
            removed = deletions.delete([i for i in ids if i in done], now)
            self.state.stats.count_deleted(removed, now)
            records = [
                {"id": i, "status": 204}
                if i in done
                else {"id": i, "status": 500, "errorCode": "CMN-500", "message": "Recording was not deleted"}
                for i in ids
            ]
            self._send(route, 207, {"records": records}, rate)
            return
        removed = deletions.delete(ids, now)
        self.state.stats.count_deleted(removed, now)
        self._send(route, 204, None, rate)

    # -- introspection -------------------------------------------------------------------------
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


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=` range as [start, end); None when unsatisfiable or malformed."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                return None
            return max(0, size - length), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return None
    return start, min(end, size)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Emulator:
    """Start and stop both listeners in-process; `with Emulator(config) as emu:` for tests."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def _listener(self, port: int, media: bool) -> _Server:
        handler = type("Handler", (_Handler,), {"state": self.state, "media": media})
        return _Server((self.config.host, port), handler)

    def start(self) -> Emulator:
        platform = self._listener(self.config.port, media=False)
        media = self._listener(self.config.media_port, media=True)
        self._servers = [platform, media]
        host = self.config.host
        self.state.platform_url = f"http://{host}:{platform.server_address[1]}"
        self.state.media_url = f"http://{host}:{media.server_address[1]}"
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.state.platform_url

    @property
    def media_url(self) -> str:
        return self.state.media_url

    @property
    def stats(self) -> Stats:
        return self.state.stats

    def ground_truth(self, date_from: float = 0.0, date_to: float | None = None) -> list[dict[str, Any]]:
        return self.state.ground_truth(date_from, self.config.clock() if date_to is None else date_to)

    def deleted(self) -> list[dict[str, Any]]:
        return self.state.deleted()

    def set_faults(self, options: FaultOptions) -> None:
        self.state.faults.reconfigure(options)
