"""`rc-archiver demo`: the emulator with a few hundred synthetic calls, archived into ./demo-archive.

The newcomer's first command: it shows the whole pipeline (JWT login, call log with legs, streamed
downloads, folder destination with sidecars, state file) without any RingCentral account.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, GroupLimit
from archiver.lifecycle import RunRequest, execute_run
from archiver.logs import configure_logging
from archiver.settings import load_settings

log = structlog.get_logger("archiver.demo")
DEMO_RATE = "3000/60s"  # a raised-limit account, so the demo takes seconds, not half an hour


def run_demo(calls: int, output: Path) -> int:
    output = output.resolve()
    output.mkdir(parents=True, exist_ok=True)
    limit, window = 3000, 60.0
    config = EmulatorConfig(
        data=DataOptions(calls=calls, days=2, bytes_per_second=400),
        heavy=GroupLimit(limit, window, window),
        record_delay=0,
        recording_delay=0,
    )
    with Emulator(config) as emulator:
        settings = load_settings(
            server_url=emulator.url,
            client_id=config.client_id,
            client_secret=config.client_secret,
            jwt=config.jwt,
            destination=output.as_uri(),
            state_path=str(output / ".state" / "state.db"),
            spool_dir=str(output / ".state" / "spool"),
            rate_heavy=DEMO_RATE,
            settle_delay="0s",
        )
        configure_logging(settings.log_level, settings.resolved_log_format())
        now = datetime.now(UTC)
        summary = execute_run(
            settings, RunRequest(since=now - timedelta(days=2, hours=1), until=now), threading.Event()
        )
    files = sorted(p for p in output.rglob("*") if p.is_file() and ".state" not in p.parts)
    print()
    print(f"Archived {summary.archived} recordings ({summary.bytes / 1e6:.1f} MB) into {output}")
    print(f"  already there: {summary.skipped}, failed: {summary.failed}, not ready: {summary.pending}")
    for path in files[:4]:
        print(f"  {path.relative_to(output)}")
    if len(files) > 4:
        print(f"  ... {len(files) - 4} more files (each recording has a .json sidecar)")
    print(f"State file: {output / '.state' / 'state.db'}  (run the demo again: nothing is archived twice)")
    return summary.exit_code
