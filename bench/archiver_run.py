"""`rc-archiver run` as a measured process: its run_summary, wall time, peak RSS and (on request) the S3
requests it sent, from this checkout or from another commit's code (CODE, e.g. bench/baseline.py's)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from archiver.models import format_time
from tests.harness.archiver_process import archiver_command, process_env

# The archiver's own main, with every botocore client counting the requests it sends (retries included)
# and the total written to $BENCH_S3_REQUESTS at exit. botocore's, not the archiver's, hooks: the same
# count for any commit's code.
COUNTING_S3 = """
import atexit, itertools, os, sys
import botocore.session
sent = itertools.count()
create_client = botocore.session.Session.create_client
def count(**_):
    next(sent)  # and return None: a value returned here would stand in for the response
def counted(self, *args, **kwargs):
    client = create_client(self, *args, **kwargs)
    client.meta.events.register("before-send.s3", count)
    return client
botocore.session.Session.create_client = counted
atexit.register(lambda: open(os.environ["BENCH_S3_REQUESTS"], "w").write(str(next(sent))))
from archiver.cli import main
sys.exit(main())
"""


@dataclass(frozen=True)
class Measured:
    summary: dict[str, Any]  # the run_summary event
    returncode: int
    wall: float  # seconds, process start to exit
    peak_rss: int  # bytes (VmHWM)
    s3_requests: int  # 0 unless counted


def run_archiver(
    env: dict[str, str],
    since: datetime,
    *,
    code: Path | None = None,
    count_s3: bool = False,
    check: bool = True,
    timeout: float = 1800,
) -> Measured:
    """Run `rc-archiver run --since SINCE` with ENV; CHECK: exit 0 or raise with its output."""
    args = ("run", "--since", format_time(since))
    env = {**env, "RC_ARCHIVER_LOG_LEVEL": "info"}  # the run_summary line is an info event
    with tempfile.TemporaryDirectory(prefix="rc-bench-count-") as scratch:
        count_file = Path(scratch) / "s3-requests"
        if count_s3:
            # -P: the script's folder (here the working directory) must not shadow CODE's archiver
            command = [sys.executable, "-P", "-c", COUNTING_S3, *args]
            env["BENCH_S3_REQUESTS"] = str(count_file)
        else:
            command = archiver_command(*args)
        started = time.monotonic()
        proc = subprocess.Popen(
            command, env=process_env(env, code), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        peak = _PeakRss(proc.pid)
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        wall = time.monotonic() - started
        peak.stop()
        sent = int(count_file.read_text()) if count_s3 and count_file.exists() else 0
    summary = next((json.loads(line) for line in out.splitlines() if '"run_summary"' in line), None)
    if summary is None or (check and proc.returncode != 0):
        raise RuntimeError(f"archiver exited {proc.returncode}: {out[-2000:]}{err[-2000:]}")
    return Measured(summary, proc.returncode, wall, peak.bytes, sent)


class _PeakRss:
    """The process's peak resident set (VmHWM), read from /proc while it runs."""

    def __init__(self, pid: int) -> None:
        self.bytes = 0
        self._status = Path(f"/proc/{pid}/status")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                for line in self._status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.bytes = max(self.bytes, int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                if not self._status.exists():
                    return
            time.sleep(0.05)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
