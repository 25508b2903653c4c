"""Pacing under enforced limits: efficiency = ideal time / measured time, where ideal time is the Heavy
requests the workload needed / limit x window (the window scaled down to 2 s); and the 429s drawn.
The naive client runs the same workload beside ours. Target: >= 0.95 with zero 429s."""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from archiver.emulator import Emulator, GroupLimit
from bench.archiver_run import run_archiver
from bench.naive import naive_archive
from bench.workloads import PACED, PACED_LIMIT, PACED_WINDOW, Bench, Row, config, day_ago, heavy_requests

MEDIA_LIMIT = 20  # the media host's own budget per PACED_WINDOW (twice the Heavy one)


def recordings(bench: Bench) -> int:
    return 30 if bench.quick else 60


def efficiency(ideal: float, measured: float, requests: int) -> tuple[float, str]:
    return ideal / measured, f"{ideal / measured:.2f} ({requests} requests in {measured:.1f} s)"


def paced(bench: Bench) -> list[Row]:
    count = recordings(bench)
    with Emulator(config(1, count, PACED, bytes_per_second=20)) as emu:
        run = run_archiver(bench.env(emu, "pacing"), day_ago(), code=bench.code)
        used = heavy_requests(emu)
        value, shown = efficiency(used / PACED_LIMIT * PACED_WINDOW, run.summary["seconds"], used)
        refused = emu.stats.snapshot()["rate_limited"]
    naive = naive_paced(count)
    return [
        Row(
            f"pacing efficiency (ideal/measured), {count} recordings at {PACED_LIMIT} per 2 s",
            value,
            shown,
            ">= 0.95",
            efficiency(naive["ideal"], naive["seconds"], naive["requests"])[1],
        ),
        Row("429 responses", refused, str(refused), "0", str(naive["429s"])),
    ]


@functools.cache  # the naive client's side does not depend on whose archiver runs
def naive_paced(count: int) -> dict[str, Any]:
    with Emulator(config(1, count, PACED, bytes_per_second=20)) as emu:
        run = naive_archive(emu, day_ago())
        used = heavy_requests(emu)
        return {
            "ideal": used / PACED_LIMIT * PACED_WINDOW,
            "seconds": run.seconds,
            "requests": used,
            "429s": emu.stats.snapshot()["rate_limited"],
        }


def media_group(bench: Bench) -> list[Row]:
    """Content in a rate group of its own (a reading RingCentral's guide allows): ideal time is the
    slower of the two groups' needs, so a pacer that learns the media group uses its whole budget."""
    count = recordings(bench) * 2
    cfg = config(5, count, PACED, bytes_per_second=20)
    media = GroupLimit(MEDIA_LIMIT, PACED_WINDOW, PACED_WINDOW)
    with Emulator(replace(cfg, media_group="media", media=media)) as emu:
        env = bench.env(emu, "media", RC_ARCHIVER_DOWNLOAD_CONCURRENCY="4")
        run = run_archiver(env, day_ago(), code=bench.code)
        heavy = heavy_requests(emu, ("call-log", "recording"))
        content = heavy_requests(emu, ("content",))
        refused = emu.stats.snapshot()["rate_limited"]
    ideal = max(heavy / PACED_LIMIT, content / MEDIA_LIMIT) * PACED_WINDOW
    value, shown = efficiency(ideal, run.summary["seconds"], heavy + content)
    return [
        Row(
            f"pacing efficiency, content in its own rate group ({MEDIA_LIMIT} per 2 s), {count} recordings",
            value,
            f"{shown}, {refused} 429s",
            ">= 0.95, 0 429s",
        )
    ]
