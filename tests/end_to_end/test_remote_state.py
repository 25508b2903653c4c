"""The state kept in S3 (moto server; SeaweedFS too where conditional writes and a missing bucket are
the point): lease, download, checkpoints with If-Match, release, the bucket checked first."""

from __future__ import annotations

import json
import time
from pathlib import Path

import boto3
import pytest

from archiver.destinations.s3 import make_s3_client
from archiver.emulator import Emulator
from archiver.errors import StateError
from archiver.remote_state import S3State
from tests.helpers import SINCE, archiver_env, events_of, run_subprocess, slow_emulator, start_run
from tests.s3_servers import EACH_S3_SERVER


def s3_state_env(emulator: Emulator, tmp_path: Path, bucket: str) -> dict[str, str]:
    dest = tmp_path / "archive"
    dest.mkdir(exist_ok=True)
    return archiver_env(
        emulator, tmp_path, dest.as_uri(), RC_ARCHIVER_STATE_PATH=f"s3://{bucket}/state/state.db"
    )


def test_s3_state_is_used_and_carried_between_runs(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = s3_state_env(emulator, tmp_path, s3_bucket)
    first = run_subprocess(env, "run", "--since", SINCE)
    assert first.returncode == 0, first.stdout[-2000:]
    client = boto3.client("s3")
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert keys == {"state/state.db"}  # the lease is released
    downloads = emulator.stats.snapshot()["downloads"]
    (tmp_path / "spool").rename(tmp_path / "spool-old")  # a new pod: no local copy survives
    second = run_subprocess(env, "run", "--since", SINCE)
    assert second.returncode == 0
    summary = next(e for e in events_of(second.stdout) if e["event"] == "run_summary")
    # Nothing archived again (the days already scanned are not even re-read: the state came along).
    assert summary["archived"] == 0 and summary["failed"] == 0 and summary["exit_code"] == 0
    assert emulator.stats.snapshot()["downloads"] == downloads
    assert any(e["event"] == "state_downloaded" for e in events_of(second.stdout))
    # The first run ended cleanly: its saved state is not taken for a crash's (a whole-file quick_check).
    assert not any(e["event"] == "state_quick_check_ok" for e in events_of(second.stdout))


def test_a_live_lease_makes_a_second_run_exit_5(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    lease = {"owner": "other-pod", "expires_at": time.time() + 600}
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key="state/state.db.lease", Body=json.dumps(lease).encode()
    )
    result = run_subprocess(s3_state_env(emulator, tmp_path, s3_bucket), "run", "--since", SINCE)
    assert result.returncode == 5
    assert "lease" in result.stdout and emulator.stats.snapshot()["downloads"] == {}


def test_an_expired_lease_is_taken_over(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    lease = {"owner": "crashed-pod", "expires_at": time.time() - 1}
    boto3.client("s3").put_object(
        Bucket=s3_bucket, Key="state/state.db.lease", Body=json.dumps(lease).encode()
    )
    result = run_subprocess(s3_state_env(emulator, tmp_path, s3_bucket), "run", "--since", SINCE)
    assert result.returncode == 0
    assert any(e["event"] == "expired_lease_taken_over" for e in events_of(result.stdout))


@EACH_S3_SERVER
def test_a_concurrent_writer_is_detected_and_never_overwritten(
    emulator_factory: object, tmp_path: Path, s3_bucket: str
) -> None:
    emu = slow_emulator(emulator_factory, calls=120)  # type: ignore[arg-type]
    env = s3_state_env(emu, tmp_path, s3_bucket)
    proc = start_run(env)
    deadline = time.monotonic() + 60
    while not list((tmp_path / "spool").glob("s3-state-*/state.db")):  # the run has its working copy
        assert proc.poll() is None and time.monotonic() < deadline, "the run never opened its state"
        time.sleep(0.05)
    time.sleep(1.0)  # and archives a few
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="state/state.db", Body=b"another writer's state")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 4, out[-2000:]  # the state is unusable: exit 4, like a destination
    events = events_of(out)
    (error,) = [e for e in events if e["level"] == "error" and e["event"] != "state_checkpoint_failed"]
    assert "changed by another writer" in error["error"] and error["exit_code"] == 4
    body = client.get_object(Bucket=s3_bucket, Key="state/state.db")["Body"].read()
    assert body == b"another writer's state"
    # The summary still counts what the run uploaded (it once said `archived 0` after 271 uploads).
    (summary,) = [e for e in events if e["event"] == "run_summary"]
    uploaded = len([e for e in events if e["event"] == "recording_archived"])
    assert uploaded > 0 and summary["archived"] == uploaded
    assert summary["exit_code"] == 4 and summary["outcome"] == "destination"


@EACH_S3_SERVER
def test_a_mistyped_state_bucket_exits_4_and_is_never_created(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = s3_state_env(emulator, tmp_path, f"{s3_bucket}-typo")
    result = run_subprocess(env, "run", "--since", SINCE)
    assert result.returncode == 4, result.stdout[-2000:]
    (error,) = [e for e in events_of(result.stdout) if e["level"] == "error"]
    assert f"{s3_bucket}-typo does not exist" in error["error"]
    assert "RC_ARCHIVER_STATE_PATH" in error["error"] + error["fix"]
    names = {b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]}
    assert f"{s3_bucket}-typo" not in names
    assert emulator.stats.snapshot()["downloads"] == {}


def test_the_state_bucket_is_asked_with_a_head_before_any_put(s3_bucket: str, tmp_path: Path) -> None:
    """On a server that creates buckets on a first PUT, the HEAD is what stops a typo."""
    sent: list[str] = []
    client = make_s3_client(1)
    client.meta.events.register("before-send.s3", lambda event_name, **_: sent.append(event_name))
    remote = S3State(f"s3://{s3_bucket}-typo/state.db", client, tmp_path)
    with pytest.raises(StateError, match="does not exist"):
        remote.acquire()
    assert [name.rsplit(".", 1)[-1] for name in sent] == ["HeadBucket"]


def test_check_reports_the_s3_state(emulator: Emulator, tmp_path: Path, s3_bucket: str) -> None:
    env = s3_state_env(emulator, tmp_path, s3_bucket)
    result = run_subprocess(env, "check")
    assert result.returncode == 0, result.stdout
    state_line = next(line for line in result.stdout.splitlines() if line.split()[1] == "state")
    assert "will be created by the first run" in state_line


def test_an_s3_state_migration_keeps_its_snapshot_in_the_bucket(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    import sqlite3

    import archiver.state.schema as state_module

    old = tmp_path / "schema-2.db"
    db = sqlite3.connect(old)  # the state object as a schema-2 version of rc-archiver left it
    for statement in ";".join(str(m) for m in state_module.MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    db.commit()
    db.close()
    client = boto3.client("s3")
    client.put_object(Bucket=s3_bucket, Key="state/state.db", Body=old.read_bytes())
    result = run_subprocess(s3_state_env(emulator, tmp_path, s3_bucket), "run", "--since", SINCE)
    assert result.returncode == 0, result.stdout[-2000:]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    (kept,) = [k for k in keys if k.startswith("state/state.db.pre-migration-v2-")]
    assert client.get_object(Bucket=s3_bucket, Key=kept)["Body"].read().startswith(b"SQLite format 3")
    copy = tmp_path / "kept.db"
    copy.write_bytes(client.get_object(Bucket=s3_bucket, Key=kept)["Body"].read())
    assert sqlite3.connect(copy).execute("PRAGMA user_version").fetchone()[0] == 2
    assert any(e["event"] == "state_snapshot_kept" for e in events_of(result.stdout))


def test_a_failed_run_reports_the_s3_states_gauges_from_a_copy(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    """A revoked JWT after a good night, the state in S3: the failed run (exit 3) never takes the lease,
    yet its textfile carries the state's gauges, read from a copy of the object."""
    metrics = tmp_path / "metrics" / "rc-archiver.prom"
    env = {**s3_state_env(emulator, tmp_path, s3_bucket), "RC_ARCHIVER_METRICS_FILE": str(metrics)}
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    good = metrics.read_text()
    failed = run_subprocess({**env, "RC_JWT": "revoked-jwt"}, "run", "--since", SINCE)
    assert failed.returncode == 3
    text = metrics.read_text()
    assert "rc_archiver_state_read 1.0" in text and "rc_archiver_last_run_exit_code 3.0" in text
    for line in good.splitlines():
        if line.startswith(
            ("rc_archiver_last_success_timestamp_seconds", 'rc_archiver_recordings{status="archived"}')
        ):
            assert line in text, line


def test_describe_names_either_form_and_the_lease_holder_without_taking_anything(
    s3_bucket: str, tmp_path: Path
) -> None:
    """What `check` says of an S3-hosted state: saved in either form (the single object or the
    incremental form's manifest), who leases it, and a missing bucket as one StateError."""
    client = make_s3_client(1)
    url = f"s3://{s3_bucket}/s/state.db"
    looker = S3State(url, client, tmp_path)
    assert looker.describe() == f"{url} will be created by the first run"
    client.put_object(Bucket=s3_bucket, Key="s/state.db.manifest", Body=b"{}")
    assert looker.describe() == f"{url} exists"
    writer = S3State(url, client, tmp_path / "writer")
    writer.acquire()
    try:
        described = looker.describe()
        assert described.startswith(f"{url} exists; leased by ") and " s more" in described
    finally:
        writer.release()
    assert looker.describe() == f"{url} exists"  # released: nobody holds it
    assert client.list_objects_v2(Bucket=s3_bucket, Prefix="s/")["KeyCount"] == 1  # describe took nothing
    with pytest.raises(StateError, match="does not exist"):
        S3State(f"s3://{s3_bucket}-typo/state.db", client, tmp_path).describe()
