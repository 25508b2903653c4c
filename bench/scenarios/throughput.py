"""Throughput with limits off (a raised-limit account): small recordings per second, to a folder and to
moto. Target: >= 200/s to a folder on 2 cores."""

from __future__ import annotations

from archiver.emulator import Emulator
from bench.archiver_run import run_archiver
from bench.workloads import CONCURRENT, Bench, Row, config, day_ago
from tests.harness.servers import create_bucket, s3_env


def recordings(bench: Bench) -> int:
    return 500 if bench.quick else 2000


def scenario(bench: Bench) -> list[Row]:
    with Emulator(config(2, recordings(bench), fixed_size=2048)) as emu:
        folder = run_archiver(bench.env(emu, "tp-folder", **CONCURRENT), day_ago(), code=bench.code)
        bucket = create_bucket(bench.moto, "bench")
        env = bench.env(emu, "tp-s3", f"s3://{bucket}/tp", **CONCURRENT, **s3_env(bench.moto))
        s3 = run_archiver(env, day_ago(), code=bench.code)
    rates = [run.summary["archived"] / run.summary["seconds"] for run in (folder, s3)]
    return [
        Row("throughput, limits off, 2 KB recordings to a folder", rates[0], f"{rates[0]:.0f}/s", ">= 200/s"),
        Row("throughput, limits off, 2 KB recordings to moto S3", rates[1], f"{rates[1]:.0f}/s"),
    ]
