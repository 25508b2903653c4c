"""The RingCentral emulator: a platform listener and a media listener on loopback.

Routes (as RingCentral serves them, see ../shared/ringcentral/NOTES.md):
  platform  POST /restapi/oauth/token          JWT bearer grant (and refresh, when enabled)
            POST /restapi/oauth/revoke
            GET  /restapi/v1.0/account/{~|id}/call-log
            GET  /restapi/v1.0/account/{~|id}/recording/{id}
  media     GET  /restapi/v1.0/account/{~|id}/recording/{id}/content   (Range supported)
Introspection for tests lives under /_emulator/, a prefix the real API does not have:
            GET  /_emulator/stats, GET /_emulator/ground-truth?dateFrom=&dateTo=, POST /_emulator/reset-stats
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
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from archiver.emulator.data import (
    ACCOUNT_ID,
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
from archiver.emulator.faults import FaultInjector, FaultOptions
from archiver.emulator.ratelimit import Decision, GroupLimit, RateLimiter

JSON = "application/json; charset=UTF-8"
CALL_LOG_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/call-log$")
RECORDING_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/recording/([^/]+)$")
CONTENT_RE = re.compile(r"^/restapi/v1\.0/account/(~|\d+)/recording/([^/]+)/content$")
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


@dataclass
class TokenRecord:
    owner: str
    expires_at: float
    session: str
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
            # (monotonic time, route, status) of every answered request, for pacing assertions.
            self.timeline: deque[tuple[float, str, int]] = deque(maxlen=100_000)

    def count(self, route: str, status: int) -> None:
        with self._lock:
            self.requests[f"{route} {status}"] += 1
            self.timeline.append((time.monotonic(), route, status))
            if status == 429:
                self.rate_limited += 1

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

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.requests),
                "rate_limited": self.rate_limited,
                "downloads": dict(self.downloads),
                "grants": dict(self.grants),
                "revokes": self.revokes,
                "faults": dict(self.faults),
            }


class _Reset(Exception):
    """Raised to drop the connection with a TCP reset instead of answering."""


class EmulatorState:
    """Shared by both listeners: data, tokens, limits, faults and stats."""

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        if not config.data.anchor:
            config.data.anchor = config.clock()
        self.data: CallLogData = generate(config.data)
        self.tokens: dict[str, TokenRecord] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> access token
        self.tokens_lock = threading.Lock()
        self.limiter = RateLimiter(
            {"heavy": config.heavy, "auth": config.auth}, config.clock, config.rate_limits
        )
        self.faults = FaultInjector(config.faults)
        self.stats = Stats()
        self.platform_url = ""
        self.media_url = ""

    # -- ground truth -------------------------------------------------------------------------
    def visible(self, call: Call, now: float) -> bool:
        return call.end + self.config.record_delay <= now

    def ready(self, recording: Recording, now: float) -> bool:
        return recording.call_end + self.config.recording_delay <= now

    def ground_truth(self, date_from: float, date_to: float) -> list[dict[str, Any]]:
        """Every recording a correct archiver must archive for calls that started in [from, to)."""
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
                    },
                )
                entry["callIds"].append(call.id)
        return sorted(out.values(), key=lambda e: e["recordingId"])


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; do not delay them
    server_version = "RingCentralEmulator/1"
    state: EmulatorState
    media: bool

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
        body = b"" if payload is None else json.dumps(payload).encode()
        self.state.stats.count(route, status)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if payload is not None:
            self.send_header("Content-Type", JSON)
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

    def _reset_connection(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST: the client sees "connection reset".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Reset

    def handle_one_request(self) -> None:
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
        """Answer an injected 429/500/503; True when the request has been answered."""
        if fault == "429":
            retry = str(self.state.faults.options.retry_after)
            self._error(route, 429, "CMN-301", "Request rate exceeded", {**rate, "Retry-After": retry})
            return True
        if fault == "500":
            self._error(route, 500, "CMN-500", "Internal Server Error", rate)
            return True
        if fault == "503":
            self._error(route, 503, "CMN-503", "Service Temporary Unavailable", {**rate, "Retry-After": "1"})
            return True
        return False

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
        headers = {**self._rate_headers(decision), "Retry-After": str(int(decision.retry_after))}
        self._error(route, 429, "CMN-301", "Request rate exceeded", headers)
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
        if grant == JWT_GRANT:
            if not secrets.compare_digest(form.get("assertion", ""), cfg.jwt):
                self._oauth_error(route, 400, "invalid_grant", "Invalid assertion signature", "OAU-140")
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
        record = TokenRecord(owner=OWNER_ID, expires_at=now + cfg.token_ttl, session=secrets.token_hex(8))
        reply: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": cfg.token_ttl,
            "scope": "ReadCallLog ReadCallRecording",
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
            self.state.tokens[access] = record
            if record.refresh_token:
                self.state.refresh_tokens[record.refresh_token] = access
        self.state.stats.count_grant(grant.rsplit(":", 1)[-1])
        self._send(route, 200, reply, rate)

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
    def _api_gate(self, route: str, faults: bool = True) -> tuple[dict[str, str], str | None] | None:
        """Token, Heavy rate group and faults for an API call; None when already answered."""
        fault = self._draw_fault(route, faults)
        record = self._authorize(route)
        if record is None:
            return None
        decision = self._rate_check(route, record.owner, "heavy")
        if decision is None:
            return None
        rate = self._rate_headers(decision)
        if self._apply_status_fault(route, fault, rate):
            return None
        return rate, fault

    def _call_log(self, query: dict[str, list[str]]) -> None:
        route = "call-log"
        gate = self._api_gate(route)
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
                kinds = {r.type for r in call.recordings()}
                return bool(kinds) if recording_type == "All" else recording_type in kinds
            return True

        matching = [c for c in self.state.data.calls if wanted(c)]  # already newest first
        start = (page - 1) * per_page
        records = [self._record_json(c, view == "Detailed") for c in matching[start : start + per_page]]
        base = f"{self.state.platform_url}/restapi/v1.0/account/{ACCOUNT_ID}/call-log"
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

    def _record_json(self, call: Call, detailed: bool) -> dict[str, Any]:
        out = self._base_json(call, call)
        out.update(
            id=call.id,
            uri=f"{self.state.platform_url}/restapi/v1.0/account/{ACCOUNT_ID}/call-log/{call.id}",
            sessionId=call.session_id,
        )
        if call.recording is not None:
            out["recording"] = self._recording_json(call.recording)
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
                if leg.recording is not None:
                    leg_json["recording"] = self._recording_json(leg.recording)
                legs.append(leg_json)
            out["legs"] = legs
        return out

    def _find_recording(self, route: str, recording_id: str, rate: dict[str, str]) -> Recording | None:
        rec = self.state.data.recordings.get(recording_id)
        now = self.state.config.clock()
        if rec is None or not self.state.ready(rec, now):
            # A recording not (yet) available: 404 CMN-102 (NOTES.md, "Recordings").
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
        self, route: str, recording_id: str
    ) -> tuple[Recording, dict[str, str], str | None] | None:
        """The API gate, then the recording if it exists and is ready; None when already answered."""
        gate = self._api_gate(route)
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
        found = self._recording_gate(route, recording_id)
        if found is None:
            return
        rec, rate, fault = found
        start, end, status = 0, rec.size, 200
        headers = {**rate, "Accept-Ranges": "bytes", "Content-Type": rec.content_type}
        range_header = self.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, rec.size)
            if parsed is None:
                self.state.stats.count(route, 416)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{rec.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.size}"
        self.state.stats.count(route, status)
        self.state.stats.count_download(rec.id)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(end - start))
        self.end_headers()
        cut = end
        if fault == "truncate":
            cut = start + self.state.faults.truncate_point(end - start)
        self._stream(self.state.data.iter_content(rec, start, cut))
        if cut < end:
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def _stream(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.wfile.write(chunk)

    # -- introspection -------------------------------------------------------------------------
    def _introspect(self, path: str, query: dict[str, list[str]]) -> None:
        if path == "/_emulator/stats":
            self._send("introspect", 200, self.state.stats.snapshot())
        elif path == "/_emulator/ground-truth":
            now = self.state.config.clock()
            date_to = parse_iso(query["dateTo"][0]) if "dateTo" in query else now
            date_from = parse_iso(query["dateFrom"][0]) if "dateFrom" in query else 0.0
            self._send("introspect", 200, {"recordings": self.state.ground_truth(date_from, date_to)})
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

    def set_faults(self, options: FaultOptions) -> None:
        self.state.faults.reconfigure(options)
