"""The S3-hosted state replicated incrementally (RC_ARCHIVER_STATE_REPLICATION=incremental), against a
moto server: runs carried over, a kill -9 mid-run, the adoption of a single-object state (both ways),
the bytes a checkpoint sends growing with the changes, not with the file, and the chunks it reads too
(the WAL's changed pages, read at one committed point beside a busy writer)."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from structlog.testing import capture_logs

from archiver import state_forms
from archiver.destinations.s3 import make_s3_client
from archiver.emulator import Emulator
from archiver.remote_state import S3State
from archiver.state import StateStore
from archiver.state_changes import ChangeTracker
from archiver.state_forms import Incremental
from archiver.state_location import StateLocation
from archiver.state_replication import CHUNK_SIZE, Manifest, chunk_count
from tests.helpers import SINCE, archiver_env, events_of, run_subprocess, slow_emulator, start_run

KEY = "state/state.db"
ROWS = 6000  # of 2,000 random bytes each: a 12 MB state


def incremental_env(emulator: Emulator, tmp_path: Path, bucket: str, **extra: str) -> dict[str, str]:
    dest = tmp_path / "archive"
    dest.mkdir(exist_ok=True)
    return archiver_env(
        emulator,
        tmp_path,
        dest.as_uri(),
        RC_ARCHIVER_STATE_PATH=f"s3://{bucket}/{KEY}",
        RC_ARCHIVER_STATE_REPLICATION="incremental",
        **extra,
    )


def keys_of(bucket: str) -> set[str]:
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def manifest_of(bucket: str) -> Manifest:
    raw = boto3.client("s3").get_object(Bucket=bucket, Key=KEY + ".manifest")["Body"].read()
    return Manifest.from_bytes(raw)


def saved_state(bucket: str, tmp_path: Path, name: str) -> sqlite3.Connection:
    """The database the bucket holds now, assembled as a backup or the next run would."""
    target = tmp_path / name
    S3State(f"s3://{bucket}/{KEY}", make_s3_client(1), tmp_path / "reader").copy_to(target)
    return sqlite3.connect(target)


def archived_ids(db: sqlite3.Connection) -> set[str]:
    return {row[0] for row in db.execute("SELECT recording_id FROM recordings WHERE status = 'archived'")}


def test_an_incremental_state_is_carried_between_runs(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = incremental_env(emulator, tmp_path, s3_bucket)
    first = run_subprocess(env, "run", "--since", SINCE)
    assert first.returncode == 0, first.stdout[-2000:]
    keys = keys_of(s3_bucket)
    # A manifest and its chunks: no single object, and the lease released.
    assert KEY not in keys and KEY + ".lease" not in keys and KEY + ".manifest" in keys
    chunks = {k for k in keys if k.startswith(KEY + ".chunks/")}
    assert chunks and chunks == {f"{KEY}.chunks/{d}" for d in manifest_of(s3_bucket).chunks}
    downloads = emulator.stats.snapshot()["downloads"]
    (tmp_path / "spool").rename(tmp_path / "spool-old")  # a new pod: no local copy survives
    second = run_subprocess(env, "run", "--since", SINCE)
    assert second.returncode == 0, second.stdout[-2000:]
    events = events_of(second.stdout)
    summary = next(e for e in events if e["event"] == "run_summary")
    assert summary["archived"] == 0 and summary["failed"] == 0 and summary["exit_code"] == 0
    assert emulator.stats.snapshot()["downloads"] == downloads
    (downloaded,) = [e for e in events if e["event"] == "state_downloaded"]
    assert downloaded["form"] == "incremental"
    # A backup of an incremental state is the assembled database.
    backup = tmp_path / "backup.db"
    assert run_subprocess(env, "state", "backup", str(backup)).returncode == 0
    assert archived_ids(sqlite3.connect(backup)) == set(downloads)


def test_a_single_object_state_is_adopted_and_back(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = incremental_env(emulator, tmp_path, s3_bucket)
    snapshot_env = {**env, "RC_ARCHIVER_STATE_REPLICATION": "snapshot"}
    assert run_subprocess(snapshot_env, "run", "--since", SINCE).returncode == 0
    assert keys_of(s3_bucket) == {KEY}  # the old form: one object
    archived = archived_ids(saved_state(s3_bucket, tmp_path, "before.db"))
    downloads = emulator.stats.snapshot()["downloads"]

    adopted = run_subprocess(env, "run", "--since", SINCE)
    assert adopted.returncode == 0, adopted.stdout[-2000:]
    events = events_of(adopted.stdout)
    assert next(e for e in events if e["event"] == "state_downloaded")["form"] == "snapshot"
    assert any(e["event"] == "state_adopted" and e["replication"] == "incremental" for e in events)
    assert next(e for e in events if e["event"] == "run_summary")["archived"] == 0
    keys = keys_of(s3_bucket)
    assert KEY not in keys and KEY + ".manifest" in keys  # retired: a stale copy cannot be read later
    assert archived_ids(saved_state(s3_bucket, tmp_path, "adopted.db")) == archived

    back = run_subprocess(snapshot_env, "run", "--since", SINCE)  # and the way back
    assert back.returncode == 0, back.stdout[-2000:]
    assert any(
        e["event"] == "state_adopted" and e["replication"] == "snapshot" for e in events_of(back.stdout)
    )
    assert keys_of(s3_bucket) == {KEY}
    assert archived_ids(saved_state(s3_bucket, tmp_path, "back.db")) == archived
    assert emulator.stats.snapshot()["downloads"] == downloads  # nothing archived twice on the way


def test_after_a_kill_9_the_next_run_carries_on_from_what_was_replicated(
    emulator_factory: Any, tmp_path: Path, s3_bucket: str
) -> None:
    emu = slow_emulator(emulator_factory, calls=200)
    env = incremental_env(emu, tmp_path, s3_bucket, RC_ARCHIVER_STATE_CHECKPOINT_INTERVAL="300ms")
    proc = start_run(env)
    deadline = time.monotonic() + 60
    replicated: set[str] = set()
    n = 0
    while len(replicated) < 10:  # checkpoints have carried some archived recordings to the bucket
        assert proc.poll() is None and time.monotonic() < deadline, "the run ended before being killed"
        time.sleep(0.2)
        if KEY + ".manifest" in keys_of(s3_bucket):
            n += 1
            replicated = archived_ids(saved_state(s3_bucket, tmp_path, f"probe-{n}.db"))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    total = len(emu.stats.snapshot()["downloads"])
    at_kill = archived_ids(saved_state(s3_bucket, tmp_path, "at-kill.db"))
    assert at_kill >= replicated and len(at_kill) < 200  # killed mid-run, with a replicated state
    client = boto3.client("s3")
    # The killed run's lease is still live; 15 minutes later it has expired: that moment, made now.
    lease = json.loads(client.get_object(Bucket=s3_bucket, Key=KEY + ".lease")["Body"].read())
    client.put_object(
        Bucket=s3_bucket,
        Key=KEY + ".lease",
        Body=json.dumps({**lease, "expires_at": time.time() - 1}).encode(),
    )
    (tmp_path / "spool").rename(tmp_path / "spool-killed")  # a new pod
    before = emu.stats.snapshot()["downloads"]
    second = run_subprocess(env, "run", "--since", SINCE)
    assert second.returncode == 0, second.stdout[-2000:]
    after = emu.stats.snapshot()["downloads"]
    fetched_again = {rid for rid, count in after.items() if count > before.get(rid, 0)}
    assert not fetched_again & at_kill  # what was replicated is not archived again
    final = archived_ids(saved_state(s3_bucket, tmp_path, "final.db"))
    assert final >= at_kill and len(final) >= total
    # The killed run's chunks no manifest lists are collected by the run that carried on.
    chunks = {k.rsplit("/", 1)[1] for k in keys_of(s3_bucket) if k.startswith(KEY + ".chunks/")}
    assert chunks >= set(manifest_of(s3_bucket).chunks)
    assert KEY + ".lease" not in keys_of(s3_bucket)


def test_a_live_lease_makes_an_incremental_run_exit_5(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    lease = {"owner": "other-pod", "expires_at": time.time() + 600}
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=KEY + ".lease", Body=json.dumps(lease).encode())
    result = run_subprocess(incremental_env(emulator, tmp_path, s3_bucket), "run", "--since", SINCE)
    assert result.returncode == 5, result.stdout[-2000:]
    assert "lease" in result.stdout and emulator.stats.snapshot()["downloads"] == {}
    assert KEY + ".manifest" not in keys_of(s3_bucket)


def test_another_writers_manifest_is_detected_and_never_overwritten(
    emulator_factory: Any, tmp_path: Path, s3_bucket: str
) -> None:
    emu = slow_emulator(emulator_factory, calls=120)
    env = incremental_env(emu, tmp_path, s3_bucket, RC_ARCHIVER_STATE_CHECKPOINT_INTERVAL="300ms")
    proc = start_run(env)
    deadline = time.monotonic() + 60
    while KEY + ".manifest" not in keys_of(s3_bucket):  # the run has saved once
        assert proc.poll() is None and time.monotonic() < deadline, "the run never saved its state"
        time.sleep(0.1)
    other = Manifest(size=0, chunks=[]).to_bytes()
    boto3.client("s3").put_object(Bucket=s3_bucket, Key=KEY + ".manifest", Body=other)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 4, out[-2000:]
    events = events_of(out)
    errors = [e for e in events if e["level"] == "error" and e["event"] != "state_checkpoint_failed"]
    assert len(errors) == 1 and "changed by another writer" in errors[0]["error"]
    body = boto3.client("s3").get_object(Bucket=s3_bucket, Key=KEY + ".manifest")["Body"].read()
    assert body == other


def test_a_checkpoint_sends_the_changes_not_the_file(tmp_path: Path, s3_bucket: str) -> None:
    """A 12 MB state (moto takes ~13 ms a PUT: a bigger one only makes the test slower): the first
    checkpoint sends it all; a few changed rows send KBs; more changes, more; never the file again."""
    client = make_s3_client(4)
    remote = S3State(f"s3://{s3_bucket}/{KEY}", client, tmp_path / "cache", replication="incremental")
    remote.acquire()
    path = remote.download()  # a new state: the run's working copy, as held_state opens it
    store = StateStore(path)
    filler = sqlite3.connect(path, isolation_level=None)
    filler.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")
    with filler:  # one transaction
        filler.execute("BEGIN")
        filler.executemany("INSERT INTO filler (body) VALUES (?)", ((os.urandom(2000),) for _ in range(ROWS)))
    sent: list[int] = []

    def count(request: Any, **_: Any) -> None:
        if request.method == "PUT":  # the payload's own length, whatever the transfer encoding
            headers = request.headers
            sent.append(
                int(headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length") or 0)
            )

    client.meta.events.register("before-send.s3", count)

    def checkpoint_bytes(changed_rows: int) -> int:
        for row in range(1, changed_rows * 100, 100):  # rows spread over the file
            filler.execute("UPDATE filler SET body = ? WHERE id = ?", (os.urandom(2000), row))
        sent.clear()
        remote.checkpoint(store)
        return sum(sent)

    first = checkpoint_bytes(0)
    few = checkpoint_bytes(3)
    more = checkpoint_bytes(30)
    size = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    print(f"state {size / 1e6:.1f} MB sent {first / 1e6:.1f} MB; 3 rows: {few} B; 30 rows: {more} B")
    assert first > ROWS * 2000
    assert few < 300_000  # KBs: a few 64 KiB chunks and the manifest
    assert few * 5 < more < first / 2  # grows with the changes
    previous = set(manifest_of(s3_bucket).chunks)
    checkpoint_bytes(30)
    remote.release()  # collects the chunks neither of the last two manifests lists
    chunks = {k.rsplit("/", 1)[1] for k in keys_of(s3_bucket) if k.startswith(KEY + ".chunks/")}
    assert chunks == set(manifest_of(s3_bucket).chunks) | previous
    filler.close()
    copy = saved_state(s3_bucket, tmp_path, "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert copy.execute("SELECT count(*) FROM filler").fetchone()[0] == ROWS
    store.close()


def test_a_restore_keeps_the_incremental_form_and_the_replaced_state(
    emulator: Emulator, tmp_path: Path, s3_bucket: str
) -> None:
    env = incremental_env(emulator, tmp_path, s3_bucket)
    backup = tmp_path / "empty-backup.db"
    StateStore(backup).close()  # a valid state with nothing archived
    assert run_subprocess(env, "run", "--since", SINCE).returncode == 0
    archived = archived_ids(saved_state(s3_bucket, tmp_path, "before.db"))
    assert archived
    restored = run_subprocess(env, "state", "restore", str(backup))
    assert restored.returncode == 0, restored.stdout[-2000:]
    keys = keys_of(s3_bucket)
    assert KEY not in keys and KEY + ".manifest" in keys  # still the incremental form
    (kept,) = [k for k in keys if k.startswith(KEY + ".replaced-")]
    copy = tmp_path / "kept.db"
    copy.write_bytes(boto3.client("s3").get_object(Bucket=s3_bucket, Key=kept)["Body"].read())
    assert archived_ids(sqlite3.connect(copy)) == archived
    assert archived_ids(saved_state(s3_bucket, tmp_path, "after.db")) == set()


def test_garbage_collection_is_skipped_when_the_lease_is_no_longer_this_runs(
    tmp_path: Path, s3_bucket: str
) -> None:
    """A run whose lease expired (and was taken over) must not delete the chunks the new writer uploads."""
    remote = S3State(
        f"s3://{s3_bucket}/{KEY}", make_s3_client(1), tmp_path / "cache", replication="incremental"
    )
    remote.acquire()
    store = StateStore(remote.download())
    remote.checkpoint(store)
    client = boto3.client("s3")
    other = f"{KEY}.chunks/{'0' * 40}"
    client.put_object(Bucket=s3_bucket, Key=other, Body=b"another writer's chunk, not yet listed")
    client.put_object(
        Bucket=s3_bucket,
        Key=KEY + ".lease",
        Body=json.dumps({"owner": "other-pod", "expires_at": time.time() + 600}).encode(),
    )
    remote.release()
    store.close()
    assert other in keys_of(s3_bucket)
    remote = S3State(
        f"s3://{s3_bucket}/{KEY}", make_s3_client(1), tmp_path / "cache2", replication="incremental"
    )
    client.delete_object(Bucket=s3_bucket, Key=KEY + ".lease")
    remote.acquire()  # the rightful writer, with nothing changed: collects the unlisted chunk
    store = StateStore(remote.download())
    remote.checkpoint(store)
    remote.release()
    store.close()
    assert other not in keys_of(s3_bucket)


def test_a_backup_read_beside_a_run_starts_over_when_its_chunks_are_collected(
    tmp_path: Path, s3_bucket: str
) -> None:
    url = f"s3://{s3_bucket}/{KEY}"
    writer = S3State(url, make_s3_client(1), tmp_path / "writer", replication="incremental")
    writer.acquire()
    path = writer.download()
    store = StateStore(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # used from the hook below
    db.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")
    with db:
        db.execute("BEGIN")
        db.executemany("INSERT INTO filler (body) VALUES (?)", ((b"old" * 600,) for _ in range(3000)))
    writer.checkpoint(store)
    collected = threading.Event()

    def meanwhile(params: dict[str, Any], **_: Any) -> None:
        # The reader has the manifest and asks for its first chunk: a run rewrites every row, saves
        # twice and ends, collecting every chunk of the manifest the reader holds.
        if collected.is_set() or ".chunks/" not in params["url_path"]:
            return
        collected.set()
        db.execute("UPDATE filler SET body = ?", (b"new" * 600,))
        writer.checkpoint(store)
        writer.checkpoint(store)
        writer.release()

    client = make_s3_client(1)
    client.meta.events.register("before-call.s3.GetObject", meanwhile)
    target = tmp_path / "backup.db"
    S3State(url, client, tmp_path / "reader").copy_to(target)
    assert collected.is_set()
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT DISTINCT body FROM filler").fetchall() == [(b"new" * 600,)]
    db.close()
    store.close()


def _busy_writer(path: Path, stop: threading.Event) -> threading.Thread:
    """A run's writes, fast: rows inserted, changed and deleted, a rolled-back transaction now
    and then, a VACUUM (every page rewritten, the file shrunk) once in a while; `totals` always agrees
    with the table in every committed state."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB, gen INT)")
    db.execute("CREATE TABLE totals (rows INT, gens INT)")
    with db:
        db.execute("BEGIN")
        db.executemany("INSERT INTO t (body, gen) VALUES (?, 0)", ((os.urandom(2000),) for _ in range(2000)))
        db.execute("INSERT INTO totals VALUES (2000, 0)")
    rnd = random.Random(7)

    def write() -> None:
        gen = 0
        while not stop.is_set():
            gen += 1
            db.execute("BEGIN IMMEDIATE")
            for _ in range(rnd.randint(1, 4)):
                db.execute(
                    "INSERT INTO t (body, gen) VALUES (?, ?)", (os.urandom(rnd.randint(10, 3000)), gen)
                )
            for _ in range(rnd.randint(0, 3)):
                db.execute(
                    "UPDATE t SET gen = ?, body = ? WHERE id = ?",
                    (gen, os.urandom(500), rnd.randint(1, 2000 + gen * 3)),
                )
            if rnd.random() < 0.1:
                db.execute("DELETE FROM t WHERE id IN (SELECT id FROM t ORDER BY random() LIMIT 5)")
            db.execute("UPDATE totals SET rows = (SELECT count(*) FROM t), gens = (SELECT sum(gen) FROM t)")
            db.execute("ROLLBACK" if rnd.random() < 0.05 else "COMMIT")
            if rnd.random() < 0.005:
                db.execute("VACUUM")
            time.sleep(0.0005)  # (a run's writes have network waits between them)
        db.close()

    return threading.Thread(target=write, daemon=True)


def test_a_capture_beside_a_busy_writer_is_one_committed_point_with_every_changed_chunk(
    tmp_path: Path,
) -> None:
    """What makes a checkpoint cost what changed: the chunks the WAL names since the last push, read at
    one committed point while the writer goes on. Each capture is checked twice: the file built from the
    last one's chunks and this one's changed chunks is byte for byte the file read whole at this point,
    and it is a consistent database (the writer's totals agree with its table)."""
    path = tmp_path / "live.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    stop = threading.Event()
    thread = _busy_writer(path, stop)
    thread.start()
    tracker = ChangeTracker(path, CHUNK_SIZE)
    rebuilt: list[bytes] = []
    partial = 0
    try:
        for n in range(15):
            time.sleep(0.02 * (n % 4))
            capture = tracker.capture()
            count = chunk_count(capture.size)
            whole = [capture.read_chunk(i) for i in range(count)]
            if capture.changed is None:
                assert n == 0  # only the first capture, with nothing to count from, reads everything
                rebuilt = whole
            else:
                changed = (
                    set(capture.changed) | set(range(len(rebuilt), count)) | {count - 1, len(rebuilt) - 1}
                )
                rebuilt = [capture.read_chunk(i) if i in changed else rebuilt[i] for i in range(count)]
                partial += len(changed) < count
            assert rebuilt == whole, f"capture {n}: a changed chunk was not named"
            copy = tmp_path / f"copy-{n}.db"
            copy.write_bytes(b"".join(rebuilt))
            db = sqlite3.connect(copy)
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert (
                db.execute("SELECT rows, gens FROM totals").fetchone()
                == db.execute("SELECT count(*), sum(gen) FROM t").fetchone()
            )
            db.close()
            copy.unlink()
            tracker.settle()
    finally:
        stop.set()
        thread.join(timeout=30)
        tracker.close()
        writer.close()
    assert partial > 7  # most captures read only part of the file


def test_a_run_after_a_download_reads_only_the_chunks_it_changed(tmp_path: Path, s3_bucket: str) -> None:
    """The run's first checkpoint counts from the downloaded manifest: a few changed rows are a few
    chunks read, hashed and sent, not the file; and what it saved is the database as changed."""
    url = f"s3://{s3_bucket}/{KEY}"
    first = S3State(url, make_s3_client(4), tmp_path / "pod-1", replication="incremental")
    first.acquire()
    path = first.download()
    store = StateStore(path)
    filler = sqlite3.connect(path, isolation_level=None)
    filler.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")
    with filler:
        filler.execute("BEGIN")
        filler.executemany("INSERT INTO filler (body) VALUES (?)", ((os.urandom(2000),) for _ in range(ROWS)))
    filler.close()
    first.checkpoint(store)
    store.close()
    first.release()

    second = S3State(url, make_s3_client(4), tmp_path / "pod-2", replication="incremental")
    second.acquire()
    path = second.download()
    store = StateStore(path)
    db = sqlite3.connect(path, isolation_level=None)
    for row in (1, 3000, 5999):  # rows spread over the file
        db.execute("UPDATE filler SET body = ? WHERE id = ?", (b"changed" * 100, row))
    db.close()
    with capture_logs() as logs:
        second.checkpoint(store)
    (pushed,) = [e for e in logs if e["event"] == "state_chunks_pushed"]
    total = chunk_count(path.stat().st_size)
    assert total > 150 and pushed["read"] <= 12  # its changed chunks (and page 1's), of ~190
    store.close()
    second.release()
    copy = saved_state(s3_bucket, tmp_path, "copy.db")
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    changed = copy.execute("SELECT id FROM filler WHERE body = ?", (b"changed" * 100,)).fetchall()
    assert changed == [(1,), (3000,), (5999,)]


def test_a_database_whose_changes_cannot_be_counted_is_saved_from_a_whole_copy(
    tmp_path: Path, s3_bucket: str
) -> None:
    """Not in WAL mode (a rollback journal names no pages): the save says so and falls back to a
    consistent copy read whole, as before."""
    path = tmp_path / "rollback.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, body BLOB)")
    db.executemany("INSERT INTO t (body) VALUES (?)", ((os.urandom(1000),) for _ in range(500)))
    db.close()
    form = Incremental(StateLocation.parse(f"s3://{s3_bucket}/{KEY}"), make_s3_client(1))
    with capture_logs() as logs:
        form.save(path)
    form.close()
    assert any(e["event"] == "state_tracking_lost" for e in logs)
    assert not path.with_name("snapshot.db").exists()  # the copy is scratch
    copy = saved_state(s3_bucket, tmp_path, "copy.db")
    assert copy.execute("SELECT count(*) FROM t").fetchone()[0] == 500


def test_auto_saves_a_small_state_whole_then_in_chunks_for_good_once_it_is_large(
    tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default: one plain object while small (a state `aws s3 cp` can fetch), chunks past the
    threshold (a whole-file PUT a minute would grow with the state, and stop at 5 GB), and never back."""
    monkeypatch.setattr(state_forms, "AUTO_INCREMENTAL_FROM", 4 * 1024**2)  # 256 MiB in production
    url = f"s3://{s3_bucket}/{KEY}"
    remote = S3State(url, make_s3_client(4), tmp_path / "pod-1", replication="auto")
    remote.acquire()
    path = remote.download()
    store = StateStore(path)
    remote.checkpoint(store)
    assert keys_of(s3_bucket) == {KEY, KEY + ".lease"}  # small: one object
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, body BLOB)")
    with db:
        db.execute("BEGIN")
        db.executemany("INSERT INTO filler (body) VALUES (?)", ((os.urandom(2000),) for _ in range(ROWS)))
    remote.checkpoint(store)  # 12 MB: past the threshold
    keys = keys_of(s3_bucket)
    assert KEY not in keys and KEY + ".manifest" in keys
    store.close()
    remote.release()

    remote = S3State(url, make_s3_client(4), tmp_path / "pod-2", replication="auto")
    remote.acquire()
    path = remote.download()
    store = StateStore(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP TABLE filler")
    db.execute("VACUUM")  # small again
    pages, page_size = (
        db.execute("PRAGMA page_count").fetchone()[0],
        db.execute("PRAGMA page_size").fetchone()[0],
    )
    assert pages * page_size < 4 * 1024**2
    db.close()
    remote.checkpoint(store)
    store.close()
    remote.release()
    keys = keys_of(s3_bucket)
    assert KEY not in keys and KEY + ".manifest" in keys  # still chunks: no flapping
    copy = saved_state(s3_bucket, tmp_path, "copy.db")
    assert copy.execute("SELECT count(*) FROM sqlite_master WHERE name = 'filler'").fetchone()[0] == 0
