"""What the scenarios share: the rows they return, the context they run in, and the emulator's workloads
(the same for our archiver, the commit before and the naive client)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, GroupLimit
from tests.harness.archiver_process import archiver_env
from tests.helpers import ONE_RECORDING_EACH

RAISED = GroupLimit(1_000_000, 60.0, 60.0)  # "limits off": an account whose limits RingCentral raised
PACED_LIMIT, PACED_WINDOW = 10, 2.0  # RingCentral's 10 a minute, with the window scaled to 2 s
PACED = GroupLimit(PACED_LIMIT, PACED_WINDOW, PACED_WINDOW)
CONCURRENT = {"RC_ARCHIVER_DOWNLOAD_CONCURRENCY": "8", "RC_ARCHIVER_UPLOAD_CONCURRENCY": "8"}


@dataclass(frozen=True)
class Row:
    """One line of the table: VALUE is what two commits' rows are compared by (their ratio)."""

    measure: str
    value: float
    shown: str
    target: str = ""
    naive: str = ""  # the naive client on the same workload, where it has a row


@dataclass(frozen=True)
class Bench:
    """Where a scenario runs: a fresh folder, the moto server, the sizes, and whose code."""

    work: Path
    moto: str  # the moto server's URL
    quick: bool
    code: Path | None = None  # another commit's source tree; None: this checkout

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir(parents=True)
        return path

    def env(self, emu: Emulator, name: str, destination: str | None = None, **extra: str) -> dict[str, str]:
        """The archiver's environment for a run named NAME (its state in a folder of its own), archiving
        to DESTINATION or, by default, to a fresh folder."""
        folder = self.folder(name)
        if destination is None:
            (folder / "archive").mkdir()
            destination = (folder / "archive").as_uri()
        return archiver_env(emu, folder, destination, **extra)


Scenario = Callable[[Bench], list[Row]]


def config(seed: int, calls: int, heavy: GroupLimit = RAISED, **data: Any) -> EmulatorConfig:
    """An emulator over CALLS calls (one recording each) in the last half day, without delays."""
    options = {"days": 0.5, **ONE_RECORDING_EACH, **data}
    return EmulatorConfig(
        data=DataOptions(seed=seed, calls=calls, **options), heavy=heavy, record_delay=0, recording_delay=0
    )


def day_ago() -> datetime:
    return datetime.now(UTC) - timedelta(days=1)


def heavy_requests(emu: Emulator, routes: tuple[str, ...] = ("call-log", "recording", "content")) -> int:
    """Requests of ROUTES the workload needed: refused ones (429) are not work done."""
    seen = emu.stats.snapshot()["requests"]
    return sum(n for k, n in seen.items() if k.split()[0] in routes and not k.endswith(" 429"))
