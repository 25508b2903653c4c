"""The one `--write` / `--check` command behind every generator of documentation from code
(settings_docs: the settings reference and example TOML; exit_codes_docs: the exit-code reference;
cli_docs: the CLI reference), and the marker-delimited blocks they regenerate inside hand-written pages.

A generator supplies `write(root)` (regenerate its files) and `drifted(root)` (a line per file that
differs from what it would write; ValueError when the source lacks what the docs need, e.g. a setting
without its description). CI and a test run `--check`, so the docs can never drift from the code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def replace_block(current: str, start_marker: str, end_marker: str, block: str, name: Path) -> str:
    """`current` with everything from start_marker to end_marker (both included) replaced by block,
    which starts and ends with the markers itself. The prose around the markers is the page's own."""
    start, end = current.find(start_marker), current.find(end_marker)
    if start < 0 or end < start:
        raise ValueError(f"{name}: no {start_marker} ... {end_marker} markers around the generated block")
    return current[:start] + block + current[end + len(end_marker) :]


def main(
    prog: str,
    what: str,
    write: Callable[[Path], None],
    drifted: Callable[[Path], list[str]],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse `--write | --check [--root DIR]`, do it, and return the exit code (1: drift or a gap)."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=what)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="regenerate the generated documentation")
    action.add_argument("--check", action="store_true", help="exit 1 if any of it differs from the code")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository's root")
    args = parser.parse_args(argv)
    try:
        if args.write:
            write(args.root)
            return 0
        stale = drifted(args.root)
    except ValueError as exc:  # the code lacks what the docs need (a description, the markers)
        print(exc, file=sys.stderr)
        return 1
    for problem in stale:
        print(f"{problem}; run: python -m {prog} --write", file=sys.stderr)
    return 1 if stale else 0
