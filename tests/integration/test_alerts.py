"""The shipped alert rules load, behave as their tests say, and point at runbooks that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from archiver.metrics import Metrics, StateFacts
from archiver.models import RunSummary
from archiver.verify import VerifyResult
from archiver.verify_job import VerifyGauges
from tests.helpers import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROJECT_URL = "https://github.com/rc-archiver/rc-archiver"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) missing; .ci/run installs it"
)


def rules() -> list[dict[str, Any]]:
    """Every rule of every group (the verify rules have a group of their own)."""
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def exported_names() -> set[str]:
    """Every series name the archiver can export, with every optional gauge present."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    metrics = Metrics()
    metrics.refresh(StateFacts({}, now, now, "ok", 0, now, 0, 0, 0, 1.0, 0, last_progress=now), now)
    metrics.record_run(RunSummary("alerts"))
    verify = VerifyGauges(3600.0, now)  # the daemon's scheduled verify registers these
    metrics.registry.register(verify)
    verify.record(VerifyResult(), now)
    return {s.name for family in metrics.registry.collect() for s in family.samples}


def github_anchors(markdown: str) -> set[str]:
    headings = re.findall(r"^#+ (.+)$", markdown, re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@needs_promtool
def test_alerts_pass_promtool_check_rules() -> None:
    result = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_alerts_behave_as_promtool_test_rules_says() -> None:
    result = subprocess.run(
        ["promtool", "test", "rules", "alerts_test.yml"], cwd=RULES.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_each_have_for_severity_and_a_runbook_that_exists() -> None:
    anchors = github_anchors((ROOT / "deploy" / "README.md").read_text())
    for rule in rules():
        name = rule["alert"]
        assert "for" in rule, name
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == f"{PROJECT_URL}/blob/main/deploy/README.md", name
        assert anchor == name.lower() and anchor in anchors, f"{name}: no runbook heading for #{anchor}"


def test_alerts_cover_what_an_on_call_must_hear_about() -> None:
    expressions = {rule["alert"]: rule["expr"] for rule in rules()}
    assert any("absent(" in e for e in expressions.values()), "metrics absent must alert"
    for needed in (
        "rc_archiver_last_success_timestamp_seconds",
        "rc_archiver_recordings_at_risk",
        'status="exhausted"',
        'status="lost"',
        "rc_archiver_projected_loss_recordings",
        "rc_archiver_last_run_rate_limited",
        "rc_archiver_last_run_exit_code",
    ):
        assert any(needed in e for e in expressions.values()), needed


def test_alerts_use_only_metric_names_the_archiver_exports() -> None:
    exported = exported_names()
    for rule in rules():
        for name in re.findall(r"\brc_archiver_\w+", rule["expr"]):
            assert name in exported, f"{rule['alert']} uses {name}, which the archiver does not export"


def promtool_tests() -> list[dict[str, Any]]:
    return list(yaml.safe_load((RULES.parent / "alerts_test.yml").read_text())["tests"])


def test_alerts_every_rule_is_shown_firing_by_a_promtool_test() -> None:
    fired = {
        case["alertname"]
        for test in promtool_tests()
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert {rule["alert"] for rule in rules()} <= fired


@pytest.mark.parametrize(
    "scenario",
    [
        "a revoked JWT after a good night pages on the first failed run",
        "a dead daemon next to a healthy one is named, and only it",
        "two pushed deployments with their own instance labels do not hide each other",
        "a pushed instance that vanishes from the gateway is named by its job and instance",
        "one exhausted recording has its own alert, and no run is called failing for it",
        "a long backfill stopped by the time limit every night pages only once it stops progressing",
    ],
)
def test_alerts_the_per_instance_scenarios_are_tested(scenario: str) -> None:
    assert scenario in {test["name"] for test in promtool_tests()}


def test_alerts_are_per_instance_not_global() -> None:
    """Only "no archiver reports at all" may be global; everything else names its job and instance."""
    expressions = {rule["alert"]: rule["expr"] for rule in rules()}
    absents = re.findall(r"absent\(([^)]*)\)", " ".join(expressions.values()))
    assert absents == ["rc_archiver_up"], "absent() only for 'nothing at all'"
    assert "group by (job, instance)" in expressions["RcArchiverMetricsAbsent"]
    assert "group by (job, instance)" in expressions["RcArchiverNeverSucceeded"]
    assert re.search(r'\bup\{job="rc-archiver"\} == 0', expressions["RcArchiverDown"])
    assert "rc_archiver_last_run_timestamp_seconds" in expressions["RcArchiverNoRecentRun"]
    assert re.search(r"\brc_archiver_up == 0", expressions["RcArchiverLastRunFailed"])


def test_alerts_runs_failing_pages_on_the_first_auth_or_destination_failure() -> None:
    (rule,) = [r for r in rules() if r["alert"] == "RcArchiverRunsFailing"]
    assert ">= 3 <= 4" in rule["expr"] and rule["for"] == "5m"


def runbooks() -> dict[str, str]:
    text = (ROOT / "deploy" / "README.md").read_text()
    body = text.split("\n## Runbooks\n", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"^### (\S+)\n", body, flags=re.M)
    return dict(zip(sections[1::2], sections[2::2], strict=True))


def commands_in(markdown: str) -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", markdown, re.S)
    return [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_alerts_every_runbook_has_commands() -> None:
    books = runbooks()
    for rule in rules():
        assert rule["alert"] in books, rule["alert"]
        assert commands_in(books[rule["alert"]]), f"{rule['alert']}: a runbook without commands"


def test_alerts_runbook_commands_are_real_rc_archiver_commands() -> None:
    """Every `rc-archiver` command a runbook gives, run as the service or as a Job, parses (no made-up
    command or option), and none is a bare `rc-archiver` that a shell on the VM could not run."""
    from archiver.cli import build_parser

    parser = build_parser()
    seen = 0
    text = (ROOT / "deploy" / "README.md").read_text()
    for command in commands_in(text.split("\n## Runbooks\n", 1)[1]):
        for part in re.split(r"&&|;|\|", command):
            words = part.split()
            if not words or words[0] == "rc-archiver":
                assert not words, f"a bare rc-archiver command: {part}"
                continue
            if words[0] == "sudo":
                words = words[1:]
            if words and words[0] in ("rc-archiver-as-service", "deploy/kubernetes/rc-archiver-job"):
                parser.parse_args([word.replace("RECORDING_ID...", "1000417008") for word in words[1:]])
                seen += 1
    assert seen >= 10


def test_alerts_progress_counts_as_success_for_no_recent_success_and_never_succeeded() -> None:
    """A run stopped by its time limit after archiving some is progress (stopped, exit 0): the alerts
    that page on a missing success accept it (promtool's backfill scenario shows them quiet)."""
    expressions = {rule["alert"]: rule["expr"] for rule in rules()}
    for name in ("RcArchiverNoRecentSuccess", "RcArchiverNeverSucceeded"):
        assert "rc_archiver_last_progress_timestamp_seconds" in expressions[name], name
