"""Both readings of every point RingCentral's public sources leave open, and the switch between them.

Each option is None in EmulatorConfig unless a test or the CLI sets it; None takes the optimistic
reading, or the pessimistic one when `pessimistic` is on. An explicit value always wins, so a test that
needs one reading states it and runs the same under either switch. The optimistic reading is what the
emulator always did, except for `delete_unknown`: the emulator used to refuse a batch naming an unknown
id, which is now the pessimistic reading ("refuse").
"""

from __future__ import annotations

from dataclasses import dataclass

NEXT_PAGE_STYLES = ("absolute", "no-version")
# U10, what the call log shows once a recording is deleted through the API: "kept" lists the record with
# its `recording` as before (its content then answers 404), "dropped" removes the `recording` from the
# record and from any leg that carried it (the call itself is still listed).
DELETED_LISTINGS = ("kept", "dropped")
# U10, a batch naming ids that are unknown or already deleted: "ignore" answers 204 and deletes the ones
# that exist, "refuse" answers 404 CMN-102 and deletes nothing.
DELETE_UNKNOWN = ("ignore", "refuse")


@dataclass(frozen=True)
class Readings:
    filter_top_level_only: bool  # recordingType matches only records whose top-level recording is set
    session_cap: int  # live sessions per user+app; a login past it ends the oldest (0: no cap)
    retry_after_mode: str  # seconds | absent | http-date, on every 429
    next_page_style: str  # absolute | no-version (links without /restapi/v1.0, 404 if followed)
    media_group: str  # the rate group content requests count in ("heavy": shared with the platform)
    deleted_listing: str  # kept | dropped: a recording deleted by the API, in the call log (U10)
    delete_unknown: str  # ignore | refuse: a delete batch naming unknown or deleted ids (U10)


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
)


def resolve(
    pessimistic: bool,
    *,
    filter_top_level_only: bool | None,
    session_cap: int | None,
    retry_after_mode: str | None,
    next_page_style: str | None,
    media_group: str | None,
    deleted_listing: str | None,
    delete_unknown: str | None,
) -> Readings:
    base = PESSIMISTIC if pessimistic else OPTIMISTIC
    return Readings(
        filter_top_level_only=base.filter_top_level_only
        if filter_top_level_only is None
        else filter_top_level_only,
        session_cap=base.session_cap if session_cap is None else session_cap,
        retry_after_mode=base.retry_after_mode if retry_after_mode is None else retry_after_mode,
        next_page_style=base.next_page_style if next_page_style is None else next_page_style,
        media_group=base.media_group if media_group is None else media_group,
        deleted_listing=base.deleted_listing if deleted_listing is None else deleted_listing,
        delete_unknown=base.delete_unknown if delete_unknown is None else delete_unknown,
    )
