"""What the emulator can be told (EmulatorConfig): RingCentral's defaults, the readings, the test knobs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from archiver.emulator.data import DataOptions
from archiver.emulator.faults import FAULTS, FaultOptions, fault_problems
from archiver.emulator.ratelimit import GroupLimit
from archiver.emulator.readings import NAMES, Readings, resolve
from archiver.emulator.readings import problems as readings_problems
from archiver.emulator.replies import RETRY_AFTER_MODES


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
    media_accept: str | None = None  # ignore | refuse: content asked for with a JSON-only Accept (U20)
    rate_429_form: str | None = None  # standard | varied: headers and body of a 429 (U21)
    page_links: str | None = None  # plain | extra: showBlocked/withRecording in paging links (U22)
    queue_records: str | None = None  # single | fanout: a record per call-queue member rung (U23)
    ended_session: str | None = None  # token-code | other-code: the 401 of an ended token (U2)
    auth_bucket: str | None = None  # user | client: whose Auth budget a login spends (U13)
    page_cap: str | None = None  # refuse | cap: `page` past max_page (U24)
    refresh_reuse: str | None = None  # window | once: a refresh token used a second time (U25)
    max_page: int = 1000  # the spec's maximum page number (EnumeratedPagingModel.page); tests lower it
    # The JWT user's user permissions (Admin Portal roles): the company call log needs
    # FullCompanyCallLog, deleting recordings EditCompanyCallRecordings; a missing one answers 403 CMN-408.
    user_permissions: str = "FullCompanyCallLog EditCompanyCallRecordings"
    # More users of the same app, each logging in with its own JWT assertion (U13: whose Auth budget).
    other_jwts: tuple[str, ...] = ()
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
        return resolve(self.pessimistic, **{name: getattr(self, name) for name in NAMES})

    def validate(self) -> None:
        """Raise ValueError naming every option with a value the emulator does not know."""
        readings = self.readings()
        problems = readings_problems(readings)
        if readings.retry_after_mode not in RETRY_AFTER_MODES:
            problems.append(f"retry_after_mode must be one of {', '.join(RETRY_AFTER_MODES)}")
        if self.max_page < 1:
            problems.append("max_page must be 1 or more")
        if readings.media_group in ("", "auth"):
            problems.append("media_group must be 'heavy' or a group name of its own")
        if readings.session_cap < 0:
            problems.append("session_cap must be 0 (no cap) or more")
        problems += fault_problems({name: getattr(self, name) for name in FAULTS})
        if self.retention is not None and self.retention <= 0:
            problems.append("retention must be a positive number of seconds")
        if problems:
            raise ValueError("; ".join(problems))
