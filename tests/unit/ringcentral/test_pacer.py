"""The pacer's arithmetic (pure, time passed in) and its behaviour with a fake clock."""

from __future__ import annotations

import threading

import pytest

from archiver.errors import Cancelled
from archiver.ringcentral.pacer import SAFETY_MARGIN, RateGroups, RatePacer, next_slot, penalty_seconds


@pytest.mark.parametrize(
    ("now", "hits", "in_flight", "penalty_until", "expected"),
    [
        (100.0, [], 0, 0.0, 100.0),  # nothing sent: go
        (100.0, [95.0] * 9, 0, 0.0, 100.0),  # 9 of 10 used: go
        (100.0, [91.0] + [95.0] * 9, 0, 0.0, 91.0 + 60 + SAFETY_MARGIN),  # full: wait for the oldest
        (100.0, [95.0] * 9, 1, 0.0, 95.0 + 60 + SAFETY_MARGIN),  # an in-flight request holds a slot
        (100.0, [], 10, 0.0, float("inf")),  # only replies can free a slot
        (100.0, [30.0] * 10, 0, 0.0, 100.0),  # old hits no longer count
        (100.0, [], 0, 130.0, 130.0),  # a 429 penalty holds everything
    ],
)
def test_pacer_next_slot(
    now: float, hits: list[float], in_flight: int, penalty_until: float, expected: float
) -> None:
    assert next_slot(now, hits, in_flight, 10, 60.0, penalty_until) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("retry_after", "window", "expected"),
    [
        (7.0, 60.0, 7.0),  # RingCentral said how long
        (None, None, 60.0),  # it did not: outlast the default 60 s penalty
        (None, 30.0, 60.0),  # a short window never shortens that
        (None, 120.0, 120.0),  # a longer window lengthens it
        (0.0, 60.0, 60.0),  # "0" would restart the penalty at once
    ],
)
def test_pacer_penalty_seconds(retry_after: float | None, window: float | None, expected: float) -> None:
    assert penalty_seconds(retry_after, window) == expected


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stopped() -> threading.Event:
    cancel = threading.Event()
    cancel.set()
    return cancel


def test_pacer_learns_limit_and_spends_budget_others_used() -> None:
    pacer = RatePacer("heavy", 10, 60.0, clock=FakeClock())
    pacer.acquire()
    # The server says only 2 remain of 20: someone else used 17 of them in this window.
    pacer.release(
        {
            "x-rate-limit-group": "heavy",
            "X-Rate-Limit-Limit": "20",
            "X-Rate-Limit-Window": "30",
            "X-RATE-LIMIT-REMAINING": "2",
        }
    )
    assert (pacer.limit, pacer.window) == (20, 30.0)
    for _ in range(2):
        pacer.acquire()
        pacer.release(None)
    with pytest.raises(Cancelled):  # the budget is spent: the next request would be refused
        pacer.acquire(stopped())


def test_pacer_penalty_blocks_until_retry_after() -> None:
    clock = FakeClock()
    pacer = RatePacer("heavy", 10, 60.0, clock=clock)
    assert pacer.penalize(5.0) == 5.0
    with pytest.raises(Cancelled):
        pacer.acquire(stopped())
    clock.now += 5.0 + SAFETY_MARGIN
    pacer.acquire(stopped())  # passes now
    assert pacer.penalties == 1


def test_pacer_penalty_without_retry_after_outlasts_the_window() -> None:
    clock = FakeClock()
    pacer = RatePacer("heavy", 10, 90.0, clock=clock)
    assert pacer.penalize(None) == 90.0
    clock.now += 89.0
    with pytest.raises(Cancelled):
        pacer.acquire(stopped())
    clock.now += 1.1
    pacer.acquire(stopped())


def test_pacer_ignores_other_groups_headers() -> None:
    pacer = RatePacer("heavy", 10, 60.0, clock=FakeClock())
    pacer.acquire()
    pacer.release(
        {
            "X-Rate-Limit-Group": "light",
            "X-Rate-Limit-Limit": "50",
            "X-Rate-Limit-Window": "60",
            "X-Rate-Limit-Remaining": "0",
        }
    )
    assert pacer.limit == 10


MEDIA = {
    "X-Rate-Limit-Group": "media",
    "X-Rate-Limit-Limit": "40",
    "X-Rate-Limit-Window": "60",
    "X-Rate-Limit-Remaining": "39",
}


def test_pacer_groups_route_a_kind_to_the_group_its_replies_name() -> None:
    heavy = RatePacer("heavy", 10, 60.0, clock=FakeClock())
    groups = RateGroups({"heavy": heavy})
    assert groups.pacer_for("content") is heavy
    used = groups.pacer_for("content")
    used.acquire()
    media = groups.settle("content", used, MEDIA)
    assert media.group == "media" and (media.limit, media.window) == (40, 60.0)
    assert groups.pacer_for("content") is media  # content now spends the media budget
    assert groups.pacer_for("call-log") is heavy  # the call log stays where its replies put it
    assert set(groups.pacers) == {"heavy", "media"}


def test_pacer_groups_keep_a_kind_in_heavy_when_replies_name_no_group() -> None:
    heavy = RatePacer("heavy", 10, 60.0, clock=FakeClock())
    groups = RateGroups({"heavy": heavy})
    used = groups.pacer_for("content")
    used.acquire()
    assert groups.settle("content", used, {}) is heavy  # media replies may lack the headers
    assert groups.pacer_for("content") is heavy and set(groups.pacers) == {"heavy"}


def test_pacer_groups_count_the_reply_in_the_named_group() -> None:
    heavy = RatePacer("heavy", 10, 60.0, clock=FakeClock())
    groups = RateGroups({"heavy": heavy})
    used = groups.pacer_for("content")
    used.acquire()
    media = groups.settle(
        "content",
        used,
        {"X-Rate-Limit-Group": "media", "X-Rate-Limit-Limit": "1", "X-Rate-Limit-Window": "60"},
    )
    with pytest.raises(Cancelled):  # the one media slot is taken by the reply just counted
        media.acquire(stopped())


def test_pacer_groups_count_requests_still_in_flight_when_a_kind_moves_to_a_new_group() -> None:
    """Four downloads go out under heavy; the first reply names the media group (limit 10, 9 left).
    The other three are still in flight, and RingCentral counts them in media: the media pacer must
    hold their slots, or it sends nine more on top of them and draws a 429."""
    clock = FakeClock()
    heavy = RatePacer("heavy", 10, 1.0, clock=clock)
    groups = RateGroups({"heavy": heavy})
    for _ in range(4):
        groups.pacer_for("content").acquire()
    reply = {**MEDIA, "X-Rate-Limit-Limit": "10", "X-Rate-Limit-Window": "1", "X-Rate-Limit-Remaining": "9"}
    media = groups.settle("content", heavy, reply)
    sent = 0
    while True:
        try:
            media.acquire(stopped())
        except Cancelled:
            break
        sent += 1
    assert sent == 10 - 1 - 3  # the reply counted, the three in flight held, the rest of the budget
    # The three replies arrive; a window later the whole budget is there again.
    for _ in range(3):
        groups.settle("content", heavy, {**reply, "X-Rate-Limit-Remaining": "0"})
    clock.now += 1.1
    for _ in range(sent):
        media.release(None)
    media.acquire(stopped())  # the held slots have expired: sending again at once
