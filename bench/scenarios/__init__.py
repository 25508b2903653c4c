"""The benchmark's scenarios, in the table's order: each takes a Bench and returns its rows.

Adding one: a module here with `def scenario(bench: Bench) -> list[Row]`, listed below.
"""

from __future__ import annotations

from bench.scenarios import cliff, memory, pacing, s3, throughput
from bench.workloads import Scenario

SCENARIOS: dict[str, Scenario] = {
    "pacing": pacing.paced,  # with the naive baseline beside it
    "media": pacing.media_group,
    "throughput": throughput.scenario,
    "s3": s3.scenario,
    "memory": memory.one_big_recording,
    "flat": memory.flat,
    "cliff": cliff.scenario,
}
