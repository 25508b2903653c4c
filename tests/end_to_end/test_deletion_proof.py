"""Deleting at the source only what is proven to be RingCentral's recording (issue 17), end to end
against the emulator over HTTP, a folder or the moto server, and the real CLI.

The invariant every test here comes back to: a recording RingCentral no longer holds because we deleted
it has an archive byte-identical with what RingCentral served, and nothing RingCentral still holds is
recorded as deleted.
"""

from __future__ import annotations

import hashlib
import json
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from archiver.destinations.local import LocalDestination
from archiver.emulator import DataOptions, Emulator, FaultOptions
from archiver.models import format_time
from tests.helpers import (
    ONE_RECORDING_EACH,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    folder_files,
    s3_objects,
    start_run,
    summary_of,
)

Run = Callable[..., tuple[int, list[dict[str, Any]]]]
Report = Callable[..., tuple[int, str]]
SINCE = format_time(datetime.now(UTC) - timedelta(days=3))
CAN_DELETE = "ReadCallLog ReadCallRecording EditCallLog"
DELETE = {"RC_ARCHIVER_DELETE_FROM_SOURCE": "true", "RC_ARCHIVER_DELETE_AFTER": "0s"}


def backlog(start: Callable[..., Emulator], calls: int, size: int = 512, **config: Any) -> Emulator:
    data = DataOptions(seed=33, calls=calls, days=2, fixed_size=size, **ONE_RECORDING_EACH)  # type: ignore[arg-type]
    return start(data=data, scope=CAN_DELETE, **config)


def folder(tmp_path: Path) -> Path:
    dest = tmp_path / "archive"
    dest.mkdir(exist_ok=True)
    return dest


def truth_of(emulator: Emulator) -> dict[str, dict[str, Any]]:
    return {item["recordingId"]: item for item in emulator.ground_truth()}


def assert_every_deletion_proven(emulator: Emulator, audio: dict[str, bytes]) -> None:
    """Every recording RingCentral deleted on our word has an archive identical with what it served."""
    truth = truth_of(emulator)
    for recording_id in emulator.stats.snapshot()["deleted"]:
        assert recording_id in audio, f"{recording_id} deleted at the source with no archive"
        assert hashlib.sha256(audio[recording_id]).hexdigest() == truth[recording_id]["sha256"], recording_id


def state_rows(tmp_path: Path) -> dict[str, sqlite3.Row]:
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    db.row_factory = sqlite3.Row
    return {r["recording_id"]: r for r in db.execute("SELECT * FROM recordings")}


def recorded_deleted(tmp_path: Path) -> set[str]:
    return {rid for rid, row in state_rows(tmp_path).items() if row["deleted_at"] is not None}


def manifest_lines(files: dict[str, bytes]) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for key in sorted(k for k in files if k.startswith("_manifests/")):
        lines += [json.loads(line) for line in files[key].decode().splitlines()[1:]]
    return lines


def delete_requests(emulator: Emulator) -> dict[str, int]:
    return {k: n for k, n in emulator.stats.snapshot()["requests"].items() if k.startswith("delete-")}


def test_damaged_archive_adopted_after_state_loss_loses_nothing_at_the_source_and_is_repaired(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, report: Report
) -> None:
    emulator = backlog(emulator_factory, 12)
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri())
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    # Six archived copies replaced by self-consistent damage: an HTML page, 0 bytes, the first half of
    # the audio; each with object metadata and a sidecar that agree with the damaged bytes.
    store = LocalDestination(dest.as_uri())
    files = folder_files(dest)
    sidecars = {
        json.loads(data)["recording_id"]: (key, json.loads(data))
        for key, data in files.items()
        if key.endswith(".json") and not key.startswith("_manifests/")
    }
    damaged = sorted(sidecars)[:6]
    html = b"<!DOCTYPE html><html><title>Sign in</title></html>"
    for n, recording_id in enumerate(damaged):
        sidecar_key, sidecar = sidecars[recording_id]
        audio = files[sidecar["key"]]
        body, content_type = [
            (html, "text/html"),
            (b"", "audio/mpeg"),
            (audio[: len(audio) // 2], "audio/mpeg"),
        ][n % 3]
        sha = hashlib.sha256(body).hexdigest()
        store.put(
            sidecar["key"],
            body,
            content_type=content_type,
            metadata={"recording-id": recording_id, "sha256": sha},
        )
        sidecar.update(size=len(body), sha256=sha, content_type=content_type)
        store.put(sidecar_key, json.dumps(sidecar).encode(), content_type="application/json")
    (tmp_path / "state" / "state.db").unlink()  # a lost state: the next run adopts what it finds
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    code, out = report(env, "status", "--json")
    # Adopted: the 8 whose type and size looked like a recording (HTML and empty ones were archived again).
    assert code == 0 and json.loads(out)["counts"]["unproven"] == 8

    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    forecast = next(e for e in events if e["event"] == "forecast")
    assert forecast["reproofs"] == 8
    assert code == 0
    assert_every_deletion_proven(emulator, audio_by_recording(folder_files(dest)))
    mismatched = {e["recording_id"] for e in events if e["event"] == "archive_reproof_mismatch"}
    assert mismatched == set(damaged[2::3])  # the half copies, whose type and size looked right
    assert not mismatched & set(emulator.stats.snapshot()["deleted"])
    # The next run archives them again (from RingCentral, which still holds them), then deletes them.
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0
    assert set(emulator.stats.snapshot()["deleted"]) == set(truth_of(emulator))
    assert_matches_ground_truth(emulator, audio_by_recording(folder_files(dest)))


def test_connection_delimited_cuts_are_never_archived_as_whole_recordings(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    faults = FaultOptions(rates={"truncate": 0.5}, seed=5, routes=frozenset({"content"}))
    emulator = backlog(emulator_factory, 30, size=40_000, content_framing="close", faults=faults)
    dest = folder(tmp_path)
    _, events = run_archiver(
        archiver_env(emulator, tmp_path, dest.as_uri(), **DELETE), "run", "--since", SINCE
    )
    requests = emulator.stats.snapshot()["requests"]
    assert requests.get("content 416", 0) > 0  # every body's end was asked for
    audio = audio_by_recording(folder_files(dest))
    truth = truth_of(emulator)
    for recording_id, data in audio.items():  # whatever was archived is whole
        assert hashlib.sha256(data).hexdigest() == truth[recording_id]["sha256"], recording_id
    assert_every_deletion_proven(emulator, audio)
    assert summary_of(events)["archived"] + summary_of(events)["failed"] + summary_of(events)["pending"] == 30


@pytest.mark.parametrize(
    ("configured", "why"),
    [
        (
            {"RC_ARCHIVER_S3_OBJECT_LOCK_MODE": "COMPLIANCE", "RC_ARCHIVER_S3_OBJECT_LOCK_DAYS": "3650"},
            "weaker",
        ),
        (
            {"RC_ARCHIVER_S3_OBJECT_LOCK_MODE": "GOVERNANCE", "RC_ARCHIVER_S3_OBJECT_LOCK_DAYS": "3650"},
            "less than",
        ),
    ],
)
def test_weaker_locks_are_never_deleted_under_stronger_settings(
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    run_archiver: Run,
    s3_bucket: str,
    configured: dict[str, str],
    why: str,
) -> None:
    emulator = backlog(emulator_factory, 6)
    bucket = f"{s3_bucket}-lock"
    boto3.client("s3").create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    weak = {"RC_ARCHIVER_S3_OBJECT_LOCK_MODE": "GOVERNANCE", "RC_ARCHIVER_S3_OBJECT_LOCK_DAYS": "1"}
    env = archiver_env(emulator, tmp_path, f"s3://{bucket}/o")
    assert run_archiver({**env, **weak}, "run", "--since", SINCE)[0] == 0
    code, events = run_archiver({**env, **configured, **DELETE}, "run", "--since", SINCE)
    skipped = [e["reason"] for e in events if e["event"] == "deletion_skipped"]
    assert code == 0 and len(skipped) == 6 and all(why in reason for reason in skipped), skipped
    assert emulator.stats.snapshot()["deleted"] == {} and delete_requests(emulator) == {}


def test_misrouted_deletes_record_nothing_stop_with_one_error_and_repair_still_works(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, report: Report
) -> None:
    emulator = backlog(emulator_factory, 8, delete_fault="misroute")
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri(), **DELETE)
    code, events = run_archiver(env, "run", "--since", SINCE)
    errors = [e for e in events if e["level"] == "error"]
    assert code == 0 and [e["event"] for e in errors] == ["deletion_misrouted"]
    assert recorded_deleted(tmp_path) == set() and summary_of(events)["deleted"] == 0
    assert delete_requests(emulator) == {"delete-recordings 404": 1}  # then it stopped
    assert emulator.stats.snapshot()["requests"]["content 206"] <= 8  # one look per recording at most
    # The archive can still be repaired: RingCentral holds them all.
    victim = sorted(audio_by_recording(folder_files(dest)))[0]
    key = json.loads(
        (dest / next(k for k in folder_files(dest) if k.endswith(f"{victim}.json"))).read_text()
    )["key"]
    (dest / key).unlink()
    code, out = report(env, "verify", "--since", SINCE, "--repair")
    assert code == 1 and f"missing  {victim}" in out
    code, events = run_archiver({**env, "RC_ARCHIVER_DELETE_FROM_SOURCE": "false"}, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["archived"] == 1
    assert_matches_ground_truth(emulator, audio_by_recording(folder_files(dest)))


def test_partial_answer_records_only_what_ringcentral_confirms(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emulator = backlog(emulator_factory, 10, delete_fault="partial")
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri(), **DELETE)
    code, events = run_archiver(env, "run", "--since", SINCE)
    deleted = set(emulator.stats.snapshot()["deleted"])
    assert code == 0 and len(deleted) == 5 and summary_of(events)["deleted"] == 5
    assert recorded_deleted(tmp_path) == deleted
    assert all(row["delete_intent"] is None for row in state_rows(tmp_path).values())
    emulator.state.config.delete_fault = ""
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0 and recorded_deleted(tmp_path) == set(truth_of(emulator))
    assert set(emulator.stats.snapshot()["deleted"]) == set(truth_of(emulator))


def test_lost_delete_reply_is_settled_by_the_next_run_with_one_look_each(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, report: Report
) -> None:
    emulator = backlog(emulator_factory, 6, delete_fault="lost")
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri(), **DELETE)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert len(emulator.stats.snapshot()["deleted"]) == 6  # RingCentral carried it out...
    assert recorded_deleted(tmp_path) == set()  # ...but nobody heard: nothing recorded
    intents = {rid for rid, row in state_rows(tmp_path).items() if row["delete_intent"]}
    assert intents == set(truth_of(emulator))
    journal = [line for line in manifest_lines(folder_files(dest)) if line["event"] == "delete_intent"]
    assert {line["recording_id"] for line in journal} == intents  # on record before the DELETE
    emulator.state.config.delete_fault = ""
    looks = emulator.stats.snapshot()["requests"].get("content 404", 0)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0 and recorded_deleted(tmp_path) == intents and summary_of(events)["deleted"] == 6
    assert emulator.stats.snapshot()["requests"].get("content 404", 0) - looks == 6
    assert delete_requests(emulator) == {"delete-recordings lost": 1}  # nothing sent again
    code, out = report(env, "verify", "--manifests")
    assert code == 0, out


@pytest.mark.parametrize("listing", ["kept", "dropped"])
def test_verify_checks_what_we_deleted_whether_or_not_the_call_log_lists_it(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, report: Report, listing: str
) -> None:
    emulator = backlog(emulator_factory, 6, deleted_listing=listing)
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri(), **DELETE)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == 6
    audio = {rid: key for key, rid in _audio_keys(dest).items()}
    removed, altered = sorted(audio)[:2]
    (dest / audio[removed]).unlink()
    data = (dest / audio[altered]).read_bytes()
    (dest / audio[altered]).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes
    code, out = report(env, "verify", "--sample", "100")  # no range: every deletion is checked
    assert code == 1
    assert f"missing  {removed}" in out and f"corrupt  {altered}" in out
    assert f"ONLY COPY {removed}" in out and f"ONLY COPY {altered}" in out
    code, out = report(env, "verify", "--since", SINCE, "--sample", "100", "--manifests")
    assert code == 1 and f"corrupt  {altered}" in out


def _audio_keys(dest: Path) -> dict[str, str]:
    """audio key -> recording id, from the sidecars."""
    out = {}
    for key, data in folder_files(dest).items():
        if key.endswith(".json") and not key.startswith("_manifests/"):
            sidecar = json.loads(data)
            out[sidecar["key"]] = sidecar["recording_id"]
    return out


def test_sigkill_mid_deletion_leaves_every_deletion_in_a_manifest(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, report: Report
) -> None:
    # Each DELETE takes 1.5 s: the kill lands long before the last of the three batches.
    slow = FaultOptions(rates={"slow": 1.0}, slow_seconds=1.5, routes=frozenset({"delete-recordings"}))
    emulator = backlog(emulator_factory, 250, size=256, faults=slow)
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri())
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    proc = start_run({**env, **DELETE})
    try:
        deadline = time.monotonic() + 60
        while not emulator.stats.snapshot()["deleted"] and time.monotonic() < deadline:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert 0 < len(emulator.stats.snapshot()["deleted"]) < 250
    emulator.set_faults(FaultOptions())
    code, _ = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0
    deleted = set(emulator.stats.snapshot()["deleted"])
    assert deleted == set(truth_of(emulator)) == recorded_deleted(tmp_path)
    listed = {
        line["recording_id"] for line in manifest_lines(folder_files(dest)) if line["event"] == "deleted"
    }
    assert listed == deleted
    code, out = report(env, "verify", "--manifests")
    assert code == 0, out


def test_delete_after_a_few_seconds_end_to_end(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    emulator = backlog(emulator_factory, 5)
    dest = folder(tmp_path)
    env = archiver_env(
        emulator,
        tmp_path,
        dest.as_uri(),
        RC_ARCHIVER_DELETE_FROM_SOURCE="true",
        RC_ARCHIVER_DELETE_AFTER="2s",
    )
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["archived"] == 5 and summary_of(events)["deleted"] == 0
    assert delete_requests(emulator) == {}
    time.sleep(5.2)
    code, events = run_archiver(env, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == 5
    assert set(emulator.stats.snapshot()["deleted"]) == set(truth_of(emulator))
    assert_every_deletion_proven(emulator, audio_by_recording(folder_files(dest)))


def test_s3_archive_deletes_only_proven_objects_with_their_sidecars_in_place(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run, s3_bucket: str
) -> None:
    emulator = backlog(emulator_factory, 4)
    env = archiver_env(emulator, tmp_path, f"s3://{s3_bucket}/o")
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    sidecar = sorted(k for k in s3_objects(s3_bucket, "o/") if k.endswith(".json") and "_manifests" not in k)[
        0
    ]
    boto3.client("s3").delete_object(Bucket=s3_bucket, Key=sidecar)
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    skipped = [e["reason"] for e in events if e["event"] == "deletion_skipped"]
    assert code == 0 and len(skipped) == 1 and "sidecar" in skipped[0] and "missing" in skipped[0]
    assert len(emulator.stats.snapshot()["deleted"]) == 3


def test_migrated_rows_whose_archive_is_a_sign_in_page_are_archived_again_never_deleted(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    """A state migrated from an older version (which archived any 200 body) carries that version's
    records: here six recordings whose archive, metadata, sidecar and state all agree on an HTML page."""
    emulator = backlog(emulator_factory, 10)
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri())
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    store = LocalDestination(dest.as_uri())
    html = b"<!DOCTYPE html><html><title>Sign in</title></html>"
    sha = hashlib.sha256(html).hexdigest()
    bad = sorted(audio_by_recording(folder_files(dest)))[:6]
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    for key, recording_id in _audio_keys(dest).items():
        if recording_id in bad:
            store.put(
                key, html, content_type="audio/mpeg", metadata={"recording-id": recording_id, "sha256": sha}
            )
            sidecar_key = key.rsplit(".", 1)[0] + ".json"
            sidecar = json.loads((dest / sidecar_key).read_text())
            sidecar.update(size=len(html), sha256=sha)
            store.put(sidecar_key, json.dumps(sidecar).encode(), content_type="application/json")
            db.execute(
                "UPDATE recordings SET size = ?, sha256 = ? WHERE recording_id = ?",
                (len(html), sha, recording_id),
            )
    db.execute("UPDATE recordings SET provenance = 'migrated' WHERE status = 'archived'")  # as schema 4 does
    db.commit()
    db.close()
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0
    assert not set(bad) & set(emulator.stats.snapshot()["deleted"])
    assert len(emulator.stats.snapshot()["deleted"]) == 4  # the sound ones, re-proved by a download
    assert {e["recording_id"] for e in events if e["event"] == "archive_reproof_mismatch"} == set(bad)
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["archived"] == 6 and summary_of(events)["deleted"] == 6
    assert_matches_ground_truth(emulator, audio_by_recording(folder_files(dest)))


def test_deletions_an_older_version_recorded_are_asked_about_and_undone_when_ringcentral_still_serves(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, run_archiver: Run
) -> None:
    """An older version recorded deletions without RingCentral's word (its retention shortcut); schema
    4 migrates them as unsettled. The next run asks about each: still served, so they are not deleted,
    and with deletion on they are then proven and deleted for real."""
    emulator = backlog(emulator_factory, 6)
    dest = folder(tmp_path)
    env = archiver_env(emulator, tmp_path, dest.as_uri())
    assert run_archiver(env, "run", "--since", SINCE)[0] == 0
    db = sqlite3.connect(tmp_path / "state" / "state.db")
    db.execute(  # what migration 4 leaves of the old version's "deleted (retention)"
        "UPDATE recordings SET deleted_at = '2026-11-29T00:00:00.000Z', deleted_by = 'migrated', "
        "delete_intent = 'migrated'"
    )
    db.commit()
    db.close()
    code, events = run_archiver(env, "run", "--since", SINCE)  # deletion off: only the settling
    assert code == 0 and recorded_deleted(tmp_path) == set()
    assert len([e for e in events if e["event"] == "recording_still_at_source"]) == 6
    code, events = run_archiver({**env, **DELETE}, "run", "--since", SINCE)
    assert code == 0 and summary_of(events)["deleted"] == 6
    assert recorded_deleted(tmp_path) == set(emulator.stats.snapshot()["deleted"]) == set(truth_of(emulator))
