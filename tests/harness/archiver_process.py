"""The archiver as a real process: its environment against an emulator, one-shot commands, a run or
the daemon in the background, and the daemon's log events and /metrics.

Every command can run another checkout's code (CODE: a source tree, e.g. a commit extracted with
`git archive`): the same installed `rc-archiver` entry point then imports `archiver` from CODE first.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.emulator import Emulator
from archiver.models import format_time
from tests.harness.servers import AWS_ENV, BIN

SINCE = format_time(datetime.now(UTC) - timedelta(days=6))  # the emulator's calls lie within 4 days
PASSED_ON = ("PYTHONPATH", "AWS_ENDPOINT_URL", *AWS_ENV)  # AWS_*: set by the S3 fixtures


def archiver_env(emulator: Emulator, folder: Path, destination: str, **extra: str) -> dict[str, str]:
    """The environment of an archiver run against the emulator (values as operators would set them),
    its state and spool kept in FOLDER."""
    cfg = emulator.config
    env = {
        "RC_SERVER_URL": emulator.url,
        "RC_CLIENT_ID": cfg.client_id,
        "RC_CLIENT_SECRET": cfg.client_secret,
        "RC_JWT": cfg.jwt,
        "RC_ARCHIVER_DESTINATION": destination,
        "RC_ARCHIVER_STATE_PATH": str(folder / "state" / "state.db"),
        "RC_ARCHIVER_SPOOL_DIR": str(folder / "spool"),
        "RC_ARCHIVER_RATE_HEAVY": f"{cfg.heavy.limit}/{cfg.heavy.window}s",
        "RC_ARCHIVER_RATE_AUTH": f"{cfg.auth.limit}/{cfg.auth.window}s",
        # The emulator's penalties are scaled down with its windows; RingCentral's is 60 s.
        "RC_ARCHIVER_RATE_PENALTY": f"{cfg.heavy.penalty}s",
        "RC_ARCHIVER_SETTLE_DELAY": "0s",
        "RC_ARCHIVER_LOG_FORMAT": "json",
    }
    env.update(extra)
    return env


def folder_env(emulator: Emulator, folder: Path, **extra: str) -> dict[str, str]:
    """archiver_env archiving into the folder FOLDER/archive (created)."""
    dest = folder / "archive"
    dest.mkdir(exist_ok=True)
    return archiver_env(emulator, folder, dest.as_uri(), **extra)


def process_env(env: dict[str, str], code: Path | None = None) -> dict[str, str]:
    """A child's whole environment: PATH, HOME, this process's PYTHONPATH (a suite run against another
    tree runs that tree's archiver) and AWS test variables, then ENV (which wins); PYTHONPATH=CODE when
    another checkout's code runs."""
    full = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    full.update({name: os.environ[name] for name in PASSED_ON if name in os.environ})
    full.update(env)
    if code is not None:
        full["PYTHONPATH"] = str(code)
    return full


def archiver_command(*args: str) -> list[str]:
    return [str(BIN / "rc-archiver"), *args]


def run_subprocess(
    env: dict[str, str], *args: str, timeout: float = 120, code: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`rc-archiver ARGS` as a real process, with only ENV and the AWS test variables."""
    return subprocess.run(
        archiver_command(*args), env=process_env(env, code), capture_output=True, text=True, timeout=timeout
    )


def start_run(env: dict[str, str], *args: str, **popen: Any) -> subprocess.Popen[str]:
    """`rc-archiver run --since SINCE ARGS` started in the background (the caller waits, with a timeout)."""
    return subprocess.Popen(
        archiver_command("run", "--since", SINCE, *args),
        env=process_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **popen,
    )


# -- the daemon ---------------------------------------------------------------------------------------
def read_lines(proc: subprocess.Popen[str], out: queue.Queue[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        out.put(line)


def wait_for_event(
    lines: queue.Queue[str], seen: list[dict[str, Any]], event: str, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line.startswith("{"):
            seen.append(json.loads(line))
            if seen[-1]["event"] == event:
                return
    raise AssertionError(f"no {event} event within {timeout} s; saw {[e['event'] for e in seen]}")


def start_daemon(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], queue.Queue[str]]:
    """`rc-archiver daemon ARGS` in the background; its stdout's lines arrive on the queue."""
    proc = subprocess.Popen(
        archiver_command("daemon", *args),
        env=process_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=read_lines, args=(proc, lines), daemon=True).start()
    return proc, lines


def stop_daemon(proc: subprocess.Popen[str]) -> int:
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
