"""The state at scale (issue 22): states of N recordings built through the state's own API, and the time
and peak memory of each operation over them, with the exponent k (the log-log slope between sizes).

    .venv/bin/python bench/scale.py --sizes 10000 100000 1000000 [--folder /tmp/scale] [--only build]

Each operation runs in its own child process on a copy-free, already built state (warm page cache),
so its peak RSS (ru_maxrss) is its own. The mix is the issue's: 95.6% archived (3% of those deleted
at the source), 3.5% pending (the newest calls: the due backlog), 0.5% failed (a fifth exhausted),
0.4% lost; calls spread over 120 days, a 90-day retention; the last 90 days seen by one verify scan.

The operations are the state's share of each command (the SQL and Python over the state, not the
network): what the issue measured grew with the state, the rest does not.
Run it against another checkout with PYTHONPATH=/that/checkout (and that checkout as the working
directory) to compare; `--migrate OLDER.db` times this checkout's migration of a copy of a state an
older checkout built (its peak RSS and the bytes a recording after), e.g. schema 6 -> 7 at 1M.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
DAYS = 120
RETENTION = timedelta(days=90)
SCAN = "verify-scan"


def _record(recording_id: str, start: datetime) -> dict[str, Any]:
    """A call-log record about the size RingCentral's are (about 2.5 KB with its legs)."""
    stamp = start.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rec = {
        "id": recording_id,
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/1/recording/{recording_id}",
        "type": "Automatic",
        "contentUri": f"https://media.ringcentral.com/restapi/v1.0/account/1/recording/{recording_id}/content",
    }
    party = {"phoneNumber": "+14155550100", "name": "Contact Centre Queue", "location": "San Francisco, CA"}
    leg = {
        "startTime": stamp,
        "duration": 184,
        "type": "Voice",
        "direction": "Inbound",
        "action": "Phone Call",
        "result": "Accepted",
        "from": party,
        "to": {**party, "extensionId": "2233445566", "name": "Agent 42"},
        "recording": rec,
        "legType": "Accept",
        "telephonySessionId": f"s-{recording_id}-telephony-session-identifier",
    }
    return {
        "uri": f"https://platform.ringcentral.com/restapi/v1.0/account/1/call-log/{recording_id}",
        "id": f"call-{recording_id}",
        "sessionId": f"4{recording_id}",
        "telephonySessionId": f"s-{recording_id}-telephony-session-identifier",
        "startTime": stamp,
        "duration": 184,
        "type": "Voice",
        "direction": "Inbound",
        "action": "Phone Call",
        "result": "Accepted",
        "from": party,
        "to": {**party, "name": "Main Number"},
        "recording": rec,
        "legs": [leg, {**leg, "legType": "FindMe"}, {**leg, "legType": "Transfer"}],
    }


def _batched_store(path: Path) -> Any:
    """A StateStore whose own transitions (the same SQL, the same triggers) commit once per batch
    instead of once per call: a million recordings build in minutes, not hours."""
    from archiver.state import StateStore

    class BatchedStore(StateStore):
        _outer = False

        @contextmanager
        def _tx(self) -> Iterator[sqlite3.Connection]:
            if self._outer:
                yield self._db
                return
            with super()._tx() as db:
                yield db

        @contextmanager
        def batch(self) -> Iterator[None]:
            with super()._tx():
                self._outer = True
                try:
                    yield
                finally:
                    self._outer = False

    return BatchedStore(path)


def build(path: Path, size: int, batch: int = 5000) -> float:
    """The state of `size` recordings, through StateStore's own methods; returns the seconds it took."""
    from archiver.ringcentral.calllog import recordings_in

    began = time.perf_counter()
    store = _batched_store(path)
    store.apply_retention(RETENTION)  # as a run does first: the deadlines below are its own
    step = timedelta(days=DAYS) / size
    oldest = NOW - timedelta(days=DAYS)
    pending_from = int(size * (1 - 0.035))  # the newest 3.5%: the due backlog
    for first in range(0, size, batch):
        found = []
        for i in range(first, min(first + batch, size)):
            start = oldest + step * i
            found.extend(recordings_in(_record(f"r{i:08d}", start)))
        run = SCAN if found[0].recording.start >= NOW - RETENTION else "backfill"
        with store.batch():
            _transitions(store, found, first, run, pending_from)
    store.close()
    return time.perf_counter() - began


def _transitions(store: Any, found: list[Any], first: int, run: str, pending_from: int) -> None:
    """One batch: seen in the call log, then the issue's mix of outcomes."""
    from archiver.models import ArchivedObject

    store.note_found(found, run, RETENTION)
    archived = []
    for i, item in enumerate(found, start=first):
        rid = item.recording_id
        if i >= pending_from:
            continue
        if i % 200 == 7:  # 0.5% failed, a fifth of them exhausted (5 attempts)
            for _ in range(5 if i % 1000 == 7 else 1):
                store.record_failure(rid, "HTTP 503 from the media server", max_attempts=5)
        elif i % 250 == 3:  # 0.4% lost
            store.mark_lost(rid, "deadline passed before it was archived")
        else:
            store.mark_archived(rid, ArchivedObject(f"2026/{rid}.mp3", "audio/mpeg", 1_000_000, "ab" * 32))
            archived.append(rid)
    store.mark_manifested(archived)
    gone = archived[::33]  # 3% deleted at the source
    if gone:
        store.mark_deleted(gone, NOW, "us")
        store.mark_manifested(gone)


def _walk(items: Iterator[Any]) -> int:
    return sum(1 for _ in items)


def _store(path: Path, read_only: bool = False) -> Any:
    from archiver.state import StateStore

    return StateStore(path, read_only=read_only)


@functools.cache
def _settings() -> Any:
    from archiver.settings import load_settings

    for name in [n for n in os.environ if n.startswith("RC_")]:
        del os.environ[name]
    os.environ["RC_ARCHIVER_SOURCE_RETENTION"] = "90d"
    return load_settings()


def op_open(path: Path) -> object:
    _store(path).close()
    return None


def op_status(path: Path) -> object:
    from archiver.status import render, status_report

    store, settings = _store(path, read_only=True), _settings()
    text = render(status_report(store, settings, NOW), as_json=True)
    store.close()
    return f"{len(text) // 1024} KB of JSON"


def op_metrics(path: Path) -> object:
    from archiver.status import state_facts

    store, settings = _store(path, read_only=True), _settings()
    state_facts(store, settings, NOW)
    store.close()
    return None


def op_first_download(path: Path) -> object:
    """A run's state work before its first download: open, retention, unmanifested rows, forecast,
    counts, the cap, the first due row."""
    from archiver.archive.run_pass import forecast_backlog

    store = _store(path)
    store.apply_retention(RETENTION)
    store.unmanifested()
    forecast_backlog(store, 5, (0.5, 60.0), NOW)
    store.counts(5)
    store.held_at_source(NOW)
    next(iter(store.due(5, NOW)))
    store.close()
    return None


def op_dry_run(path: Path) -> object:
    """run --dry-run's state work: the whole due walk in archive order, and the forecast."""
    from archiver.archive.run_pass import forecast_backlog

    store = _store(path)
    due = _walk(store.due(5, NOW))
    forecast_backlog(store, 5, (0.5, 60.0), NOW)
    store.close()
    return f"{due} due"


def op_manifests(path: Path) -> object:
    """verify --manifests' state walk: every archived id."""
    store = _store(path)
    count = _walk(store.archived_ids())
    store.close()
    return f"{count} ids"


def op_verify_walk(path: Path) -> object:
    """A 90-day verify's state walk: what its scan saw, then the archive of the range it did not."""
    store = _store(path)
    count = _walk(store.seen_in(SCAN)) + _walk(store.archive_in(NOW - RETENTION, NOW, skip_run=SCAN))
    store.close()
    return f"{count} rows"


def op_deletable(path: Path) -> object:
    store = _store(path)
    count = _walk(store.deletable(datetime.now(UTC)))  # everything archived so far (built just now)
    store.close()
    return f"{count} rows"


def op_compact(path: Path) -> object:
    """`state compact` a year on: every archived recording's raw record dropped, then VACUUM."""
    store = _store(path)
    done = store.compact(NOW + timedelta(days=365))
    store.close()
    return f"{done.records} records; {done.file_bytes_after / _count(path):.0f} B a recording after"


def _count(path: Path) -> int:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return int(db.execute("SELECT COUNT(*) FROM recordings").fetchone()[0])
    finally:
        db.close()


def op_retention(path: Path) -> object:
    store = _store(path)
    store.apply_retention(RETENTION + timedelta(days=1))
    store.apply_retention(RETENTION)
    store.close()
    return "changed and back"


OPERATIONS: dict[str, Callable[[Path], object]] = {
    "open (writer)": op_open,
    "status --json": op_status,
    "metrics read (daemon start)": op_metrics,
    "run: state work before 1st download": op_first_download,
    "run --dry-run (due walk + forecast)": op_dry_run,
    "verify --manifests (id walk)": op_manifests,
    "verify 90 days (seen_in + archive_in)": op_verify_walk,
    "deletion pass (deletable walk)": op_deletable,
    "retention change (x2)": op_retention,
    "state compact (a year on)": op_compact,
}


def measure(name: str, path: Path) -> tuple[float, float, object]:
    """(seconds, peak RSS in MB, note) of one operation, in a child process of its own."""
    code = (
        "import json, resource, sys, time; from pathlib import Path\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import scale\n"
        "import archiver.status, archiver.archive.run_pass, archiver.state  # imports are not the operation\n"
        "scale._settings()  # nor is loading the settings (pydantic: constant, 0.2-1 s on a busy machine)\n"
        f"t = time.perf_counter(); note = scale.OPERATIONS[{name!r}](Path({str(path)!r}))\n"
        "print(json.dumps([time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, note]))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    seconds, rss, note = json.loads(out.strip().splitlines()[-1])
    return float(seconds), float(rss), note


def schema_2_file(path: Path, size: int) -> None:
    """A schema-2 state (the oldest that migrates), `size` rows of raw call-log JSON."""
    from archiver.ringcentral.calllog import recordings_in
    from archiver.state.schema import MIGRATIONS

    db = sqlite3.connect(path)
    for statement in ";".join(str(m) for m in MIGRATIONS[:2]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 2")
    stamp = NOW.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rows = []
    for i in range(size):
        found = recordings_in(_record(f"r{i:08d}", NOW - timedelta(days=DAYS) + timedelta(seconds=i)))[0]
        rec = found.recording
        rows.append(
            (rec.recording_id, rec.call_id, stamp, rec.content_uri, "archived", stamp, stamp,
             json.dumps({"record": found.record, "leg": found.leg}))
        )  # fmt: skip
        if len(rows) == 5000 or i == size - 1:
            db.executemany(
                "INSERT INTO recordings (recording_id, call_id, start_time, content_uri, status, first_seen, "
                "updated_at, source_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            rows = []
    db.commit()
    db.close()


def op_migrate(path: Path) -> object:
    _store(path).close()
    return "-> current schema"


OPERATIONS["migration from schema 2"] = op_migrate


def _measure_migration(older: Path, folder: Path) -> None:
    """The migration of a copy of `older` to this checkout's schema: time, peak RSS, bytes a recording."""
    target = folder / f"migrating-{older.name}"
    shutil.copyfile(older, target)
    try:
        seconds, rss, _ = measure("migration from schema 2", target)
        per = target.stat().st_size / _count(target)
        print(f"migration of {older}: {seconds:.1f} s, {rss:.0f} MB peak RSS, {per:.0f} B a recording after")
    finally:
        for leftover in folder.glob(f"{target.name}*"):
            leftover.unlink()


def slope(points: list[tuple[int, float]]) -> str:
    """The log-log slope between the two largest sizes: 1 linear, 2 quadratic."""
    usable = [(n, t) for n, t in points if t > 0]
    if len(usable) < 2:
        return "-"
    (n1, t1), (n2, t2) = usable[-2], usable[-1]
    return f"{math.log(t2 / t1) / math.log(n2 / n1):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--folder", type=Path, default=Path("/tmp/rc-archiver-scale"))
    parser.add_argument("--only", nargs="*", help="operation names (a prefix) to run")
    parser.add_argument("--migration-max", type=int, default=100_000, help="largest schema-2 migration")
    parser.add_argument(
        "--migrate",
        type=Path,
        nargs="*",
        default=[],
        help="older state files (e.g. built by an older checkout): time the migration of a copy of each",
    )
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    for older in args.migrate:
        _measure_migration(older, args.folder)
    results: dict[str, list[tuple[int, float, float, object]]] = {}
    for size in args.sizes:
        path = args.folder / f"state-{size}.db"
        if not path.exists():
            seconds = build(path, size)
            print(f"built {size} recordings in {seconds:.1f} s", file=sys.stderr)
        per = path.stat().st_size / size
        results.setdefault("state file (bytes a recording)", []).append((size, per, 0.0, ""))
        for name in OPERATIONS:
            if args.only and not any(name.startswith(o) for o in args.only):
                continue
            target = path
            if name.startswith(("retention", "state compact")):
                target = args.folder / f"copy-{size}.db"
                shutil.copyfile(path, target)
            if name.startswith("migration"):
                if size > args.migration_max:
                    continue
                target = args.folder / f"v2-{size}.db"
                target.unlink(missing_ok=True)
                schema_2_file(target, size)
            seconds, rss, note = measure(name, target)
            results.setdefault(name, []).append((size, seconds, rss, note))
            print(f"{size:>9} {name:<40} {seconds:8.3f} s {rss:7.0f} MB  {note or ''}", file=sys.stderr)
            if target != path:
                for leftover in args.folder.glob(f"{target.name}*"):  # its -wal, -shm, pre-migration copy
                    leftover.unlink()
    sizes = args.sizes
    print("| operation | " + " | ".join(f"{n:,}" for n in sizes) + " | k | peak RSS at largest |")
    print("|---|" + "---|" * (len(sizes) + 2))
    for name, rows in results.items():
        by_size = {n: (t, rss) for n, t, rss, _ in rows}
        cells = [
            (f"{by_size[n][0]:.0f} B" if name.startswith("state file") else f"{by_size[n][0]:.3f} s")
            if n in by_size
            else "-"
            for n in sizes
        ]
        peak = "-" if name.startswith("state file") else f"{rows[-1][2]:.0f} MB"
        print(f"| {name} | " + " | ".join(cells) + f" | {slope([(n, t) for n, t, _, _ in rows])} | {peak} |")


if __name__ == "__main__":
    main()
