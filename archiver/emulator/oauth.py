"""OAuth and sessions: the token endpoint (JWT grant, refresh with its reuse window), revoke, the session
cap, and whose Auth budget each spends."""

from __future__ import annotations

import base64
import secrets
from typing import Any
from urllib.parse import parse_qs, urlsplit

from archiver.emulator.gates import HandlerBase
from archiver.emulator.readings import REFRESH_REUSE_SECONDS
from archiver.emulator.replies import TOKEN_ERRORS
from archiver.emulator.state import OWNER_ID, TokenRecord

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class OAuthRoutes(HandlerBase):
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

    def _oauth_error(
        self, route: str, status: int, error: str, description: str, code: str, rate: dict[str, str]
    ) -> None:
        self._error(
            route,
            status,
            code,
            description,
            rate,
            extra={"error": error, "error_description": description},
        )

    def _auth_owner(self, form: dict[str, str], route: str) -> str:
        """Whose Auth budget this token or revoke request spends (U13): the user it names (the JWT's,
        or the owner of the token it presents), or under the "client" reading the app's, shared."""
        client = f"client:{self.state.config.client_id}"
        if self.state.readings.auth_bucket == "client":
            return client
        if route == "token" and form.get("grant_type") == JWT_GRANT:
            return self.state.user_of(form.get("assertion", "")) or client
        token = form.get("refresh_token") if route == "token" else form.get("token")
        with self.state.tokens_lock:
            access = self.state.refresh_tokens.get(token or "", token or "")
            record = self.state.tokens.get(access)
        return record.owner if record is not None else client

    def _auth_gate(self, route: str, form: dict[str, str]) -> dict[str, str] | None:
        """Faults and the Auth rate group for the token endpoints; None when already answered."""
        fault = self._draw_fault(route, self.state.config.fault_auth)
        decision = self._rate_check(route, self._auth_owner(form, route), "auth")
        if decision is None:
            return None
        rate = self._rate_headers(decision)
        if self._apply_status_fault(route, fault, rate):
            return None
        return rate

    def _token(self, raw: bytes) -> None:
        route = "token"
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        rate = self._auth_gate(route, form)
        if rate is None:
            return
        if not (self.headers.get("Content-Type") or "").startswith("application/x-www-form-urlencoded"):
            self._oauth_error(route, 415, "invalid_request", "Unsupported Media Type", "OAU-101", rate)
            return
        if not self._client_ok():
            self._oauth_error(route, 401, "invalid_client", "Invalid client", "OAU-146", rate)
            return
        grant = form.get("grant_type", "")
        cfg = self.state.config
        now = cfg.clock()
        if cfg.token_error:
            status, error, description, code = TOKEN_ERRORS[cfg.token_error]
            self._oauth_error(route, status, error, description, code, rate)
            return
        owner = OWNER_ID
        if grant == JWT_GRANT:
            user = self.state.user_of(form.get("assertion", ""))
            if user is None:
                # The errors table: 401 OAU-140 (not 400), with OAuth's invalid_grant.
                self._oauth_error(
                    route, 401, "invalid_grant", "Invalid resource owner credentials.", "OAU-140", rate
                )
                return
            owner = user
        elif grant == "refresh_token":
            used = form.get("refresh_token", "")
            with self.state.tokens_lock:
                again = self.state.refreshed.get(used)
                old_access = self.state.refresh_tokens.pop(used, None)
                old = self.state.end_token(old_access) if old_access else None
            if again is not None and now < again[1] and self.state.readings.refresh_reuse == "window":
                # U25 reading A: within the reuse window a refresh token used again gets the first
                # refresh's reply again (in case that reply was lost), not a new session.
                self.state.stats.count_grant("refresh_token")
                self._send(route, 200, again[0], rate)
                return
            if not cfg.refresh_tokens or old is None or now >= old.refresh_expires_at:
                self._oauth_error(route, 400, "invalid_grant", "Token not found", "OAU-211", rate)
                return
            owner = old.owner
        else:
            self._oauth_error(route, 400, "unsupported_grant_type", "Unsupported grant type", "OAU-250", rate)
            return
        access = secrets.token_urlsafe(32)
        record = TokenRecord(
            owner=owner,
            expires_at=now + cfg.token_ttl,
            session=secrets.token_hex(8),
            scope=frozenset(cfg.scope.split()),
        )
        reply: dict[str, Any] = {
            "access_token": access,
            "token_type": "bearer",
            "expires_in": cfg.token_ttl,
            "scope": cfg.scope,
            "owner_id": owner,
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
            if grant == "refresh_token":
                self.state.refreshed[form.get("refresh_token", "")] = (reply, now + REFRESH_REUSE_SECONDS)
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
            self.state.end_token(access)
            self.state.stats.count_invalidated()

    def _revoke(self, raw: bytes) -> None:
        """revokeToken: `token` in the form body or, as the spec also allows, in the query string."""
        route = "revoke"
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        if "token" not in form:
            query = parse_qs(urlsplit(self.path).query)
            form["token"] = query.get("token", [""])[0]
        rate = self._auth_gate(route, form)
        if rate is None:
            return
        if not self._client_ok():
            self._oauth_error(route, 401, "invalid_client", "Invalid client", "OAU-146", rate)
            return
        token = form["token"]
        with self.state.tokens_lock:
            self.state.end_token(self.state.refresh_tokens.get(token, token))
        self.state.stats.count_revoke()
        self._send(route, 200, None, rate)
