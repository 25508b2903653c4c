"""Both readings of every point RingCentral's public sources leave open, and the switch between them.

Each option is None in EmulatorConfig unless a test or the CLI sets it; None takes the optimistic
reading, or the pessimistic one when `pessimistic` is on. An explicit value always wins, so a test that
needs one reading states it and runs the same under either switch. The optimistic reading is what the
emulator always did, except for `delete_unknown`: the emulator used to refuse a batch naming an unknown
id, which is now the pessimistic reading ("refuse"). docs/ringcentral-api.md#unverified-points-both-readings
names, for each point, its readings, the option that models it and the public report behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

NEXT_PAGE_STYLES = ("absolute", "no-version")
# U10, what the call log shows once a recording is deleted through the API: "kept" lists the record with
# its `recording` as before (its content then answers 404), "dropped" removes the `recording` from the
# record and from any leg that carried it (the call itself is still listed).
DELETED_LISTINGS = ("kept", "dropped")
# U10, a batch naming ids that are unknown or already deleted: "ignore" answers 204 and deletes the ones
# that exist, "refuse" answers 404 CMN-102 and deletes nothing.
DELETE_UNKNOWN = ("ignore", "refuse")
# U20, a content request whose Accept admits no audio type (`Accept: application/json`, as the official
# SDKs sent until 2023): "ignore" serves the audio, "refuse" answers 406 (ringcentral-python#51).
MEDIA_ACCEPT = ("ignore", "refuse")
# U21, the shape of a 429: "standard" (X-Rate-Limit-* with Remaining 0, a JSON body) or "varied": in turn
# one saying Remaining > 0, one without any X-Rate-Limit-* header, one with a text/html body.
RATE_429_FORMS = ("standard", "varied")
# U22, what a paging link carries: "plain" (the request's own parameters) or "extra" (also
# showBlocked=true&withRecording=false, which the request never sent, as RingCentral's own examples show).
PAGE_LINKS = ("plain", "extra")
# U23, a call to a call queue: "single" (one record) or "fanout" (one more record per member rung, each
# carrying the same recording).
QUEUE_RECORDS = ("single", "fanout")
# U2, a token RingCentral ended (revoked, replaced, pushed out by the session cap): "token-code" answers
# 401 OAU-213 "Token not found", "other-code" answers 401 CMN-405, a code no client renews a token for.
DEAD_TOKEN_CODES = ("token-code", "other-code")
# U13, whose Auth budget a login or revoke spends: "user" (per user and app) or "client" (per app, shared
# by every user that logs in with its client id).
AUTH_BUCKETS = ("user", "client")
# U24, `page` past the spec's maximum (EnumeratedPagingModel.page: at most 1000): "refuse" answers 400
# CMN-101, "cap" serves the last page there is (paging.page 1000), the records of page 1000 again.
PAGE_CAPS = ("refuse", "cap")
# U25, a refresh token used a second time: "window" (within REFRESH_REUSE_SECONDS the first refresh's
# reply again, as RingCentral's SDK maintainer measured) or "once" (400 OAU-211 at once).
REFRESH_REUSE = ("window", "once")
REFRESH_REUSE_SECONDS = 10.0


@dataclass(frozen=True)
class Readings:
    filter_top_level_only: bool  # recordingType matches only records whose top-level recording is set
    session_cap: int  # live sessions per user+app; a login past it ends the oldest (0: no cap)
    retry_after_mode: str  # seconds | absent | http-date, on every 429
    next_page_style: str  # absolute | no-version (links without /restapi/v1.0, 404 if followed)
    media_group: str  # the rate group content requests count in ("heavy": shared with the platform)
    deleted_listing: str  # kept | dropped: a recording deleted by the API, in the call log (U10)
    delete_unknown: str  # ignore | refuse: a delete batch naming unknown or deleted ids (U10)
    media_accept: str = "ignore"  # ignore | refuse: content asked for with a JSON-only Accept (U20)
    rate_429_form: str = "standard"  # standard | varied: the headers and body of a 429 (U21)
    page_links: str = "plain"  # plain | extra: parameters the request never sent, in paging links (U22)
    queue_records: str = "single"  # single | fanout: records of a call rung to a call queue (U23)
    ended_session: str = "token-code"  # token-code | other-code: the 401 of an ended token (U2)
    auth_bucket: str = "user"  # user | client: whose Auth budget logins and revokes spend (U13)
    page_cap: str = "refuse"  # refuse | cap: `page` past 1000 (U24)
    refresh_reuse: str = "window"  # window | once: a refresh token used again (U25)


OPTIMISTIC = Readings(
    filter_top_level_only=False,
    session_cap=0,
    retry_after_mode="seconds",
    next_page_style="absolute",
    media_group="heavy",
    deleted_listing="kept",
    delete_unknown="ignore",
)
PESSIMISTIC = Readings(
    filter_top_level_only=True,
    session_cap=5,  # "about 5 sessions per user and app"
    retry_after_mode="absent",
    next_page_style="no-version",
    media_group="media",
    # Worse for an archiver: a deleted recording vanishes from the log (nothing there says it ever
    # existed), and one stale id in a batch keeps the whole batch from being deleted.
    deleted_listing="dropped",
    delete_unknown="refuse",
    media_accept="refuse",
    rate_429_form="varied",
    page_links="extra",
    queue_records="fanout",
    ended_session="other-code",
    auth_bucket="client",
    page_cap="cap",
    refresh_reuse="once",
)
# The values each string-valued reading may take, for validation and the CLI's choices.
CHOICES: dict[str, tuple[str, ...]] = {
    "next_page_style": NEXT_PAGE_STYLES,
    "deleted_listing": DELETED_LISTINGS,
    "delete_unknown": DELETE_UNKNOWN,
    "media_accept": MEDIA_ACCEPT,
    "rate_429_form": RATE_429_FORMS,
    "page_links": PAGE_LINKS,
    "queue_records": QUEUE_RECORDS,
    "ended_session": DEAD_TOKEN_CODES,
    "auth_bucket": AUTH_BUCKETS,
    "page_cap": PAGE_CAPS,
    "refresh_reuse": REFRESH_REUSE,
}
NAMES = tuple(f.name for f in fields(Readings))


def resolve(pessimistic: bool, **given: Any) -> Readings:
    """The readings in force: the switch's, with every option given (not None) in their place."""
    base = PESSIMISTIC if pessimistic else OPTIMISTIC
    unknown = set(given) - set(NAMES)
    if unknown:
        raise TypeError(f"unknown readings {sorted(unknown)}")
    return replace(base, **{name: value for name, value in given.items() if value is not None})


def problems(readings: Readings) -> list[str]:
    """A line per reading whose value the emulator does not know."""
    return [
        f"{name} must be one of {', '.join(choices)}"
        for name, choices in CHOICES.items()
        if getattr(readings, name) not in choices
    ]
