"""archive/transfer.py: the two pools joined by spool slots (pure logic: plain callables as jobs)."""

from __future__ import annotations

import contextvars
import functools
import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from archiver.archive.transfer import Then, TwoStagePool

WAIT = 10.0  # the bound of every wait: a noisy machine is slow, never this slow


def wait_until(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError("condition not met in time")


class Results:
    """on_result's sink, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[str] = []

    def __call__(self, result: str) -> None:
        with self._lock:
            self.items.append(result)

    def count(self) -> int:
        with self._lock:
            return len(self.items)


@pytest.fixture
def cancel() -> threading.Event:
    return threading.Event()


@pytest.fixture
def results() -> Results:
    return Results()


@pytest.fixture
def make_pool(cancel: threading.Event, results: Results) -> Iterator[Callable[..., TwoStagePool[str]]]:
    pools: list[TwoStagePool[str]] = []

    def make(first: int = 2, second: int = 2, slots: int = 4, **kwargs: object) -> TwoStagePool[str]:
        pool: TwoStagePool[str] = TwoStagePool(first, second, slots, cancel, results, **kwargs)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        pool.close()


def test_transfer_both_stages_run_in_their_own_pools_and_cleanup_follows_the_second(
    make_pool: Callable[..., TwoStagePool[str]], results: Results
) -> None:
    pool = make_pool()
    threads: dict[str, str] = {}
    cleaned = threading.Event()

    def second() -> str:
        threads["second"] = threading.current_thread().name
        return "uploaded"

    def first() -> str | Then[str]:
        threads["first"] = threading.current_thread().name
        return Then(second, cleaned.set)

    assert pool.submit(first)
    assert pool.submit(lambda: "found stored")  # a job with no second stage reports at once
    assert pool.drain(stop_timeout=WAIT)
    assert sorted(results.items) == ["found stored", "uploaded"]
    assert cleaned.is_set()
    assert threads["first"].startswith("download") and threads["second"].startswith("upload")
    assert pool.active == 0


def test_transfer_slots_bound_the_jobs_between_their_first_stage_and_their_upload(
    make_pool: Callable[..., TwoStagePool[str]], results: Results
) -> None:
    slots = 2
    pool = make_pool(first=4, second=1, slots=slots)
    gate = threading.Event()  # uploads wait here: the spool fills up
    lock = threading.Lock()
    between = {"now": 0, "most": 0, "started": 0}

    def upload() -> str:
        assert gate.wait(WAIT)
        with lock:
            between["now"] -= 1
        return "uploaded"

    def download() -> Then[str]:
        with lock:
            between["started"] += 1
            between["now"] += 1
            between["most"] = max(between["most"], between["now"])
        return Then(upload, lambda: None)

    for _ in range(6):
        assert pool.submit(download)
    wait_until(lambda: between["started"] == slots)
    threading.Event().wait(0.3)  # four download workers are free: a third job must still not start
    assert between["started"] == slots
    gate.set()
    assert pool.drain(stop_timeout=WAIT)
    assert results.count() == 6 and between["most"] == slots


def test_transfer_cancel_stops_taking_work_and_queued_jobs_never_run(
    make_pool: Callable[..., TwoStagePool[str]], cancel: threading.Event, results: Results
) -> None:
    pool = make_pool(first=1, second=1, slots=1, queue_limit=10)
    gate, entered = threading.Event(), threading.Event()
    ran: list[int] = []

    def blocking() -> str:
        entered.set()
        assert gate.wait(WAIT)
        return "in flight"

    def queued(n: int) -> str:
        ran.append(n)
        return "queued"

    assert pool.submit(blocking)
    for n in range(3):
        assert pool.submit(functools.partial(queued, n))
    assert entered.wait(WAIT)
    cancel.set()
    assert not pool.submit(lambda: "too late")
    gate.set()
    assert pool.drain(stop_timeout=WAIT)
    assert results.items == ["in flight"]  # what was in flight finished; nothing queued was started
    assert ran == [] and pool.active == 0


def test_transfer_submit_blocks_while_the_queue_is_full_and_gives_up_on_cancel(
    make_pool: Callable[..., TwoStagePool[str]], cancel: threading.Event
) -> None:
    pool = make_pool(first=1, second=1, slots=1, queue_limit=1)
    gate = threading.Event()
    assert pool.submit(lambda: "x" if gate.wait(WAIT) else "timeout")
    answer: list[bool] = []
    submitter = threading.Thread(target=lambda: answer.append(pool.submit(lambda: "y")))
    submitter.start()
    submitter.join(0.3)
    assert submitter.is_alive() and answer == []  # held: the queue is full
    cancel.set()
    submitter.join(WAIT)
    assert answer == [False]
    gate.set()


def test_transfer_drain_returns_false_once_stopping_outlasts_the_stop_timeout(
    make_pool: Callable[..., TwoStagePool[str]], cancel: threading.Event
) -> None:
    ticks = itertools.count()
    pool = make_pool(first=1, second=1, slots=1, clock=lambda: float(next(ticks)))  # a second a look
    gate, entered = threading.Event(), threading.Event()

    def stuck() -> str:
        entered.set()
        assert gate.wait(WAIT)
        return "late"

    assert pool.submit(stuck)
    assert entered.wait(WAIT)
    cancel.set()
    try:
        with capture_logs() as logs:
            assert pool.drain(stop_timeout=3.0) is False
        assert pool.active == 1  # abandoned, and counted as such
        assert [e for e in logs if e["event"] == "stopping"] == [
            {"event": "stopping", "in_flight": 1, "timeout": 3.0, "log_level": "info"}
        ]
    finally:
        gate.set()


def test_transfer_drain_without_a_stop_waits_for_every_job(
    make_pool: Callable[..., TwoStagePool[str]], results: Results
) -> None:
    pool = make_pool(first=1, second=1, slots=1, clock=lambda: 1e12)  # no deadline can pass unnoticed
    gate = threading.Event()
    assert pool.submit(lambda: "slow" if gate.wait(WAIT) else "timeout")
    threading.Timer(0.3, gate.set).start()
    assert pool.drain(stop_timeout=0.0) is True  # not stopping: the stop timeout does not apply
    assert results.items == ["slow"]


def test_transfer_a_crashing_job_is_logged_and_frees_its_slot(
    make_pool: Callable[..., TwoStagePool[str]], results: Results
) -> None:
    pool = make_pool(first=1, second=1, slots=1)
    cleaned = threading.Event()

    def boom() -> str:
        raise RuntimeError("a bug in the first stage")

    def upload_boom() -> str:
        raise RuntimeError("a bug in the second stage")

    with capture_logs() as logs:
        assert pool.submit(boom)
        assert pool.submit(lambda: Then(upload_boom, cleaned.set))
        assert pool.submit(lambda: "after")  # the one slot was given back both times
        assert pool.drain(stop_timeout=WAIT)
    assert results.items == ["after"] and cleaned.is_set() and pool.active == 0
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["job_crashed", "job_crashed"]


def test_transfer_jobs_see_the_submitters_context_in_both_stages(
    make_pool: Callable[..., TwoStagePool[str]], results: Results
) -> None:
    pool = make_pool()
    marker: contextvars.ContextVar[str] = contextvars.ContextVar("marker", default="unset")
    seen: dict[str, object] = {}

    def second() -> str:
        seen["second"] = (marker.get(), structlog.contextvars.get_contextvars().get("run_id"))
        return "done"

    def first() -> Then[str]:
        seen["first"] = (marker.get(), structlog.contextvars.get_contextvars().get("run_id"))
        return Then(second, lambda: None)

    def submit_in_a_run() -> None:
        structlog.contextvars.bind_contextvars(run_id="run-42")
        marker.set("submitter")
        assert pool.submit(first)

    contextvars.copy_context().run(submit_in_a_run)  # bound there only: other tests see nothing
    assert pool.drain(stop_timeout=WAIT)
    assert seen == {"first": ("submitter", "run-42"), "second": ("submitter", "run-42")}
    assert marker.get() == "unset"


def test_transfer_a_failing_cleanup_still_frees_its_slot_and_ends_the_job(
    make_pool: Callable[..., TwoStagePool[str]], cancel: threading.Event, results: Results
) -> None:
    pool = make_pool(first=1, second=1, slots=1, clock=lambda: 0.0)

    def cleanup() -> None:
        raise PermissionError(13, "Permission denied")

    assert pool.submit(lambda: Then(lambda: "uploaded", cleanup))
    wait_until(lambda: results.count() == 1)
    try:
        wait_until(lambda: pool.active == 0, timeout=2.0)
    finally:
        cancel.set()  # lets drain() (and the fixture's close) end whatever happens
