"""Never give up on a recording RingCentral may still hold (issue 11): past RC_ARCHIVER_MAX_ATTEMPTS a
recording is `exhausted`, shown by `status` and the metrics, still retried every
RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL, and `rc-archiver retry` resets it at once. Real processes."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from archiver.emulator import DataOptions, Emulator
from archiver.models import format_time
from tests.conftest import archiver_env, run_subprocess

SINCE = format_time(datetime.now(UTC) - timedelta(days=6))
NEVER = 10.0**9  # a recording_delay no run outlives: every content request answers 404 CMN-102


def events_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def summary_of(text: str) -> dict[str, Any]:
    (summary,) = [e for e in events_of(text) if e["event"] == "run_summary"]
    return summary


def run(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = run_subprocess(env, *args, timeout=60)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    return result.returncode, result.stdout


def archived_ids(root: Path) -> set[str]:
    """Recording ids whose audio is in the folder with the sha256 its sidecar names."""
    out = set()
    for sidecar in root.rglob("*.json"):
        if "_manifests" in sidecar.parts or ".rc-archiver-staging" in sidecar.parts:
            continue
        doc = json.loads(sidecar.read_bytes())
        if hashlib.sha256((root / doc["key"]).read_bytes()).hexdigest() == doc["sha256"]:
            out.add(doc["recording_id"])
    return out


def metric(path: Path, series: str) -> float:
    for line in path.read_text().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in {path}")


@pytest.fixture
def unready(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """A dozen small recordings whose content RingCentral is not ready to serve (until told)."""
    return emulator_factory(
        data=DataOptions(seed=53, calls=14, days=1, bytes_per_second=40), recording_delay=NEVER
    )


def two_failing_nights(emu: Emulator, tmp_path: Path, interval: str) -> tuple[dict[str, str], set[str]]:
    """Two runs in which every download fails, with RC_ARCHIVER_MAX_ATTEMPTS=2: all exhausted."""
    dest = tmp_path / "archive"
    dest.mkdir(exist_ok=True)
    env = archiver_env(
        emu,
        tmp_path,
        dest.as_uri(),
        RC_ARCHIVER_MAX_ATTEMPTS="2",
        RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL=interval,
        RC_ARCHIVER_METRICS_FILE=str(tmp_path / "metrics" / "rc_archiver.prom"),
    )
    (tmp_path / "metrics").mkdir(exist_ok=True)
    emu.config.recording_delay = 0  # what RingCentral holds, once it serves it
    truth = {item["recordingId"] for item in emu.ground_truth()}
    emu.config.recording_delay = NEVER
    assert truth
    for night in (1, 2):
        code, out = run(env, "run", "--since", SINCE)
        assert code == 1, out[-2000:]  # each night attempted them, and they failed
        summary = summary_of(out)
        assert summary["archived"] == 0
        assert summary["exhausted"] == (len(truth) if night == 2 else 0)
        assert summary["exhausted_in_run"] == (len(truth) if night == 2 else 0)
    emu.config.recording_delay = 0  # RingCentral serves them from now on
    return env, truth


def test_exhausted_recordings_wait_and_status_metrics_and_retry_show_and_reset_them(
    unready: Emulator, tmp_path: Path
) -> None:
    env, truth = two_failing_nights(unready, tmp_path, "1h")
    # The third night is healthy, but the exhausted recordings wait for their retry interval.
    code, out = run(env, "run", "--since", SINCE)
    summary = summary_of(out)
    assert summary["archived"] == 0 and summary["exhausted"] == len(truth)
    assert {f["recording_id"] for f in summary["failures"]} == truth  # still reported, loudly
    # Nothing this run attempted failed: exit 0, a success for the alerts; the exhausted recordings
    # page through their own gauge (RcArchiverRecordingsExhausted), not through every later run.
    assert (code, summary["outcome"], summary["exhausted_in_run"]) == (0, "ok", 0)
    assert archived_ids(tmp_path / "archive") == set()
    metrics_file = tmp_path / "metrics" / "rc_archiver.prom"
    assert metric(metrics_file, 'rc_archiver_recordings{status="exhausted"}') == len(truth)
    assert metric(metrics_file, "rc_archiver_last_run_exit_code") == 0
    assert metric(metrics_file, "rc_archiver_last_success_timestamp_seconds") > 0
    # `status`, text and JSON: the count and the list, each with its reason.
    code, text = run(env, "status")
    assert code == 0
    assert f"{len(truth)} exhausted" in text
    assert all(recording_id in text for recording_id in truth)
    code, raw = run(env, "status", "--json")
    report = json.loads(raw)
    assert report["counts"]["exhausted"] == len(truth)
    assert {r["recording_id"] for r in report["exhausted"]} == truth
    assert all(r["attempts"] == 2 and "not available yet" in r["reason"] for r in report["exhausted"])
    # `retry ID` resets one: the next run archives exactly that one; `retry --all` the rest.
    first, *rest = sorted(truth)
    code, out = run(env, "retry", first)
    assert code == 0, out
    code, out = run(env, "run", "--since", SINCE)
    assert summary_of(out)["archived"] == 1 and summary_of(out)["exhausted"] == len(rest)
    assert archived_ids(tmp_path / "archive") == {first}
    code, out = run(env, "retry", "--all")
    assert code == 0, out
    code, out = run(env, "run", "--since", SINCE)
    assert code == 0, out[-2000:]
    assert summary_of(out)["archived"] == len(rest) and summary_of(out)["exhausted"] == 0
    assert archived_ids(tmp_path / "archive") == truth
    code, raw = run(env, "status", "--json")
    assert json.loads(raw)["counts"]["exhausted"] == 0
    assert metric(metrics_file, 'rc_archiver_recordings{status="exhausted"}') == 0


def test_exhausted_recordings_are_retried_once_their_interval_has_passed(
    unready: Emulator, tmp_path: Path
) -> None:
    env, truth = two_failing_nights(unready, tmp_path, "1s")
    time.sleep(1.5)  # the interval, from the second failure, has passed (a lower bound, not a timing)
    code, out = run(env, "run", "--since", SINCE)
    assert code == 0, out[-2000:]
    summary = summary_of(out)
    assert summary["archived"] == len(truth) and summary["exhausted"] == 0
    assert archived_ids(tmp_path / "archive") == truth


def test_exhausted_recordings_retried_after_their_interval_that_fail_again_make_the_run_incomplete(
    unready: Emulator, tmp_path: Path
) -> None:
    """The slow retry is an attempt of this run: failing again, it exits 1 as any failure does."""
    env, truth = two_failing_nights(unready, tmp_path, "1s")
    unready.config.recording_delay = NEVER  # RingCentral still does not serve them
    time.sleep(1.5)  # the interval, from the second failure, has passed (a lower bound, not a timing)
    code, out = run(env, "run", "--since", SINCE)
    summary = summary_of(out)
    assert (code, summary["outcome"]) == (1, "incomplete"), out[-2000:]
    assert summary["exhausted_in_run"] == summary["exhausted"] == len(truth)
