"""S3 requests per new recording (the probe, manifests and index included) and recordings per second, on
moto and on SeaweedFS (a real S3-compatible store), counted through botocore's events inside the archiver
process. Target: 3 per recording and a little overhead."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from archiver.emulator import Emulator
from bench.archiver_run import run_archiver
from bench.workloads import CONCURRENT, Bench, Row, config, day_ago
from tests.harness.servers import Unavailable, create_bucket, s3_env, seaweedfs_server


def recordings(bench: Bench) -> int:
    return 125 if bench.quick else 500


@contextlib.contextmanager
def servers(bench: Bench) -> Iterator[dict[str, str]]:
    """moto, and SeaweedFS where its binary is installed: name -> S3 endpoint."""
    try:
        with seaweedfs_server(bench.folder("seaweedfs")) as weed:
            yield {"moto": bench.moto, "SeaweedFS": weed}
    except Unavailable:
        yield {"moto": bench.moto}


def scenario(bench: Bench) -> list[Row]:
    rows = []
    with Emulator(config(3, recordings(bench), fixed_size=2048)) as emu, servers(bench) as endpoints:
        for name, endpoint in endpoints.items():
            bucket = create_bucket(endpoint, "bench")
            env = bench.env(emu, f"s3-{name}", f"s3://{bucket}/b", **CONCURRENT, **s3_env(endpoint))
            run = run_archiver(env, day_ago(), code=bench.code, count_s3=True)
            per_recording = run.s3_requests / run.summary["archived"]
            rate = run.summary["archived"] / run.summary["seconds"]
            rows.append(
                Row(
                    f"S3 requests per new recording (all included), and throughput, to {name}",
                    per_recording,
                    f"{per_recording:.2f}, {rate:.0f}/s",
                    "<= 3 + overhead",
                )
            )
    return rows
