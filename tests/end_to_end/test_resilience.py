"""Rate budget and transient faults: the archiver stays inside the limits and survives every fault kind."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator, FaultOptions, GroupLimit
from tests.helpers import (
    SINCE,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    folder_env,
    run_subprocess,
    s3_objects,
    summary_of,
)

Run = Callable[..., tuple[int, list[dict[str, Any]]]]
HEAVY = ("call-log", "recording", "content")


def heavy_timeline(emu: Emulator) -> list[tuple[float, str, int]]:
    return [entry for entry in emu.stats.timeline if entry[1] in HEAVY]


def max_in_window(times: list[float], window: float) -> int:
    """The most requests that arrived within any `window` seconds."""
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.alone  # timing: a busy neighbour on 2 cores made it fail
def test_pacing_never_trips_the_limit_and_uses_it(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    limit, window = 10, 1.0
    emu = emulator_factory(
        data=DataOptions(seed=4, calls=40, days=1, bytes_per_second=20), heavy=GroupLimit(limit, window, 30.0)
    )
    env = folder_env(emu, tmp_path, RC_ARCHIVER_DOWNLOAD_CONCURRENCY="4")
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0, events[-3:]
    assert emu.stats.snapshot()["rate_limited"] == 0  # a 429 here would have cost a 30 s penalty
    # Under either reading of the media host's rate group (its own, or heavy's), each group's budget is
    # kept, and the one that binds is used whole.
    separate = emu.config.readings().media_group != "heavy"
    groups: dict[str, list[float]] = {}
    for t, route, _ in heavy_timeline(emu):
        groups.setdefault("media" if separate and route == "content" else "heavy", []).append(t)
    busiest = [max_in_window(times, window) for times in groups.values()]
    assert max(busiest) == limit  # the whole budget is used, never more


def test_a_429_stops_all_traffic_in_the_group_until_retry_after(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=5, calls=40, days=1, bytes_per_second=20),
        faults=FaultOptions(rates={"429": 0.15}, seed=8, retry_after=1),
        heavy=GroupLimit(100_000, 1.0, 1.0),  # a 1 s window and penalty: the hold without Retry-After
    )
    dest = tmp_path / "archive"
    env = folder_env(emu, tmp_path, RC_ARCHIVER_DOWNLOAD_CONCURRENCY="4")
    code, _ = run_archiver(env, "run", "--since", SINCE)
    assert code == 0
    timeline = heavy_timeline(emu)
    refusals = [t for t, _, status in timeline if status == 429]
    assert refusals
    for refused_at in refusals:
        # Requests already in flight when the 429 arrived may land just after it; nothing new is sent.
        during = [t for t, _, _ in timeline if refused_at + 0.15 < t < refused_at + 1.0]
        assert during == []
    assert_matches_ground_truth(emu, audio_by_recording(_folder(dest)))


def _folder(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".rc-archiver-staging" not in p.parts
    }


class DestinationWatcher:
    """Checks, while a run goes on, that every object that appears is whole and correct."""

    def __init__(self, bucket: str, truth: dict[str, dict[str, Any]]) -> None:
        self.bucket, self.truth = bucket, truth
        self.client = boto3.client("s3")
        self.checked: set[str] = set()
        self.bad: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            self.check()
            self.stop.wait(0.1)

    def check(self) -> None:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            for item in page.get("Contents", []):
                key = item["Key"]
                if key in self.checked or not key.endswith((".mp3", ".wav")):
                    continue
                self.checked.add(key)
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
                recording_id = key.rsplit("/", 1)[-1].rsplit(".", 1)[0]
                if hashlib.sha256(body).hexdigest() != self.truth[recording_id]["sha256"]:
                    self.bad.append(key)

    def __enter__(self) -> DestinationWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.check()


def test_ten_percent_faults_every_recording_archived_within_two_runs(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str
) -> None:
    share = 0.10 / 6
    emu = emulator_factory(
        data=DataOptions(seed=6, calls=60, days=2, bytes_per_second=200),
        faults=FaultOptions(
            rates={kind: share for kind in ("429", "500", "503", "reset", "truncate", "slow")},
            seed=12,
            slow_seconds=1.0,
            retry_after=1,
        ),
        fault_auth=True,
    )
    truth = {item["recordingId"]: item for item in emu.ground_truth()}
    # A read timeout shorter than the 'slow' fault turns those into timeouts, retried like the rest.
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}", RC_ARCHIVER_READ_TIMEOUT="0.5s")
    codes = []
    with DestinationWatcher(s3_bucket, truth) as watcher:
        for _ in range(2):
            result = run_subprocess(env, "run", "--since", SINCE)
            codes.append(result.returncode)
            if result.returncode == 0:
                break
    assert codes[-1] == 0, result.stdout[-3000:]
    assert watcher.bad == []  # at no moment an object whose bytes differ from what was served
    assert_matches_ground_truth(emu, audio_by_recording(s3_objects(s3_bucket)))
    faults = emu.stats.snapshot()["faults"]
    assert set(faults) == {"429", "500", "503", "reset", "truncate", "slow"}


def test_token_expiring_every_second_without_refresh_tokens(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=7, calls=50, days=1, bytes_per_second=20),
        heavy=GroupLimit(15, 1.0, 1.0),
        token_ttl=1,
        refresh_tokens=False,
    )
    dest = tmp_path / "archive"
    dest.mkdir()
    code, events = run_archiver(archiver_env(emu, tmp_path, dest.as_uri()), "run", "--since", SINCE)
    assert code == 0, events[-3:]
    assert emu.stats.snapshot()["grants"]["jwt-bearer"] >= 3  # logged in again, with the JWT
    assert_matches_ground_truth(emu, audio_by_recording(_folder(dest)))


def test_never_available_recordings_are_reported_after_max_attempts(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emu = emulator_factory(
        data=DataOptions(seed=8, calls=10, days=1, bytes_per_second=20), recording_delay=1e9
    )
    env = folder_env(emu, tmp_path, RC_ARCHIVER_MAX_ATTEMPTS="2")
    code, events = run_archiver(env, "run", "--since", SINCE)
    first = summary_of(events)
    assert code == 1 and first["pending"] == first["found"] > 0 and first["exhausted"] == 0
    code, events = run_archiver(env, "run", "--since", SINCE)
    second = summary_of(events)
    assert second["exhausted"] == first["found"] and second["pending"] == 0  # counted once, as exhausted
    assert all("CMN-102" in f["reason"] and f["attempts"] == 2 for f in second["failures"])
    downloads_so_far = emu.stats.snapshot()["requests"]["content 404"]
    code, events = run_archiver(env, "run", "--since", SINCE)
    # Reported in every run, but a run that did not attempt them (their slower retry is not due) is
    # not failed by them: exit 0; RcArchiverRecordingsExhausted is their alert.
    assert code == 0 and summary_of(events)["exhausted"] == first["found"]
    assert emu.stats.snapshot()["requests"]["content 404"] == downloads_so_far  # but not retried


def test_s3_client_uses_standard_retries_with_the_configured_attempts() -> None:
    from archiver.destinations.s3 import make_s3_client

    client = make_s3_client(max_attempts=7)
    # Standard mode retries throttling (SlowDown, 503) and transient errors with backoff.
    assert client.meta.config.retries == {"mode": "standard", "total_max_attempts": 7}
