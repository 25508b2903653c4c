"""`check` while a run uploads into the same folder: the probe touches only its own file, so the run's
staged uploads survive and every recording is archived once."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from archiver.emulator import DataOptions, Emulator, FaultOptions
from tests.helpers import (
    assert_matches_ground_truth,
    audio_by_recording,
    events_of,
    folder_env,
    folder_files,
    run_subprocess,
    start_run,
)


def test_check_during_a_run_into_the_same_folder_leaves_the_run_whole(
    emulator_factory: Callable[..., Emulator], tmp_path: Path
) -> None:
    # Large-ish recordings, each answered after 0.3 s: uploads are in flight whenever a check probes
    # the folder. (Raised limits: the checks spend the same service user's budget.)
    emu = emulator_factory(
        data=DataOptions(seed=61, calls=50, days=1, fixed_size=400_000),
        faults=FaultOptions(rates={"slow": 1.0}, slow_seconds=0.3, routes=frozenset({"content"})),
    )
    dest = tmp_path / "archive"
    env = folder_env(emu, tmp_path)
    run = start_run(env)
    checks = []
    deadline = time.monotonic() + 60
    while run.poll() is None and time.monotonic() < deadline:
        check_env = {**env, "RC_ARCHIVER_STATE_PATH": str(tmp_path / "check-state" / "state.db")}
        checks.append(run_subprocess(check_env, "check").returncode)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, out[-3000:] + err[-2000:]
    assert len(checks) >= 2 and set(checks) == {0}, checks
    summary = next(e for e in events_of(out) if e["event"] == "run_summary")
    assert summary["failed"] == 0 and summary["archived"] == len(emu.ground_truth())
    assert_matches_ground_truth(emu, audio_by_recording(folder_files(dest)))
    assert list((dest / ".rc-archiver-staging").iterdir()) == []  # neither left anything behind
