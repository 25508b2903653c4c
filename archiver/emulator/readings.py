"""Both readings of every point RingCentral's public sources leave open, and the switch between them.

Each option is None in EmulatorConfig unless a test or the CLI sets it; None takes the optimistic
reading (what the emulator always did), or the pessimistic one when `pessimistic` is on. An explicit
value always wins, so a test that needs one reading states it and runs the same under either switch.
"""

from __future__ import annotations

from dataclasses import dataclass

NEXT_PAGE_STYLES = ("absolute", "no-version")


@dataclass(frozen=True)
class Readings:
    filter_top_level_only: bool  # recordingType matches only records whose top-level recording is set
    session_cap: int  # live sessions per user+app; a login past it ends the oldest (0: no cap)
    retry_after_mode: str  # seconds | absent | http-date, on every 429
    next_page_style: str  # absolute | no-version (links without /restapi/v1.0, 404 if followed)
    media_group: str  # the rate group content requests count in ("heavy": shared with the platform)


OPTIMISTIC = Readings(
    filter_top_level_only=False,
    session_cap=0,
    retry_after_mode="seconds",
    next_page_style="absolute",
    media_group="heavy",
)
PESSIMISTIC = Readings(
    filter_top_level_only=True,
    session_cap=5,  # "about 5 sessions per user and app"
    retry_after_mode="absent",
    next_page_style="no-version",
    media_group="media",
)


def resolve(
    pessimistic: bool,
    *,
    filter_top_level_only: bool | None,
    session_cap: int | None,
    retry_after_mode: str | None,
    next_page_style: str | None,
    media_group: str | None,
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
    )
