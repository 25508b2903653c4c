"""How fast `find --number` answers on a large state, and how big the archive's index is.

    .venv/bin/python bench/find.py                   # 1,000,000 recordings (about a minute to build)
    .venv/bin/python bench/find.py --recordings 100000

Builds a state of N archived recordings (3 parties each, as a two-party call with a transfer target),
through the same SQL the state uses (the parties table as note_parties fills it), then times `find` by
E.164 number, by national number, by extension and by name through StateStore.find, the command's own
path, and writes the index rows of a sample of recordings with index_files.encode to measure its size
per 1,000,000 recordings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from archiver.find import describe, find
from archiver.index_files import encode, index_row
from archiver.models import Recording, format_time
from archiver.ringcentral.calllog import Party, normalise_number
from archiver.state import StateStore
from archiver.state.columns import RECORDING_COLUMNS, insert_sql, values
from archiver.state.parties import Filters
from archiver.state.party_tables import note_parties

# The recording's own columns come from models.Recording (state/columns.py); these are an archived row's.
ARCHIVED_COLUMNS = (
    "status",
    "key",
    "content_type",
    "size",
    "sha256",
    "first_seen",
    "updated_at",
    "archived_at",
    "manifested",
    "provenance",
)
RETENTION = timedelta(days=90)
INSERT = insert_sql((*RECORDING_COLUMNS, *ARCHIVED_COLUMNS))


def number(rng: random.Random) -> str:
    return f"+1{rng.randint(200, 989)}{rng.randint(200, 999)}{rng.randint(1000, 9999)}"


def build(path: Path, count: int, seed: int = 7) -> list[str]:
    """A state of `count` archived recordings; returns a few numbers that are parties in it."""
    rng = random.Random(seed)
    state = StateStore(path)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    samples: list[str] = []
    batch = 20_000
    with state._tx() as db:  # one transaction: this is a benchmark's setup, not the archiver's path
        for first in range(0, count, batch):
            rows, parties = [], []
            for i in range(first, min(first + batch, count)):
                caller, callee, target = number(rng), number(rng), number(rng)
                at = start + timedelta(seconds=i * 7)
                when = format_time(at)
                recording_id = f"{10_000_000 + i}008"
                key = f"2026/01/01/{recording_id}.mp3"
                recording = Recording(
                    recording_id=recording_id,
                    content_uri="https://m/x",
                    recording_type="Automatic",
                    call_id=f"call{i}",
                    session_id=str(i),
                    telephony_session_id=f"s-{i}",
                    start=at,
                    duration=120,
                    direction="Inbound",
                    from_number=caller,
                    to_number=callee,
                    from_name="Ada Lovelace",
                    to_name="Alan Turing",
                    extension_id="101",
                    on_leg_only=False,
                    retention_start=at,
                )
                archived = (
                    "archived",
                    key,
                    "audio/mpeg",
                    480_000,
                    "0" * 64,
                    when,
                    when,
                    when,
                    1,
                    "downloaded",
                )
                rows.append((*values(recording, RETENTION), *archived))
                parties.append(
                    (recording_id, [
                        Party(normalise_number(caller), "", "Ada Lovelace"),
                        Party(normalise_number(callee), "101", "Alan Turing"),
                        Party(normalise_number(target), str(100 + i % 900), "Grace Hopper"),
                    ])
                )  # fmt: skip
                if i % (count // 5 or 1) == 0:
                    samples.append(caller)
            db.executemany(INSERT, rows)
            for recording_id, people in parties:
                note_parties(db, recording_id, people)
    state.close()
    return samples


def timed(state: StateStore, filters: Filters, repeat: int = 5) -> tuple[float, int]:
    """Median seconds to list every match (as `find` does: rows and parties), and the matches."""
    seconds, found = [], 0
    for _ in range(repeat):
        began = time.perf_counter()
        found = sum(1 for _ in find(state, filters))
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), found


def index_bytes_per_million(state: StateStore, sample: int = 20_000) -> int:
    rows = [
        index_row(describe(r, state.parties_of(r.recording_id)))
        for r in itertools.islice(state.find(Filters()), sample)
    ]
    return len(encode(rows)) * 1_000_000 // len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recordings", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.db"
        began = time.perf_counter()
        samples = build(path, args.recordings)
        built = time.perf_counter() - began
        state = StateStore(path, read_only=True)
        results = {
            "recordings": args.recordings,
            "build_seconds": round(built, 1),
            "state_mb": round(path.stat().st_size / 1e6, 1),
        }
        e164 = [timed(state, Filters(number=n)) for n in samples]
        national = [timed(state, Filters(number=n.removeprefix("+1"))) for n in samples]
        results["find_number_e164_ms"] = round(max(s for s, _ in e164) * 1000, 2)
        results["find_number_national_ms"] = round(max(s for s, _ in national) * 1000, 2)
        results["matches_per_number"] = [c for _, c in e164]
        seconds, found = timed(state, Filters(extension="555"), repeat=3)
        results["find_extension_ms"] = round(seconds * 1000, 1)
        results["extension_matches"] = found
        seconds, found = timed(
            state,
            Filters(
                name="hopper", since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 1, 2, tzinfo=UTC)
            ),
            repeat=3,
        )
        print(f"timed in {time.perf_counter() - began - built:.1f} s", file=sys.stderr)
        results["find_name_one_day_ms"] = round(seconds * 1000, 1)
        results["index_bytes_per_million"] = index_bytes_per_million(state)
        state.close()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
