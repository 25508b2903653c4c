"""Crash safety with real processes: kill `rc-archiver run` anywhere, lose nothing, duplicate nothing."""

from __future__ import annotations

import json
import queue
import random
import resource
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.emulator import DataOptions, Emulator
from tests.helpers import (
    MB,
    SINCE,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    events_of,
    folder_env,
    integrity,
    read_lines,
    run_subprocess,
    s3_objects,
    slow_emulator,
    start_run,
    versioned_bucket,
    versions_per_key,
    wait_for_event,
)


@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_signals_at_random_moments_then_a_last_run_archives_each_recording_once(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str, kill_signal: signal.Signals
) -> None:
    emu = slow_emulator(emulator_factory)
    versioned_bucket(s3_bucket)
    # A low multipart threshold puts multipart uploads in flight when the kills land.
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}/rec", RC_ARCHIVER_MULTIPART_THRESHOLD=str(5 * MB))
    rng = random.Random(20261128 + kill_signal)
    for _ in range(8):
        proc = start_run(env)
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(kill_signal)
        proc.communicate(timeout=60)
        if kill_signal == signal.SIGTERM:
            assert proc.returncode in (0, 1, -signal.SIGTERM)  # -SIGTERM: it landed before start-up ended
        assert integrity(tmp_path / "state" / "state.db") == "ok"
    final = run_subprocess(env, "run", "--since", SINCE)
    assert final.returncode == 0, final.stdout[-3000:]
    assert integrity(tmp_path / "state" / "state.db") == "ok"
    objects = s3_objects(s3_bucket, "rec/")
    assert_matches_ground_truth(
        emu, audio_by_recording({k.removeprefix("rec/"): v for k, v in objects.items()})
    )
    versions = versions_per_key(s3_bucket)
    recordings = {k for k in objects if "/_manifests/" not in k}
    assert set(versions) == recordings  # no stray objects
    assert set(versions.values()) == {1}  # nothing uploaded twice: audio and sidecars alike
    assert boto3.client("s3").list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert list((tmp_path / "spool").rglob("*.part")) == []


RUN_START_WAIT = 60.0  # for the run's pass to begin (signal handlers are in place by then)


def signal_after_start(
    proc: subprocess.Popen[str], first: signal.Signals, then: signal.Signals | None = None
) -> list[dict[str, Any]]:
    """Send `first` once the run's pass has begun (its run_started event, then a second into the work;
    a fixed sleep let it land before the handlers under load), `then` right after; the run's events."""
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=read_lines, args=(proc, lines), daemon=True)
    reader.start()
    seen: list[dict[str, Any]] = []
    wait_for_event(lines, seen, "run_started", timeout=RUN_START_WAIT)
    time.sleep(1.0)
    proc.send_signal(first)
    if then is not None:
        time.sleep(0.05)
        proc.send_signal(then)
    proc.wait(timeout=30)
    reader.join(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()
    while not lines.empty():
        line = lines.get()
        if line.startswith("{"):
            seen.append(json.loads(line))
    return seen


def test_sigterm_stops_cleanly_and_the_next_run_finishes(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = slow_emulator(emulator_factory, calls=120)
    dest = tmp_path / "archive"
    env = folder_env(emu, tmp_path)
    proc = start_run(env)
    events = signal_after_start(proc, signal.SIGTERM)
    assert proc.returncode == 0  # stopped cleanly with nothing failed: what is left is pending
    names = [e["event"] for e in events]
    assert "stop_requested" in names
    summary = next(e for e in events if e["event"] == "run_summary")
    assert summary["stopped"] is True and summary["archived"] < len(emu.ground_truth())
    assert integrity(tmp_path / "state" / "state.db") == "ok"
    final = run_subprocess(env, "run", "--since", SINCE)
    assert final.returncode == 0
    files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert_matches_ground_truth(emu, audio_by_recording(files))


def test_a_second_signal_exits_at_once_without_corruption(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = slow_emulator(emulator_factory, calls=120)
    env = folder_env(emu, tmp_path, RC_ARCHIVER_STOP_TIMEOUT="60s")
    proc = start_run(env)
    started = time.monotonic()
    signal_after_start(proc, signal.SIGTERM, then=signal.SIGINT)
    assert time.monotonic() - started < 5 + RUN_START_WAIT
    # 130 from our handler; -SIGINT when it lands while the interpreter is already shutting down
    # (handlers are reset then); 0/1 when the run had just finished on its own.
    assert proc.returncode in (128 + signal.SIGINT, -signal.SIGINT, 0, 1)
    assert integrity(tmp_path / "state" / "state.db") == "ok"
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0


def test_two_runs_started_together_one_waits_or_exits_5(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    emu = slow_emulator(emulator_factory)
    env = folder_env(emu, tmp_path)
    first, second = start_run(env), start_run(env)
    outs = [p.communicate(timeout=120) for p in (first, second)]
    codes = sorted(p.returncode for p in (first, second))
    assert codes == [0, 5], outs
    held = next(
        events_of(out) for (out, _), p in zip(outs, (first, second), strict=True) if p.returncode == 5
    )
    assert [e["event"] for e in held if e["level"] == "error"] == ["lock_held"]
    assert held[-1]["event"] == "run_summary" and held[-1]["outcome"] == "lock"
    # With --wait-lock the second one waits its turn and then finds nothing left to do.
    first = start_run(env)
    time.sleep(0.5)
    waited = run_subprocess(env, "run", "--since", SINCE, "--wait-lock", "60")
    first.communicate(timeout=120)
    assert waited.returncode == 0
    summary = next(e for e in events_of(waited.stdout) if e["event"] == "run_summary")
    assert summary["archived"] == 0


def test_losing_the_state_file_costs_lookups_not_uploads(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    versioned_bucket(s3_bucket)
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}")
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    before = versions_per_key(s3_bucket)
    downloads = emulator.stats.snapshot()["downloads"]
    for leftover in (tmp_path / "state").iterdir():
        leftover.unlink()
    again = run_subprocess(env, "run", "--since", SINCE)
    assert again.returncode == 0
    summary = next(e for e in events_of(again.stdout) if e["event"] == "run_summary")
    assert summary["archived"] == 0 and summary["skipped"] == summary["found"] > 0
    # Nothing uploaded but index lines: the new state cannot know which index parts listed what was
    # found, so it lists it again (index readers take a recording's latest row: index_files.py).
    after = versions_per_key(s3_bucket)
    assert {k: v for k, v in after.items() if not k.startswith("_index/")} == {
        k: v for k, v in before.items() if not k.startswith("_index/")
    }
    assert emulator.stats.snapshot()["downloads"] == downloads  # nothing downloaded


def test_audio_without_its_sidecar_is_completed_without_a_download(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}")
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    client = boto3.client("s3")
    sidecar = next(k for k in s3_objects(s3_bucket) if k.endswith(".json"))
    client.delete_object(Bucket=s3_bucket, Key=sidecar)  # as if killed between audio and sidecar
    (tmp_path / "state" / "state.db").unlink()
    downloads = sum(emulator.stats.snapshot()["downloads"].values())
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    assert sum(emulator.stats.snapshot()["downloads"].values()) == downloads
    restored = json.loads(client.get_object(Bucket=s3_bucket, Key=sidecar)["Body"].read())
    assert restored["key"] == sidecar.replace(".json", "." + restored["key"].rsplit(".", 1)[-1])


def test_leftover_spool_files_are_removed_at_start(emulator: Emulator, tmp_path: Path) -> None:
    dest = tmp_path / "archive"
    env = folder_env(emulator, tmp_path)
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    (spool,) = (tmp_path / "spool").iterdir()
    (spool / "1234-abc.part").write_bytes(b"half a recording")
    (dest / ".rc-archiver-staging" / ".part-xyz").write_bytes(b"half an upload")
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 0
    assert list(spool.iterdir()) == []
    assert list((dest / ".rc-archiver-staging").iterdir()) == []
    assert any(e["event"] == "spool_cleared" for e in events_of(result.stdout))


def test_a_full_spool_disk_stops_the_run_with_exit_4_and_charges_no_recording(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, s3_bucket: str
) -> None:
    emu = emulator_factory(data=DataOptions(seed=41, calls=8, days=1, fixed_size=3 * MB))
    env = archiver_env(emu, tmp_path, f"s3://{s3_bucket}")

    def small_disk() -> None:  # in the child: files may not grow past 1 MB, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (MB, MB))

    proc = start_run(env, preexec_fn=small_disk)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 4, out[-2000:] + err[-2000:]
    assert "Traceback" not in out + err
    events = events_of(out)
    assert [e["event"] for e in events if e["level"] == "error"] == ["spool_error"]
    summary = events[-1]
    assert summary["event"] == "run_summary" and summary["outcome"] == "destination"
    assert summary["failed"] == 0 and "RC_ARCHIVER_SPOOL_DIR" in summary["fix"]
    assert s3_objects(s3_bucket) == {}  # nothing partial was uploaded
    db = tmp_path / "state" / "state.db"
    assert integrity(db) == "ok"
    assert sqlite3.connect(db).execute("SELECT MAX(attempts) FROM recordings").fetchone()[0] == 0
    # The disk has room again: one healthy run that may not fail once archives everything.
    healthy = run_subprocess({**env, "RC_ARCHIVER_MAX_ATTEMPTS": "1"}, "run", "--since", SINCE)
    assert healthy.returncode == 0, healthy.stdout[-2000:]
    assert_matches_ground_truth(emu, audio_by_recording(s3_objects(s3_bucket)))
