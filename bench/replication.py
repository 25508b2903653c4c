"""The S3-hosted state's incremental replication at scale (issue 22): a real state built through the
program's own API (bench/scale.py's builder), grown past S3's 5 GiB single-PUT limit (5.6 GB) with a
filler table of incompressible rows, replicated to a real S3 server (SeaweedFS's `weed`, or moto)
started here on 127.0.0.1 and stopped after.

    .venv/bin/python bench/replication.py [--recordings 100000] [--grow-to-gb 5.6] [--changed 300]
                                          [--server seaweedfs|moto] [--folder /tmp/replication-bench]

Measured: the first push (every chunk), a checkpoint after a few hundred changed rows spread over the
file (the chunks read, uploaded and the bytes sent), the same checkpoint done the way the previous
version did it (a consistent copy of the whole file, read and hashed whole), a new run's download and
its first checkpoint (counted from the downloaded manifest), a restore (`state backup`'s copy) checked
with quick_check, and the largest single PUT of the whole bench (a chunk or the manifest: never the
file). Everything it creates is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archiver.remote_state import S3State
from archiver.state import StateStore
from archiver.state_replication import ChunkStore, consistent_copy
from bench.scale import build
from tests.harness.servers import create_bucket, moto_server, s3_client, s3_env, seaweedfs_server

KEY = "bench/state.db"
FILLER_ROW = 3000  # bytes of random data a filler row holds (about a recording's raw record)


@contextmanager
def server(kind: str, folder: Path) -> Iterator[str]:
    if kind == "moto":
        with moto_server() as url:
            yield url
    else:
        data = folder / "weed"
        data.mkdir()
        with seaweedfs_server(data) as url:
            yield url


class PutSizes:
    """Every PUT's payload size, from the request itself (botocore's before-send hook)."""

    def __init__(self) -> None:
        self.sizes: list[tuple[bool, int]] = []  # (a chunk, bytes)

    def __call__(self, request: Any, **_: Any) -> None:
        if request.method == "PUT":
            headers = request.headers
            size = int(headers.get("X-Amz-Decoded-Content-Length") or headers.get("Content-Length") or 0)
            self.sizes.append((".chunks/" in request.url, size))

    def since(self, mark: int) -> str:
        part = self.sizes[mark:]
        return f"{len(part):,} PUTs, {sum(size for _, size in part) / 1e6:,.1f} MB sent"


def grow(path: Path, target: int) -> None:
    """Add incompressible filler rows until the file is `target` bytes: history the state must carry."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS bench_filler (id INTEGER PRIMARY KEY, body BLOB)")
    while path.stat().st_size < target:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO bench_filler (body) VALUES (?)", ((os.urandom(FILLER_ROW),) for _ in range(20000))
        )
        db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


def change_rows(path: Path, count: int, seed: int) -> None:
    """`count` rows spread over the file changed, one transaction each (as a run records them)."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30)
    last = db.execute("SELECT max(id) FROM bench_filler").fetchone()[0]
    rnd = random.Random(seed)
    for _ in range(count):
        db.execute(
            "UPDATE bench_filler SET body = ? WHERE id = ?", (os.urandom(FILLER_ROW), rnd.randint(1, last))
        )
    db.close()


class Rows(list[tuple[str, str]]):
    """The table's rows, each also printed as it comes (a long bench shows its progress)."""

    def append(self, row: tuple[str, str]) -> None:
        print(f"| {row[0]} | {row[1]} |", file=sys.stderr, flush=True)
        super().append(row)


class Clock:
    def __enter__(self) -> Clock:
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.began


def measure(args: argparse.Namespace, folder: Path, built: Path, results: list[tuple[str, str]]) -> None:
    """Push, change, checkpoint, download and restore `built` against a server of its own."""
    with server(args.server, folder) as endpoint:
        os.environ.update(s3_env(endpoint))
        bucket = create_bucket(endpoint, "bench")
        client = s3_client(endpoint, max_pool_connections=16)
        puts = PutSizes()
        client.meta.events.register("before-send.s3", puts)
        url = f"s3://{bucket}/{KEY}"

        remote = S3State(url, client, folder / "run-1", replication="incremental")
        remote.acquire()
        local = remote.download()  # a new state: then the built one is put in its place
        shutil.move(built, local)
        store = StateStore(local)
        mark = len(puts.sizes)
        with Clock() as t:
            remote.checkpoint(store)
        results.append(
            ("first push (every chunk read, hashed, uploaded)", f"{t.seconds:.1f} s; {puts.since(mark)}")
        )

        change_rows(local, args.changed, seed=1)
        mark = len(puts.sizes)
        with Clock() as t:
            remote.checkpoint(store)
        results.append(
            (f"checkpoint after {args.changed} changed rows", f"{t.seconds:.2f} s; {puts.since(mark)}")
        )

        change_rows(local, args.changed, seed=2)
        previous = remote._incremental.manifest  # (compared with the old way below)
        assert previous is not None
        copy = folder / "copy.db"
        mark = len(puts.sizes)
        with Clock() as t:  # what a checkpoint did before: a consistent copy, then all of it hashed
            consistent_copy(local, copy)
            ChunkStore(client, bucket, KEY + "-old-way").push(copy, previous.chunks)
        copy.unlink()
        results.append(
            (
                "the same, the previous version's way (a whole copy, read and hashed whole)",
                f"{t.seconds:.2f} s; {puts.since(mark)}",
            )
        )
        remote.checkpoint(store)
        store.close()
        remote.release()

        measure_next_run(args, folder, url, client, puts, results)


def measure_next_run(
    args: argparse.Namespace,
    folder: Path,
    url: str,
    client: Any,
    puts: PutSizes,
    results: list[tuple[str, str]],
) -> None:
    """A new run: its download and first checkpoint; then a restore, checked."""
    reader = S3State(url, client, folder / "run-2", replication="incremental")
    reader.acquire()
    with Clock() as t:
        local = reader.download()
    results.append(("a new run's download (the manifest's chunks, assembled)", f"{t.seconds:.1f} s"))
    store = StateStore(local)
    change_rows(local, args.changed, seed=3)
    mark = len(puts.sizes)
    with Clock() as t:
        reader.checkpoint(store)
    results.append(
        (
            f"its first checkpoint after {args.changed} changed rows",
            f"{t.seconds:.2f} s; {puts.since(mark)}",
        )
    )
    store.close()
    reader.release()
    shutil.rmtree(folder / "run-2")

    restored = folder / "restored.db"
    with Clock() as t:
        S3State(url, client, folder / "run-3").copy_to(restored)
    results.append(("restore (`state backup`: the saved database, assembled)", f"{t.seconds:.1f} s"))
    with Clock() as t:
        verdict = sqlite3.connect(restored).execute("PRAGMA quick_check").fetchone()[0]
    results.append(("quick_check of the restored copy", f"{t.seconds:.1f} s: {verdict}"))
    assert verdict == "ok"
    restored.unlink()
    manifest = max(size for chunk, size in puts.sizes if not chunk)
    chunk = max(size for chunk, size in puts.sizes if chunk)
    results.append(
        (
            "largest single PUT",
            f"a chunk {chunk / 1e3:.1f} KB, the manifest {manifest / 1e6:.2f} MB "
            f"(of {len(puts.sizes):,} PUTs, {sum(s for _, s in puts.sizes) / 1e9:.2f} GB pushed in all)",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=100_000)
    parser.add_argument("--grow-to-gb", type=float, default=5.6)  # 5.22 GiB
    parser.add_argument("--changed", type=int, default=300)
    parser.add_argument("--server", choices=["seaweedfs", "moto"], default="seaweedfs")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/replication-bench"))
    args = parser.parse_args()
    folder: Path = args.folder
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    results = Rows()
    try:
        built = folder / "built.db"
        with Clock() as t:
            build(built, args.recordings)
        state_size = built.stat().st_size
        results.append((f"build {args.recordings:,} recordings (bench/scale.py)", f"{t.seconds:.0f} s"))
        with Clock() as t:
            grow(built, int(args.grow_to_gb * 1e9))
        size = built.stat().st_size
        results.append(
            (
                f"grown with filler rows of {FILLER_ROW} random bytes",
                f"{t.seconds:.0f} s: {state_size / 1e6:,.0f} MB of recordings, "
                f"{size / 1e9:.2f} GB ({size / 2**30:.2f} GiB) in all",
            )
        )
        measure(args, folder, built, results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line), "?")
    print(
        f"\nmachine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"SQLite {sqlite3.sqlite_version}, server {args.server}\n"
    )
    print("| step | result |\n|---|---|")
    for label, value in results:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
