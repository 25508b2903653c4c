"""The command line's value types (argparse `type=` callables) and the options several commands share."""

from __future__ import annotations

import argparse
from datetime import datetime

from archiver.models import parse_time


def timestamp(value: str) -> datetime:
    try:
        return parse_time(value if "T" in value or " " in value else value + "T00:00:00Z")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None


def seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if not 0 <= seconds < 7 * 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 604800 seconds, not {value}")
    return seconds


def percent(value: str) -> float:
    try:
        percent = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a percentage: {value!r}") from None
    if not 0 <= percent <= 100:
        raise argparse.ArgumentTypeError(f"must be between 0 and 100, not {value}")
    return percent


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return number


def add_wait_lock(parser: argparse.ArgumentParser, holder: str = "a running run") -> None:
    """--wait-lock: how long a command queues for the state's lock before exit 5."""
    parser.add_argument(
        "--wait-lock",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help=f"wait this long for {holder} to release the state (default: exit 5 at once)",
    )
