"""`check`: calibration facts from the account, state problems as FAILED lines (never tracebacks,
nothing created), and each failure carrying the exit code `run` would use."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from archiver.check import check_state_file, render, run_checks, settings_failed
from archiver.emulator import Emulator, FaultOptions
from archiver.errors import SettingsError, StateError
from archiver.settings import Settings, load_settings


def settings_for(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **extra: str
) -> Settings:
    cfg = emulator.config
    archive = tmp_path / "archive"
    archive.mkdir(exist_ok=True)
    env = {
        "RC_SERVER_URL": emulator.url,
        "RC_CLIENT_ID": cfg.client_id,
        "RC_CLIENT_SECRET": cfg.client_secret,
        "RC_JWT": cfg.jwt,
        "RC_ARCHIVER_DESTINATION": archive.as_uri(),
        "RC_ARCHIVER_STATE_PATH": str(tmp_path / "state" / "state.db"),
        "RC_ARCHIVER_SPOOL_DIR": str(tmp_path / "spool"),
        **extra,
    }
    for name in list(os.environ):
        if name.startswith("RC_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def test_check_reports_the_account_facts(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_checks(settings_for(emulator, tmp_path, monkeypatch))
    assert report.ok and report.exit_code == 0, render(report)
    assert [line.name for line in report.checks] == [
        "settings", "state", "login", "scope", "call log", "recording", "destination"
    ]  # fmt: skip
    facts = json.loads(render(report, as_json=True))["facts"]
    assert facts["scope"] == "ReadCallLog ReadCallRecording"
    assert facts["heavy"] == {"limit": emulator.config.heavy.limit, "window": emulator.config.heavy.window}
    assert facts["media_group"] == "heavy" and facts["media"]["limit"] == emulator.config.heavy.limit
    assert (
        facts["unfiltered_only_recordings"] == 0
    )  # the emulator's filter sees legs (the optimistic reading)
    assert isinstance(facts["leg_only_recordings"], int)
    assert not (tmp_path / "state").exists()  # check creates nothing
    assert emulator.stats.snapshot()["revokes"] == 1


def test_check_bad_jwt_fails_login_with_exit_3(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = run_checks(settings_for(emulator, tmp_path, monkeypatch, RC_JWT="not-the-jwt"))
    lines = {line.name: line for line in report.checks}
    assert not lines["login"].ok and "RC_JWT" in lines["login"].fix
    assert not lines["call log"].ok and report.exit_code == 3
    document = json.loads(render(report, as_json=True))
    assert document["ok"] is False
    assert {k: document["checks"][2][k] for k in ("name", "ok")} == {"name": "login", "ok": False}


def test_check_settings_failure_exits_2() -> None:
    report = settings_failed(SettingsError("RC_ARCHIVER_DESTINATION: missing", "set it"))
    assert not report.ok and report.exit_code == 2


def test_check_state_file_missing_in_a_writable_folder_is_ok_and_created_nowhere(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "state.db"
    assert "will be created" in check_state_file(path)
    assert not (tmp_path / "a").exists()


def corrupt_state(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x TEXT)")
    db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
    db.commit()
    db.close()
    with path.open("r+b") as handle:  # the 100-byte header intact, the pages after it garbage
        handle.seek(4096)
        handle.write(b"\xff" * 8192)


def test_check_state_parent_is_a_file_fails_with_exit_4(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StateError, match="not a folder"):
        check_state_file(tmp_path / "file" / "state.db")


def test_check_state_corrupt_file_fails_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    corrupt_state(path)
    with pytest.raises(StateError, match="corrupt") as caught:
        check_state_file(path)
    assert "move it aside" in caught.value.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through read-only permissions")
def test_check_state_read_only_folder_fails(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(StateError, match="not writable"):
            check_state_file(folder / "state.db")
    finally:
        folder.chmod(0o700)


def test_check_state_problem_is_a_failed_line_with_exit_4(
    emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.db"
    corrupt_state(path)
    report = run_checks(settings_for(emulator, tmp_path, monkeypatch, RC_ARCHIVER_STATE_PATH=str(path)))
    state = next(line for line in report.checks if line.name == "state")
    assert not state.ok and state.exit_code == 4 and report.exit_code == 4


def test_check_a_non_audio_media_reply_is_ringcentral_unreachable_not_a_refused_login(
    emulator_factory: Callable[..., Emulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy's HTML page where the recording should be: exit 6 naming what answered, never exit 3."""
    html = FaultOptions(rates={"html": 1.0}, routes=frozenset({"content"}))
    emulator = emulator_factory(faults=html)
    report = run_checks(settings_for(emulator, tmp_path, monkeypatch))
    lines = {line.name: line for line in report.checks}
    assert lines["login"].ok and not lines["recording"].ok
    assert report.exit_code == 6 and "text/html" in lines["recording"].detail
    assert "proxy" in lines["recording"].fix
