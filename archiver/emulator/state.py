"""What both listeners share: the data, tokens and sessions, rate limits, faults, stats and ground truth."""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, replace
from typing import Any

from archiver.emulator.config import EmulatorConfig
from archiver.emulator.data import (
    LEG_ONLY_WHEN_FILTERED,
    QUEUE_WHEN_FANOUT,
    Call,
    CallLogData,
    Recording,
    generate,
    iso,
)
from archiver.emulator.deletions import Deletions
from archiver.emulator.faults import FaultInjector
from archiver.emulator.ratelimit import RateLimiter
from archiver.emulator.replies import VARIED_429_FORMS

OWNER_ID = "400131227009"


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
        if options.queue_fraction is None:
            fanout = QUEUE_WHEN_FANOUT if self.readings.queue_records == "fanout" else 0.0
            options = replace(options, queue_fraction=fanout)
        self.data: CallLogData = generate(options)
        self.deletions = Deletions(self.data, config.retention)
        self.tokens: dict[str, TokenRecord] = {}
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> access token
        # Tokens RingCentral ended (revoked, refreshed away, pushed out by the session cap): U2's
        # reading decides the code their 401 carries.
        self.ended: set[str] = set()
        # A refresh token already used -> (the reply it got, until when a reuse gets it again) (U25).
        self.refreshed: dict[str, tuple[dict[str, Any], float]] = {}
        self.tokens_lock = threading.Lock()
        self._429s = itertools.count()  # which form the next 429 takes under the "varied" reading
        groups = {"heavy": config.heavy, "auth": config.auth}
        if self.readings.media_group != "heavy":
            groups[self.readings.media_group] = config.media or config.heavy
        self.limiter = RateLimiter(groups, config.clock, config.rate_limits)
        self.faults = FaultInjector(config.faults)
        self.stats = Stats()
        self.platform_url = ""
        self.media_url = ""

    def user_of(self, assertion: str) -> str | None:
        """The user (owner id) a JWT assertion logs in, or None: config.jwt's, then each of other_jwts'
        (read at each login: a test may change config.jwt on a running emulator)."""
        users = [(self.config.jwt, OWNER_ID)] + [
            (jwt, str(int(OWNER_ID) + n)) for n, jwt in enumerate(self.config.other_jwts, start=1)
        ]
        return next((user for jwt, user in users if secrets.compare_digest(assertion, jwt)), None)

    def too_many_form(self) -> str:
        """The form of the next 429: always "standard", or in turn each form of the "varied" reading."""
        if self.readings.rate_429_form != "varied":
            return "standard"
        return VARIED_429_FORMS[next(self._429s) % len(VARIED_429_FORMS)]

    def end_token(self, access: str) -> TokenRecord | None:
        """End one session's access token (and its refresh token); call with tokens_lock held."""
        record = self.tokens.pop(access, None)
        if record is not None:
            self.ended.add(access)
            if record.refresh_token:
                self.refresh_tokens.pop(record.refresh_token, None)
        return record

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
