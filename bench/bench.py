"""Benchmarks: start the emulator and a moto server, run the archiver as a real process, print a table.

    .venv/bin/python bench/bench.py                      # every scenario (a few minutes)
    .venv/bin/python bench/bench.py --quick              # smaller sizes, for a smoke check
    .venv/bin/python bench/bench.py --only pacing cliff  # some scenarios
    .venv/bin/python bench/bench.py --quick --baseline HEAD~1
                                  # the same scenarios against HEAD~1's code too, side by side with ratios

(`python -m bench.bench ...` from the repository works too.) With --baseline, the commit's tree is
extracted with `git archive` into a temporary folder and the archiver runs from there (PYTHONPATH); the
emulator, the servers and the naive client are this checkout's, so both sides see the same world. Each
scenario runs the baseline first, then ours.

Scenarios (bench/scenarios/; each ratio is measured within one run of this script):
  pacing      efficiency under enforced limits = ideal time / measured time, where ideal time is
              Heavy requests made / limit x window (the window scaled down to 2 s), and the 429 count;
              the naive client (bench/naive.py: sequential, retries a 429 after Retry-After) beside it.
              Target: efficiency >= 0.95 with zero 429s.
  media       the same with content in a rate group of its own (20 per 2 s) beside heavy (10 per 2 s):
              ideal time is the slower of the two groups' needs. Target: >= 0.95 with zero 429s.
  throughput  small recordings per second with limits off (a raised-limit account), to a folder and
              to moto. Target: >= 200/s to a folder on 2 cores.
  s3          S3 requests per new recording (the probe, manifests and index included) and recordings
              per second, on moto and on SeaweedFS (a real S3-compatible store), counted through
              botocore's events in the archiver process. Target: 3 per recording and a little overhead.
  memory      peak RSS of the archiver process while it archives one 1 GB recording to moto.
              Target: under 100 MB.
  flat        peak RSS archiving 5,000 and 50,000 small recordings in one run (limits off, to a
              folder). Target: the larger within 1.2x the smaller, and under 120 MB.
  cliff       a backlog whose oldest recordings reach RingCentral's deletion deadline during the run,
              at 10 Heavy requests per 2 s: recordings lost by ours (deadline order), by the same
              request times handed out in scan order (newest call first), and by the naive client.
              Target: zero lost by ours whenever the backlog is clearable in time (this one is).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as `python bench/bench.py`: import from the repository's root
    sys.path.remove(str(Path(__file__).resolve().parent))  # where `bench` would be this very file
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import baseline, table
from bench.scenarios import SCENARIOS
from bench.workloads import Bench, Row
from tests.harness.servers import moto_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        epilog="scenarios: " + ", ".join(SCENARIOS),
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    parser.add_argument(
        "--only", nargs="+", choices=list(SCENARIOS), metavar="SCENARIO", help="run these only"
    )
    parser.add_argument("--baseline", metavar="REV", help="also run every scenario against commit REV's code")
    args = parser.parse_args(argv)
    names = args.only or list(SCENARIOS)
    ours: list[Row] = []
    theirs: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp, moto_server() as moto:
        work = Path(tmp)
        code = baseline.extract(args.baseline, work / "baseline-code") if args.baseline else None
        for name in names:
            print(f"running {name}", file=sys.stderr, flush=True)
            if code is not None:
                theirs += SCENARIOS[name](Bench(work / "baseline" / name, moto, args.quick, code))
            ours += SCENARIOS[name](Bench(work / "ours" / name, moto, args.quick))
    print(table.machine())
    if args.baseline:
        rev = baseline.short_hash(args.baseline)
        print(f"ours: this checkout; {rev}: {baseline.subject(args.baseline)}")
        lines = table.side_by_side(ours, theirs, rev)
    else:
        lines = table.alone(ours)
    print()
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
