"""The deletion cliff: a backlog whose oldest recordings reach RingCentral's deletion deadline during the
run, at 10 Heavy requests per 2 s. Recordings lost by ours (deadline order), by the same request times
handed out in scan order (newest call first), and by the naive client. Target: zero lost by ours whenever
the backlog is clearable in time (this one is)."""

from __future__ import annotations

import functools
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from archiver.emulator import Emulator, EmulatorConfig
from archiver.models import format_time
from bench.archiver_run import run_archiver
from bench.naive import naive_archive
from bench.workloads import PACED, PACED_LIMIT, PACED_WINDOW, Bench, Row, config

CALLS, LEAD, SPREAD = 60, 5.0, 20.0  # deadlines from 5 s to 25 s after the start
ENDED = 3700.0  # the newest call started this long before the start (every call has ended)
LOOKBACK = timedelta(hours=3)


def cliff_config() -> EmulatorConfig:
    """A backlog whose deadlines (call start + retention) lie LEAD..LEAD+SPREAD seconds ahead: clearable
    in deadline order at 5 a second (about 12 s of work), not in scan order."""
    retention = float(round(ENDED + LEAD + SPREAD))  # the state keeps whole seconds
    anchor = time.time() + LEAD + SPREAD - retention
    cfg = config(4, CALLS, PACED, days=SPREAD / 86400, anchor=anchor, fixed_size=512)
    return replace(cfg, retention=retention)


def scenario(bench: Bench) -> list[Row]:
    cfg = cliff_config()
    with Emulator(cfg) as emu:
        extra = {"RC_ARCHIVER_SOURCE_RETENTION": f"{cfg.retention:.0f}s", "RC_ARCHIVER_LOOKBACK": "3h"}
        env = bench.env(emu, "cliff", **extra)
        # exit 1 when recordings are lost: that is the measurement
        run = run_archiver(env, datetime.now(UTC) - LOOKBACK, code=bench.code, check=False, timeout=120)
        deadlines = {item["recordingId"]: item["deadline"] for item in emu.ground_truth()}
        offset = time.time() - time.monotonic()
        slots = sorted(
            datetime.fromtimestamp(t + offset, UTC)
            for t, route, status in emu.stats.timeline
            if route == "content" and status == 200
        )
    newest_first = sorted(deadlines, key=lambda rec: deadlines[rec], reverse=True)
    scan_order = sum(
        1 for rec, at in zip(newest_first, slots, strict=False) if format_time(at) >= deadlines[rec]
    ) + max(0, len(newest_first) - len(slots))
    lost = run.summary["lost"]
    return [
        Row(
            f"cliff: recordings lost, {len(deadlines)} whose deadlines fall {LEAD:.0f}-{LEAD + SPREAD:.0f} s "
            f"into the run, at {PACED_LIMIT} per {PACED_WINDOW:.0f} s",
            lost,
            f"{lost} (deadline order, {run.summary['seconds']:.1f} s; scan order at the same pace: "
            f"{scan_order})",
            "0 when clearable",
            str(naive_lost()),
        )
    ]


@functools.cache  # the naive client's side does not depend on whose archiver runs
def naive_lost() -> int:
    with Emulator(cliff_config()) as emu:
        return naive_archive(emu, datetime.now(UTC) - LOOKBACK).lost
