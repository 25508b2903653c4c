"""The shipped alert rules load, behave as their tests say, and point at runbooks that exist."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver.metrics import Metrics, StateFacts

ROOT = Path(__file__).parents[1]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROJECT_URL = "https://github.com/rc-archiver/rc-archiver"
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool (Debian: prometheus) missing; .ci/run installs it"
)


def rules() -> list[dict[str, Any]]:
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    return list(group["rules"])


def exported_names() -> set[str]:
    """Every series name the archiver can export, with every optional gauge present."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    metrics = Metrics()
    metrics.refresh(StateFacts({}, now, now, "ok", 0, now, 0, 0, 0, 1.0, 0), now)
    metrics.record_run({})
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
