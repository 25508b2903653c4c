"""Memory: the peak RSS of the archiver process archiving one big recording to moto (target: under
100 MB), and archiving few and many small recordings in one run to a folder (memory must not grow with
the count: target the larger within 1.2x the smaller, and under 120 MB)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from archiver.emulator import Emulator
from bench.archiver_run import run_archiver
from bench.workloads import CONCURRENT, Bench, Row, config, day_ago
from tests.harness.servers import create_bucket, s3_env

MB = 1024 * 1024


def one_big_recording(bench: Bench) -> list[Row]:
    size = (100 if bench.quick else 1024) * MB
    with Emulator(config(3, 1, days=0.1, fixed_size=size)) as emu:
        destination = f"s3://{create_bucket(bench.moto, 'bench')}/mem"
        run = run_archiver(
            bench.env(emu, "mem", destination, **s3_env(bench.moto)), day_ago(), code=bench.code
        )
    if run.summary["bytes"] != size:
        raise RuntimeError(f"archived {run.summary['bytes']} bytes, expected {size}")
    peak = run.peak_rss / 1e6
    return [
        Row(
            f"peak RSS archiving one {size // MB} MB recording to moto",
            peak,
            f"{peak:.0f} MB ({size / 1e6 / run.summary['seconds']:.0f} MB/s)",
            "< 100 MB",
        )
    ]


def flat(bench: Bench) -> list[Row]:
    counts = (1_000, 5_000) if bench.quick else (5_000, 50_000)
    peaks = []
    for count in counts:
        with Emulator(config(4, count, days=2.0, fixed_size=2048)) as emu:
            since = datetime.now(UTC) - timedelta(days=3)
            run = run_archiver(bench.env(emu, f"flat-{count}", **CONCURRENT), since, code=bench.code)
        if run.summary["archived"] < count * 0.99 or run.summary["archived"] != run.summary["found"]:
            raise RuntimeError(f"archived {run.summary['archived']} of {run.summary['found']} found")
        peaks.append(run.peak_rss / 1e6)
    few, many = counts
    return [
        Row(f"peak RSS archiving {few:,} 2 KB recordings to a folder", peaks[0], f"{peaks[0]:.0f} MB"),
        Row(
            f"peak RSS archiving {many:,} 2 KB recordings to a folder",
            peaks[1],
            f"{peaks[1]:.0f} MB ({peaks[1] / peaks[0]:.2f}x the {few:,})",
            "<= 1.2x, < 120 MB",
        ),
    ]
