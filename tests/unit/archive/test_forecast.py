"""forecast.py's pure functions: the projection of a backlog against its deadlines, the pace that would
save it, and the advice that says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from archiver.archive.forecast import Forecast, advice, forecast, pace_needed

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


# (name, deadlines in seconds from now, pace a second, backlog, loss, first loss, seconds to clear)
CASES = [
    ("empty backlog", [], 1.0, 0, 0, None, 0.0),
    ("all clear", [10, 20, 30], 1.0, 3, 0, None, 3.0),
    ("all clear, exactly on the deadline", [1, 2, 3], 1.0, 3, 0, None, 3.0),
    ("some lost: the lost cost no turn", [1, 1, 1, 100], 1.0, 4, 2, 1, 2.0),
    ("past deadlines are lost, the rest clear", [-5, -1, 10], 1.0, 3, 2, -5, 1.0),
    ("every one lost", [0.5, 0.5], 1.0, 2, 2, 0.5, 0.0),
    ("no budget at all", [10, 20], 0.0, 2, 2, 10, 0.0),
    ("a fast pace saves a dense cliff", [1] * 10, 10.0, 10, 0, None, 1.0),
]


@pytest.mark.parametrize(
    ("deadlines", "pace", "backlog", "loss", "first", "seconds"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_forecast_projects_backlog_loss_and_clear_time(
    deadlines: list[float], pace: float, backlog: int, loss: int, first: float | None, seconds: float
) -> None:
    result = forecast([at(d) for d in deadlines], NOW, pace)
    assert result.backlog == backlog
    assert result.projected_loss == loss
    assert result.first_loss_at == (None if first is None else at(first))
    assert result.seconds_to_clear == pytest.approx(seconds)
    assert result.clears_at == at(result.seconds_to_clear)


def test_forecast_as_dict_is_what_status_and_the_log_show() -> None:
    result = forecast([at(1), at(1), at(100)], NOW, 1.0)
    assert result.as_dict() == {
        "backlog": 3,
        "clears_at": "2026-12-01T02:00:02.000Z",
        "projected_loss": 1,
        "first_loss_at": "2026-12-01T02:00:01.000Z",
        "seconds_to_clear": 2.0,
        "per_minute": 60.0,
    }
    assert forecast([], NOW, 1.0).as_dict()["first_loss_at"] is None


# (name, deadlines in seconds from now, current pace, pace needed or None)
PACE_CASES = [
    ("nothing lost: no pace needed", [10, 20], 1.0, None),
    ("empty backlog", [], 1.0, None),
    ("only past deadlines: no pace saves them", [-10, -1], 1.0, None),
    ("three due in one second need three a second", [1, 1, 1], 1.0, 3.0),
    ("past ones are ignored, the savable ones counted", [-3, 2, 2, 2, 2], 1.0, 2.0),
    ("a slow budget", [60] * 20, 0.1, 20 / 60),
    ("from no budget at all", [10, 10], 0.0, 0.2),
]


@pytest.mark.parametrize(
    ("deadlines", "pace", "needed"),
    [case[1:] for case in PACE_CASES],
    ids=[case[0] for case in PACE_CASES],
)
def test_pace_needed_is_the_smallest_pace_that_loses_nothing_savable(
    deadlines: list[float], pace: float, needed: float | None
) -> None:
    found = pace_needed([at(d) for d in deadlines], NOW, pace)
    if needed is None:
        assert found is None
        return
    assert found is not None and found == pytest.approx(needed, rel=1e-6)
    savable = [at(d) for d in deadlines if d > 0]
    assert forecast(savable, NOW, found).projected_loss == 0
    assert forecast(savable, NOW, found * 0.99).projected_loss > 0


def test_advice_is_empty_when_nothing_is_lost() -> None:
    assert advice(forecast([at(10)], NOW, 1.0), None, 60.0) == ""


def test_advice_names_the_heavy_limit_that_saves_them_and_the_other_remedies() -> None:
    deadlines = [at(60)] * 30
    result = forecast(deadlines, NOW, 10 / 60)  # RingCentral's default: 10 a minute
    needed = pace_needed(deadlines, NOW, result.per_second)
    text = advice(result, needed, 60.0)
    assert result.projected_loss == 20
    assert "raise the app's Heavy limit from 10 to at least 30 per 60 s" in text
    assert "RC_ARCHIVER_DELETE_FROM_SOURCE" in text and "widen the schedule" in text


def test_advice_without_a_pace_that_helps_names_only_the_other_remedies() -> None:
    result = Forecast(2, NOW, 2, at(-10), 1.0, 0.0)
    text = advice(result, None, 60.0)
    assert "Heavy limit" not in text
    assert "RC_ARCHIVER_DELETE_FROM_SOURCE" in text and "widen the schedule" in text


def test_forecast_of_a_histogram_is_the_forecast_of_its_recordings() -> None:
    """The state hands the backlog over as (deadline, count) buckets (issue 22): the same projection,
    and pace_needed in one pass agrees with the bisection over every pace it could be."""
    import random

    from archiver.archive.forecast import forecast_histogram, pace_needed_histogram

    chance = random.Random(22)
    for _ in range(200):
        seconds = sorted(
            chance.choice([-3, 0, 1, 2, 2, 5, 8, 8, 8, 13, 40]) for _ in range(chance.randint(0, 30))
        )
        deadlines = [at(s) for s in seconds]
        buckets = [(at(s), seconds.count(s)) for s in sorted(set(seconds))]
        pace = chance.choice([0.0, 0.3, 1.0, 2.5, 10.0])
        grouped, each = forecast_histogram(buckets, NOW, pace), forecast(deadlines, NOW, pace)
        assert (grouped.backlog, grouped.projected_loss, grouped.first_loss_at) == (
            each.backlog,
            each.projected_loss,
            each.first_loss_at,
        )
        assert grouped.seconds_to_clear == pytest.approx(each.seconds_to_clear)  # n turns added at once
        needed = pace_needed_histogram(buckets, NOW, pace)
        assert needed == pace_needed(deadlines, NOW, pace)
        if needed is not None:
            savable = [(d, n) for d, n in buckets if d > NOW]
            assert forecast_histogram(savable, NOW, needed).projected_loss == 0
            assert forecast_histogram(savable, NOW, needed * 0.999).projected_loss > 0
