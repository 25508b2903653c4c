"""A failing world never costs a recording (issue 11), proven with real processes: `rc-archiver run`
as a subprocess, a TCP proxy cut mid-run in front of the moto server or the emulator, a spool on a
tiny tmpfs, a SIGKILL during a multipart upload. Each outage stops the run with its exit code and one
error line, charges no attempt; then a healthy run allowed no failure at all archives everything."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator, GroupLimit
from archiver.lifecycle import RunRequest, execute_run
from archiver.metrics import Metrics
from archiver.models import format_time
from archiver.settings import load_settings
from tests.helpers import archiver_env, events_of, folder_env, run_subprocess, s3_objects, start_run
from tests.proxy import TcpProxy

MB = 1024 * 1024
SINCE = format_time(datetime.now(UTC) - timedelta(days=6))  # the emulator's calls lie within 4 days
WAIT = 90.0  # bound on every wait for a run to get somewhere or to end


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def key_count(bucket: str, prefix: str) -> int:
    """Keys under PREFIX, listed only (the run may delete its probe object between a list and a get)."""
    return int(boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0))


def stored_files(bucket: str, prefix: str = "rec/") -> dict[str, bytes]:
    """The bucket's objects under PREFIX, keyed as the sidecars name them (relative to it)."""
    return {key.removeprefix(prefix): data for key, data in s3_objects(bucket, prefix).items()}


def audio_of(files: dict[str, bytes]) -> dict[str, bytes]:
    """recording id -> audio bytes, read through the sidecars (which name the audio's key)."""
    out = {}
    for key, data in files.items():
        if key.endswith(".json") and "_manifests/" not in key:
            sidecar = json.loads(data)
            out[sidecar["recording_id"]] = files[sidecar["key"]]
    return out


def assert_everything_archived(emulator: Emulator, files: dict[str, bytes]) -> None:
    truth = {item["recordingId"]: item for item in emulator.ground_truth()}
    audio = audio_of(files)
    assert set(audio) == set(truth)
    for recording_id, data in audio.items():
        assert hashlib.sha256(data).hexdigest() == truth[recording_id]["sha256"]


def attempts_charged(state: Path) -> int:
    with sqlite3.connect(state) as db:
        row = db.execute("SELECT COALESCE(MAX(attempts), 0), COUNT(*) FROM recordings").fetchone()
    assert row[1] > 0  # the scan did record the recordings
    return int(row[0])


def assert_one_clean_error(out: str, err: str, event: str, outcome: str, code: int) -> dict[str, Any]:
    assert "Traceback" not in out + err
    events = events_of(out)
    errors = [e for e in events if e["level"] == "error"]
    assert [e["event"] for e in errors] == [event], errors
    assert errors[0]["fix"] and errors[0]["exit_code"] == code
    summaries = [e for e in events if e["event"] == "run_summary"]
    assert len(summaries) == 1 and summaries[0]["outcome"] == outcome
    assert summaries[0]["exit_code"] == code and summaries[0]["failed"] == 0
    return errors[0]


def healthy_run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """A run that may not fail a single recording: it must archive everything the outage left."""
    result = run_subprocess({**env, "RC_ARCHIVER_MAX_ATTEMPTS": "1"}, "run", "--since", SINCE, timeout=WAIT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture
def paced_emulator(emulator_factory: Callable[..., Emulator]) -> Emulator:
    """About 108 small recordings at 25 downloads a second: a run lasts several seconds."""
    return emulator_factory(
        data=DataOptions(seed=31, calls=120, days=2, bytes_per_second=40), heavy=GroupLimit(25, 1.0, 1.0)
    )


@pytest.fixture
def s3_proxy(moto_server: str) -> Iterator[TcpProxy]:
    with TcpProxy.to_url(moto_server) as proxy:
        yield proxy


def test_outage_s3_cut_mid_run_stops_with_exit_4_and_charges_nothing(
    paced_emulator: Emulator, tmp_path: Path, s3_bucket: str, s3_proxy: TcpProxy
) -> None:
    emu = paced_emulator
    env = archiver_env(
        emu,
        tmp_path,
        f"s3://{s3_bucket}/rec",
        AWS_ENDPOINT_URL=s3_proxy.url,
        RC_ARCHIVER_S3_REQUEST_DEADLINE="3s",  # scaled down from 40 s, attempts as by default
    )
    proc = start_run(env)
    try:
        wait_until(lambda: key_count(s3_bucket, "rec/2") >= 20, proc, "some recordings were archived")
        s3_proxy.cut()
        cut_at = time.monotonic()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    # Each request fails within its deadline and a back-off (3 + 4 s) whichever retries are in flight,
    # and what the run writes on its way out fails at once: 2-4 s here, bounded every time.
    assert time.monotonic() - cut_at < 15
    assert proc.returncode == 4, out[-3000:] + err[-3000:]
    error = assert_one_clean_error(out, err, "destination_error", "destination", 4)
    assert "destination" in error["error"]
    assert attempts_charged(tmp_path / "state" / "state.db") == 0
    stored = len(audio_of(stored_files(s3_bucket)))
    assert 0 < stored < len(emu.ground_truth())  # the cut landed mid-run
    s3_proxy.restore()
    healthy_run(env)
    assert_everything_archived(emu, stored_files(s3_bucket))


def folder_files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and ".rc-archiver-staging" not in p.parts
    }


@pytest.mark.parametrize(
    ("fault", "extra", "within"),
    [
        # Connections refused: four downloads in flight, three of them fail their retries (about 20 s)
        # side by side; what is still in flight when the breaker trips is abandoned after a second.
        ("cut", {}, WAIT),
        # A hung RingCentral (connections open and silent): each request is given up once unanswered
        # for RC_ARCHIVER_REQUEST_DEADLINE (a second attempt always made), scaled down here to a 1 s read
        # timeout and a 2 s deadline; without the deadline this took over 50 s, at the defaults about
        # twelve minutes.
        ("freeze", {"RC_ARCHIVER_READ_TIMEOUT": "1s", "RC_ARCHIVER_REQUEST_DEADLINE": "2s"}, 20),
    ],
    ids=["dying", "frozen"],
)
def test_outage_ringcentral_failing_mid_run_stops_with_exit_6_and_charges_nothing(
    paced_emulator: Emulator, tmp_path: Path, fault: str, extra: dict[str, str], within: float
) -> None:
    emu = paced_emulator
    with TcpProxy.to_url(emu.url) as platform, TcpProxy.to_url(emu.media_url) as media:
        # The call log names its content URIs from these: every RingCentral request goes through a proxy.
        emu.state.platform_url, emu.state.media_url = platform.url, media.url
        dest = tmp_path / "archive"
        env = folder_env(
            emu,
            tmp_path,
            RC_SERVER_URL=platform.url,
            RC_ARCHIVER_DOWNLOAD_CONCURRENCY="4",
            RC_ARCHIVER_STOP_TIMEOUT="1s",
            **extra,
        )
        proc = start_run(env)
        try:
            wait_until(lambda: len(folder_files(dest)) >= 20, proc, "some recordings were archived")
            for proxy in (platform, media):
                getattr(proxy, fault)()
            started = time.monotonic()
            out, err = proc.communicate(timeout=WAIT)
        finally:
            proc.kill()
        stopped_after = time.monotonic() - started
        assert proc.returncode == 6, out[-3000:] + err[-3000:]
        error = assert_one_clean_error(out, err, "ring_central_unavailable", "outage", 6)
        assert "RingCentral" in error["error"]
        assert stopped_after < within, stopped_after  # not one retry series per recording
        assert attempts_charged(tmp_path / "state" / "state.db") == 0
        assert 0 < len(audio_of(folder_files(dest))) < len(emu.ground_truth())
        platform.restore()
        media.restore()
        healthy_run(env)
    assert_everything_archived(emu, folder_files(dest))


@pytest.fixture
def small_spool(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs: a real file system that runs out of space (ENOSPC), unmounted afterwards."""
    mount_point = tmp_path / "small-spool"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_outage_full_spool_disk_stops_with_exit_4_uploads_and_charges_nothing(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str, small_spool: Path
) -> None:
    emu = emulator_factory(data=DataOptions(seed=43, calls=10, days=1, fixed_size=3 * MB))
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}", RC_ARCHIVER_SPOOL_DIR=str(small_spool))
    result = run_subprocess(env, "run", "--since", SINCE, timeout=WAIT)
    assert result.returncode == 4, result.stdout[-3000:] + result.stderr[-3000:]
    error = assert_one_clean_error(result.stdout, result.stderr, "spool_error", "destination", 4)
    assert "RC_ARCHIVER_SPOOL_DIR" in error["fix"]
    assert s3_objects(s3_bucket) == {}  # not one partial recording, sidecar or manifest uploaded
    assert attempts_charged(tmp_path / "state" / "state.db") == 0
    assert list(small_spool.rglob("*.part")) == []  # what was half written is gone again
    healthy_run({**env, "RC_ARCHIVER_SPOOL_DIR": str(tmp_path / "spool")})
    assert_everything_archived(emu, s3_objects(s3_bucket))


def multipart_uploads(bucket: str) -> list[str]:
    """The ids of the multipart uploads under way in the bucket."""
    uploads = boto3.client("s3").list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [upload.get("UploadId", "") for upload in uploads]


def test_outage_sigkill_during_multipart_upload_leaves_nothing_once_the_next_run_ends(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str
) -> None:
    emu = emulator_factory(data=DataOptions(seed=47, calls=6, days=1, fixed_size=12 * MB))
    env = archiver_env(
        emu, tmp_path, f"s3://{s3_bucket}", RC_ARCHIVER_MULTIPART_THRESHOLD=str(5 * MB)
    )  # the minimum: each 12 MB recording goes up in three parts
    for _ in range(3):  # the kill may land just as the last upload completes: then kill again
        proc = start_run(env)
        try:
            wait_until(lambda: bool(multipart_uploads(s3_bucket)), proc, "a multipart upload started")
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=WAIT)
        finally:
            proc.kill()
        assert proc.returncode == -signal.SIGKILL
        if multipart_uploads(s3_bucket):
            break
    assert multipart_uploads(s3_bucket)  # the kill left one: parts stored (and billed)
    healthy_run(env)
    assert multipart_uploads(s3_bucket) == []
    assert_everything_archived(emu, s3_objects(s3_bucket))


def metric(path: Path, series: str) -> float:
    for line in path.read_text().splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    raise AssertionError(f"no {series} in {path}")


def test_metrics_file_that_cannot_be_written_is_one_warning_never_a_failed_run(
    emulator: Emulator, tmp_path: Path
) -> None:
    dest = tmp_path / "archive"
    dest.mkdir()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the metrics folder should be\\n")
    env = archiver_env(emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_METRICS_FILE=str(blocker / "rc.prom"))
    result = run_subprocess(env, "run", "--since", SINCE, timeout=WAIT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr
    events = events_of(result.stdout)
    warnings = [e["event"] for e in events if e["level"] in ("warning", "error")]
    assert warnings == ["metrics_file_not_written"]
    (summary,) = [e for e in events if e["event"] == "run_summary"]
    assert summary["outcome"] == "ok" and summary["archived"] == len(emulator.ground_truth())


def test_metrics_file_says_down_after_a_failed_run_and_up_after_the_next_good_one(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the daemon runs them: one process, one Metrics, one run after another."""
    dest = tmp_path / "archive"  # not there yet: the first run cannot use its destination
    metrics_file = tmp_path / "metrics" / "rc.prom"
    env = archiver_env(emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_METRICS_FILE=str(metrics_file))
    for name in [n for n in os.environ if n.startswith("RC_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings, metrics = load_settings(), Metrics()
    request = RunRequest(since=datetime.now(UTC) - timedelta(days=6))
    failed = execute_run(settings, request, threading.Event(), metrics)
    assert failed.exit_code == 4 and failed.outcome == "destination"
    assert metric(metrics_file, "rc_archiver_up") == 0
    dest.mkdir()
    healthy = execute_run(settings, request, threading.Event(), metrics)
    assert healthy.exit_code == 0 and healthy.archived == len(emulator.ground_truth())
    assert metric(metrics_file, "rc_archiver_up") == 1


def test_outage_s3_cut_during_multipart_uploads_still_exits_4_and_the_next_run_aborts_them(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str, s3_proxy: TcpProxy
) -> None:
    emu = emulator_factory(data=DataOptions(seed=59, calls=8, days=1, fixed_size=12 * MB))
    env = archiver_env(
        emu,
        tmp_path,
        f"s3://{s3_bucket}",
        AWS_ENDPOINT_URL=s3_proxy.url,
        RC_ARCHIVER_MULTIPART_THRESHOLD=str(5 * MB),
        RC_ARCHIVER_S3_MAX_ATTEMPTS="2",
        RC_ARCHIVER_STOP_TIMEOUT="1s",  # uploads still retrying when the breaker trips are abandoned
    )
    proc = start_run(env)
    try:
        wait_until(lambda: bool(multipart_uploads(s3_bucket)), proc, "a multipart upload started")
        s3_proxy.cut()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    assert proc.returncode == 4, out[-3000:] + err[-3000:]
    assert_one_clean_error(out, err, "destination_error", "destination", 4)
    assert attempts_charged(tmp_path / "state" / "state.db") == 0
    s3_proxy.restore()
    healthy_run(env)
    assert multipart_uploads(s3_bucket) == []
    assert_everything_archived(emu, s3_objects(s3_bucket))


def test_outage_s3_frozen_mid_run_stops_with_exit_4_within_its_deadlines_and_charges_nothing(
    paced_emulator: Emulator, tmp_path: Path, s3_bucket: str, s3_proxy: TcpProxy
) -> None:
    """A hung server (connections open and silent, as under SIGSTOP) fails each S3 request within its
    deadline plus a read timeout, and the breaker stops the run: with the defaults (40 s + 20 s) about a
    minute; scaled down here to 3 s + 1 s. Before the deadline, one frozen server took 11 minutes."""
    emu = paced_emulator
    env = archiver_env(
        emu,
        tmp_path,
        f"s3://{s3_bucket}/rec",
        AWS_ENDPOINT_URL=s3_proxy.url,
        RC_ARCHIVER_S3_CONNECT_TIMEOUT="1s",
        RC_ARCHIVER_S3_READ_TIMEOUT="1s",
        RC_ARCHIVER_S3_REQUEST_DEADLINE="3s",
        RC_ARCHIVER_STOP_TIMEOUT="1s",
    )
    proc = start_run(env)
    try:
        wait_until(lambda: key_count(s3_bucket, "rec/2") >= 20, proc, "some recordings were archived")
        s3_proxy.freeze()
        frozen_at = time.monotonic()
        out, err = proc.communicate(timeout=WAIT)
    finally:
        proc.kill()
    stopped_after = time.monotonic() - frozen_at
    assert proc.returncode == 4, out[-3000:] + err[-3000:]
    error = assert_one_clean_error(out, err, "destination_error", "destination", 4)
    assert "did not answer" in error["error"], error  # a timeout, named as one
    # Each request fails within deadline + a back-off + a read timeout (3 + 4 + 1 s here); the breaker
    # trips on three of them side by side; the run's last writes (manifest, index) fail at once, not
    # one deadline each. Without the deadline the same run took over 20 s; at the defaults, 11 minutes.
    assert stopped_after < 15, stopped_after
    assert attempts_charged(tmp_path / "state" / "state.db") == 0
    s3_proxy.restore()
    healthy_run(env)
    assert_everything_archived(emu, stored_files(s3_bucket))
