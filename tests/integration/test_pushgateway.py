"""Batch-job metrics pushed to a real Prometheus Pushgateway, grouped by job and instance."""

from __future__ import annotations

import hashlib
import json
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from archiver.emulator import Emulator
from archiver.errors import SettingsError
from archiver.metrics import Metrics, StateFacts, push_instance
from archiver.models import RunSummary
from archiver.settings import load_settings
from tests.helpers import SINCE, folder_env, free_port, run_subprocess

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
    metrics.record_run(
        RunSummary("push", archived=archived, seconds=3.0, outcome=outcome, exit_code=exit_code)
    )
    if exit_code >= 2:
        metrics.mark_failed()
    return metrics


def pushing_env(
    emulator: Emulator, tmp_path: Path, pushgateway: str, tag: str
) -> tuple[dict[str, str], Path, str]:
    """An archiver that pushes to the Pushgateway under an instance of its own and writes a textfile."""
    prom = tmp_path / "textfile" / "rc-archiver.prom"
    instance = f"{tag}-{uuid.uuid4().hex[:6]}"
    env = folder_env(
        emulator,
        tmp_path,
        RC_ARCHIVER_PUSHGATEWAY_URL=pushgateway,
        RC_ARCHIVER_METRICS_INSTANCE=instance,
        RC_ARCHIVER_METRICS_FILE=str(prom),
    )
    return env, prom, instance


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


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("RC_", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
def test_pushgateway_instance_is_stable_per_deployment_and_unique_between_them() -> None:
    """The default instance: the same every run of one deployment (a CronJob's pod name is not), and
    different for another account or destination, even with the same state path (the shipped
    ConfigMap's); it shows neither the client id nor the bucket."""
    one = load_settings(
        client_id="client-a", destination="s3://bucket-a/rc", state_path="/var/lib/rc/state.db"
    )
    again = load_settings(client_id="client-a", destination="s3://bucket-a/rc", state_path="/elsewhere.db")
    other_place = load_settings(
        client_id="client-a", destination="s3://bucket-b/rc", state_path="/var/lib/rc/state.db"
    )
    other_account = load_settings(
        client_id="client-b", destination="s3://bucket-a/rc", state_path="/var/lib/rc/state.db"
    )
    instances = [push_instance(s) for s in (one, again, other_place, other_account)]
    assert instances[0] == instances[1]
    assert len(set(instances)) == 3
    for instance in instances:
        assert instance.startswith("rc-") and "client" not in instance and "bucket" not in instance


@pytest.mark.usefixtures("clean_env")
def test_pushgateway_instance_setting_wins_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_METRICS_INSTANCE", "archiver-eu")
    assert push_instance(load_settings(client_id="client-a", destination="s3://bucket-a/rc")) == "archiver-eu"
    monkeypatch.setenv("RC_ARCHIVER_METRICS_INSTANCE", "eu/1 prod")
    with pytest.raises(SettingsError, match="RC_ARCHIVER_METRICS_INSTANCE"):
        load_settings(client_id="client-a", destination="s3://bucket-a/rc")


@pytest.mark.usefixtures("clean_env")
def test_pushgateway_two_deployments_keep_their_own_groups(pushgateway: str) -> None:
    """Two deployments built from the shipped ConfigMap (same state path) no longer overwrite each other."""
    tag = uuid.uuid4().hex[:6]
    first = push_instance(load_settings(client_id=f"a-{tag}", destination="s3://bucket-a/rc"))
    second = push_instance(load_settings(client_id=f"b-{tag}", destination="s3://bucket-b/rc"))
    assert run_metrics(archived=7, exit_code=0).push(pushgateway, "rc-archiver", first)
    assert run_metrics(archived=0, exit_code=4).push(pushgateway, "rc-archiver", second)
    assert value(group_of(pushgateway, first), "rc_archiver_last_run_exit_code") == 0
    assert value(group_of(pushgateway, first), "rc_archiver_recordings_archived_total") == 7
    assert value(group_of(pushgateway, second), "rc_archiver_last_run_exit_code") == 4
    assert value(group_of(pushgateway, second), "rc_archiver_up") == 0


def test_pushgateway_a_real_run_pushes_as_its_deployment_instance(
    emulator: Emulator, tmp_path: Path, pushgateway: str
) -> None:
    """Two deployments of the shipped ConfigMap (the same state path) push as two groups."""
    env = folder_env(emulator, tmp_path, RC_ARCHIVER_PUSHGATEWAY_URL=pushgateway)
    named = f"deployment-{uuid.uuid4().hex[:6]}"
    assert (
        run_subprocess({**env, "RC_ARCHIVER_METRICS_INSTANCE": named}, "run", "--since", SINCE).returncode
        == 0
    )
    assert value(group_of(pushgateway, named), "rc_archiver_up") == 1
    other = {**env, "RC_ARCHIVER_DESTINATION": (tmp_path / "missing").as_uri()}  # exit 4, same state path
    assert run_subprocess(other, "run", "--since", SINCE).returncode == 4
    default = (
        "rc-"
        + hashlib.sha256(f"{env['RC_CLIENT_ID']}\n{other['RC_ARCHIVER_DESTINATION']}".encode()).hexdigest()[
            :12
        ]
    )
    assert value(group_of(pushgateway, default), "rc_archiver_last_run_exit_code") == 4
    assert value(group_of(pushgateway, named), "rc_archiver_last_run_exit_code") == 0  # not replaced


def textfile_values(path: Path) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in path.read_text().splitlines()
        if line and not line.startswith("#")
    }


def test_pushgateway_a_revoked_jwt_after_a_good_night_keeps_the_state_gauges(
    emulator: Emulator, tmp_path: Path, pushgateway: str
) -> None:
    """Real processes: a good run, then one whose login is refused (exit 3, before any lock or state
    write). Its textfile and its push still say when the last success was and what the state holds,
    so NoRecentSuccess, AtRisk and the rest keep working while runs fail."""
    env, prom, instance = pushing_env(emulator, tmp_path, pushgateway, "jwt")
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    good = textfile_values(prom)
    archived = len(emulator.ground_truth())
    assert good['rc_archiver_recordings{status="archived"}'] == archived > 0

    revoked = run_subprocess({**env, "RC_JWT": "revoked-jwt-assertion"}, "run", "--since", SINCE)
    assert revoked.returncode == 3, revoked.stdout[-2000:]
    failed = textfile_values(prom)
    group = group_of(pushgateway, instance)
    assert failed["rc_archiver_up"] == value(group, "rc_archiver_up") == 0
    assert failed["rc_archiver_last_run_exit_code"] == value(group, "rc_archiver_last_run_exit_code") == 3
    assert failed["rc_archiver_state_read"] == value(group, "rc_archiver_state_read") == 1
    success = "rc_archiver_last_success_timestamp_seconds"
    assert failed[success] == value(group, success) == good[success]
    by_status = {m["labels"]["status"]: float(m["value"]) for m in group["rc_archiver_recordings"]["metrics"]}
    assert by_status["archived"] == failed['rc_archiver_recordings{status="archived"}'] == archived
    for gauge in ("rc_archiver_recordings_at_risk", "rc_archiver_backlog_recordings"):
        assert failed[gauge] == value(group, gauge) == good[gauge]


def test_pushgateway_a_run_that_cannot_read_the_state_says_so(
    emulator: Emulator, tmp_path: Path, pushgateway: str
) -> None:
    """A corrupt state (exit 4): no state gauge can be read, and the report says so."""
    env, prom, instance = pushing_env(emulator, tmp_path, pushgateway, "corrupt")
    state = Path(env["RC_ARCHIVER_STATE_PATH"])
    state.parent.mkdir(parents=True)
    state.write_bytes(b"not a database" * 100)
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 4, result.stdout[-2000:]
    assert '"metrics_without_state"' in result.stdout
    values = textfile_values(prom)
    assert (
        values["rc_archiver_state_read"]
        == value(group_of(pushgateway, instance), "rc_archiver_state_read")
        == 0
    )
    assert not any(name.startswith("rc_archiver_recordings{") for name in values)
    assert "rc_archiver_last_success_timestamp_seconds" not in values
