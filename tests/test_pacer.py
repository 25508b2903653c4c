"""The pacer's arithmetic (pure, time passed in) and its behaviour with a fake clock."""

from __future__ import annotations

import threading

import pytest

from archiver.ringcentral.pacer import SAFETY_MARGIN, Cancelled, RatePacer, next_slot


@pytest.mark.parametrize(
    ("now", "hits", "in_flight", "penalty_until", "expected"),
    [
        (100.0, [], 0, 0.0, 100.0),  # nothing sent: go
        (100.0, [95.0] * 9, 0, 0.0, 100.0),  # 9 of 10 used: go
        (
            100.0,
            [91.0] + [95.0] * 9,
            0,
            0.0,
            91.0 + 60 + SAFETY_MARGIN,
        ),  # full: wait for the oldest to expire
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_pacer_learns_limit_and_spends_budget_others_used() -> None:
    clock = FakeClock()
    pacer = RatePacer("heavy", 10, 60.0, clock=clock)
    ticket = pacer.acquire()
    # The server says only 2 remain of 20: someone else used 17 of them in this window.
    pacer.release(
        ticket,
        {
            "X-Rate-Limit-Group": "heavy",
            "X-Rate-Limit-Limit": "20",
            "X-Rate-Limit-Window": "30",
            "X-Rate-Limit-Remaining": "2",
        },
    )
    assert (pacer.limit, pacer.window) == (20, 30.0)
    pacer.release(pacer.acquire(), None)
    pacer.release(pacer.acquire(), None)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):  # the budget is spent: the next request would be refused
        pacer.acquire(cancel)


def test_pacer_penalty_blocks_until_retry_after() -> None:
    clock = FakeClock()
    pacer = RatePacer("heavy", 10, 60.0, clock=clock)
    pacer.penalize(5.0)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        pacer.acquire(cancel)
    clock.now += 5.0 + SAFETY_MARGIN
    pacer.acquire(cancel)  # passes now
    assert pacer.penalties == 1


def test_pacer_penalty_without_retry_after_is_30_seconds() -> None:
    clock = FakeClock()
    pacer = RatePacer("heavy", 10, 60.0, clock=clock)
    pacer.penalize(None)
    cancel = threading.Event()
    cancel.set()
    clock.now += 29.0
    with pytest.raises(Cancelled):
        pacer.acquire(cancel)
    clock.now += 1.1
    pacer.acquire(cancel)


def test_pacer_ignores_other_groups_headers() -> None:
    pacer = RatePacer("heavy", 10, 60.0, clock=FakeClock())
    pacer.release(
        pacer.acquire(),
        {
            "X-Rate-Limit-Group": "light",
            "X-Rate-Limit-Limit": "50",
            "X-Rate-Limit-Window": "60",
            "X-Rate-Limit-Remaining": "0",
        },
    )
    assert pacer.limit == 10
