"""Issue 12's promises end to end, against the emulator's readings of RingCentral: a permission or
non-token 401 stops the run with exit 3 after a handful of requests and at most two logins; empty and
HTML bodies are never archived; leg-only recordings are found whichever way the filter behaves; paging
links without /restapi/v1.0 are survived."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.emulator import DataOptions, Emulator, FaultOptions
from tests.helpers import (
    SINCE,
    Run,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    error_of,
    folder_env,
    folder_files,
    summary_of,
)


@pytest.mark.parametrize(
    ("knob", "error", "named"),
    [
        ("content_error", "login-required", "CMN-405"),
        ("content_error", "no-read-call-recording", "ReadCallRecording"),
        ("call_log_error", "no-full-company-call-log", "FullCompanyCallLog"),
    ],
)
def test_ringcentral_permission_or_non_token_401_stops_with_exit_3_and_two_logins_at_most(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    knob: str,
    error: str,
    named: str,
) -> None:
    emu = emulator_factory(data=DataOptions(seed=71, calls=30, days=1, bytes_per_second=20), **{knob: error})
    dest = tmp_path / "archive"
    dest.mkdir()
    code, events = run_archiver(archiver_env(emu, tmp_path, dest.as_uri()), "run", "--since", SINCE)
    assert code == 3
    line = error_of(events)
    assert named in line["error"] and line["fix"]
    assert summary_of(events)["outcome"] == "auth"
    stats = emu.stats.snapshot()
    assert sum(stats["grants"].values()) <= 2  # never a login per failure
    route = "content" if knob == "content_error" else "call-log"
    refused = sum(n for k, n in stats["requests"].items() if k.startswith(route) and not k.endswith(" 200"))
    assert refused <= 6  # a handful: the run stops instead of failing each recording in turn
    assert [k for k in folder_files(dest) if not k.startswith("_manifests/")] == []


def test_ringcentral_empty_and_html_bodies_are_never_archived(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=72, calls=40, days=1, bytes_per_second=20),
        faults=FaultOptions(rates={"empty": 0.2, "html": 0.2}, seed=3, routes=frozenset({"content"})),
    )
    dest = tmp_path / "archive"
    env = folder_env(emu, tmp_path)
    code, events = run_archiver(env, "run", "--since", SINCE)
    summary = summary_of(events)
    assert code == 1 and summary["failed"] > 0
    reasons = " ".join(f["reason"] for f in summary["failures"])
    assert "empty" in reasons and "text/html" in reasons
    truth = {item["recordingId"]: item for item in emu.ground_truth()}
    for recording_id, data in audio_by_recording(folder_files(dest)).items():
        assert len(data) == truth[recording_id]["size"] > 0  # whatever is archived is the recording
    assert not [k for k in folder_files(dest) if k.endswith(".bin")]
    emu.set_faults(FaultOptions())
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    assert_matches_ground_truth(emu, audio_by_recording(folder_files(dest)))


@pytest.mark.parametrize("top_level_only", [False, True], ids=["filter-sees-legs", "filter-top-level-only"])
def test_ringcentral_leg_only_recordings_are_archived_under_either_filter_reading(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, top_level_only: bool
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=73, calls=60, days=2, bytes_per_second=20, leg_only_fraction=0.2),
        filter_top_level_only=top_level_only,
    )
    dest = tmp_path / "archive"
    dest.mkdir()
    code, _ = run_archiver(archiver_env(emu, tmp_path, dest.as_uri()), "run", "--since", SINCE)
    assert code == 0
    audio = audio_by_recording(folder_files(dest))
    leg_only = {
        leg.recording.id
        for call in emu.state.data.calls
        for leg in call.legs
        if leg.recording is not None and (call.recording is None or call.recording.id != leg.recording.id)
    }
    assert leg_only and leg_only <= set(audio)
    assert_matches_ground_truth(emu, audio)


def test_ringcentral_next_page_links_without_the_api_version_are_survived(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, report: Callable[..., tuple[int, str]]
) -> None:
    # More than one page (1,000 records) in one day: the scan must reach page 2 although the link
    # RingCentral gives for it would answer 404.
    emu = emulator_factory(
        data=DataOptions(seed=74, calls=1100, days=0.9, bytes_per_second=1, unrecorded_fraction=0.0),
        next_page_style="no-version",
    )
    dest = tmp_path / "archive"
    dest.mkdir()
    code, out = report(archiver_env(emu, tmp_path, dest.as_uri()), "run", "--dry-run", "--since", SINCE)
    assert code == 0
    assert f"{len(emu.ground_truth())} recording(s) would be archived" in out
    requests_seen = emu.stats.snapshot()["requests"]
    assert requests_seen["call-log 200"] >= 3  # two days, the first of two pages
    assert not [k for k in requests_seen if k.startswith("other 404")]
