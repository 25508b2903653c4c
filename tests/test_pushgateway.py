"""Batch-job metrics pushed to a real Prometheus Pushgateway, grouped by job and instance."""

from __future__ import annotations

import json
import urllib.request
import uuid
from datetime import UTC, datetime
from typing import Any

from structlog.testing import capture_logs

from archiver.metrics import Metrics, StateFacts
from tests.helpers import free_port

NOW = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)


def groups(gateway: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{gateway}/api/v1/metrics", timeout=5) as reply:  # noqa: S310 -- http only
        data: list[dict[str, Any]] = json.load(reply)["data"]
    return data


def group_of(gateway: str, instance: str) -> dict[str, Any]:
    (group,) = [g for g in groups(gateway) if g["labels"].get("instance") == instance]
    return group


def value(group: dict[str, Any], name: str) -> float:
    (metric,) = group[name]["metrics"]
    return float(metric["value"])


def run_metrics(archived: int, exit_code: int) -> Metrics:
    metrics = Metrics()
    outcome = "ok" if exit_code == 0 else "auth"
    metrics.refresh(
        StateFacts(
            counts={"archived": archived},
            last_success=NOW,
            last_run_end=NOW,
            last_run_outcome=outcome,
            last_run_exit_code=exit_code,
            oldest_pending=None,
            at_risk=0,
            backlog=0,
            projected_loss=0,
            seconds_to_clear=None,
            source_recordings_seen=archived,
        ),
        NOW,
    )
    metrics.record_run({"archived": archived, "seconds": 3.0, "outcome": outcome, "exit_code": exit_code})
    if exit_code >= 2:
        metrics.mark_failed()
    return metrics


def test_pushgateway_receives_the_run_grouped_by_job_and_instance(pushgateway: str) -> None:
    instance = f"pod-{uuid.uuid4().hex[:6]}"
    assert run_metrics(archived=7, exit_code=0).push(pushgateway, "rc-archiver", instance) is True
    group = group_of(pushgateway, instance)
    assert group["labels"] == {"job": "rc-archiver", "instance": instance}
    assert value(group, "rc_archiver_recordings_archived_total") == 7
    assert value(group, "rc_archiver_last_run_exit_code") == 0
    assert value(group, "rc_archiver_up") == 1


def test_pushgateway_the_next_run_replaces_the_group_whatever_its_outcome(pushgateway: str) -> None:
    instance = f"pod-{uuid.uuid4().hex[:6]}"
    assert run_metrics(archived=7, exit_code=0).push(pushgateway, "rc-archiver", instance)
    assert run_metrics(archived=0, exit_code=3).push(pushgateway, "rc-archiver", instance)
    group = group_of(pushgateway, instance)
    assert value(group, "rc_archiver_recordings_archived_total") == 0  # replaced, not added
    assert value(group, "rc_archiver_last_run_exit_code") == 3
    assert value(group, "rc_archiver_up") == 0


def test_pushgateway_unreachable_is_a_warning_and_false() -> None:
    with capture_logs() as logs:
        assert Metrics().push(f"http://127.0.0.1:{free_port()}", "rc-archiver", "x") is False
    (warning,) = [e for e in logs if e["event"] == "metrics_push_failed"]
    assert warning["log_level"] == "warning"
