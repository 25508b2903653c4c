"""A destination added without forking: a module outside the package, found through the entry-point
group `rc_archiver.destinations` (archiver/destinations/registry.py), used by the settings validator
and an archive pass exactly like the built-ins."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from archiver.archive.context import PassContext
from archiver.archive.run_pass import run_pass
from archiver.destinations import Destination, destination_for, registry
from archiver.emulator import DataOptions, Emulator
from archiver.errors import SettingsError
from archiver.settings import load_settings
from archiver.state import StateStore
from tests import memory_destination
from tests.helpers import (
    ONE_RECORDING_EACH,
    archiver_env,
    assert_matches_ground_truth,
    audio_by_recording,
    emulator_client,
)

_: Destination = memory_destination.MemoryDestination("mem://type-check")  # the Protocol, at type-check time


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The memory destination installed as a distribution would be: a dist-info with its entry point."""
    dist = tmp_path / "site" / "rc_archiver_memory-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rc-archiver-memory\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[rc_archiver.destinations]\nmem = tests.memory_destination:BACKEND\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    importlib.invalidate_caches()
    assert "mem" not in registry.SCHEMES
    registry.reload_plugins()
    yield
    registry.SCHEMES.pop("mem", None)
    memory_destination.STORES.clear()


def _settings_for(destination: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, emu: Emulator) -> None:
    for name in list(os.environ):
        if name.startswith("RC_"):
            monkeypatch.delenv(name)
    for name, value in archiver_env(emu, tmp_path, destination).items():
        monkeypatch.setenv(name, value)


def test_destination_plugin_is_found_by_its_scheme_and_checked_by_the_settings(
    installed_plugin: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert registry.backend_for("mem://archive").scheme == "mem"
    assert registry.url_problem("mem://") == "a memory destination is mem://name"
    problem = registry.url_problem("ftp://host/x")
    assert problem is not None and "file://, mem://, s3://" in problem
    monkeypatch.setenv("RC_ARCHIVER_DESTINATION", "mem://")
    with pytest.raises(SettingsError, match="RC_ARCHIVER_DESTINATION"):
        load_settings()


def test_destination_plugin_receives_a_whole_archive_pass(
    installed_plugin: None,
    emulator_factory: Callable[..., Emulator],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = DataOptions(seed=5, calls=12, days=1, bytes_per_second=10, **ONE_RECORDING_EACH)  # type: ignore[arg-type]
    emu = emulator_factory(data=data)
    _settings_for("mem://plugin-archive", tmp_path, monkeypatch, emu)
    settings = load_settings()
    state = StateStore(tmp_path / "state.db")
    spool = tmp_path / "spool"
    spool.mkdir()
    try:
        destination = destination_for(settings, journal=state)
        assert isinstance(destination, memory_destination.MemoryDestination)
        destination.probe()
        cancel = threading.Event()
        with requests.Session() as session:
            client = emulator_client(emu, session, cancel=cancel)
            ctx = PassContext(
                settings=settings,
                client=client,
                destination=destination,
                state=state,
                spool=spool,
                cancel=cancel,
            )
            state.begin_run("plugin-run")
            now = datetime.now(UTC)
            summary = run_pass(ctx, run_id="plugin-run", window=(now - timedelta(days=2), now))
    finally:
        state.close()
    assert summary.archived == len(emu.ground_truth()) > 0 and summary.failed == 0
    stored = {key: data for key, (data, _, _) in memory_destination.STORES["mem://plugin-archive"].items()}
    assert_matches_ground_truth(emu, audio_by_recording(stored))
