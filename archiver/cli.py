"""The `rc-archiver` command. Each command builds its collaborators and calls one function;
expected errors become one clear log line and an exit code from one table, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from types import FrameType

import structlog

from archiver import __version__
from archiver.errors import ArchiverError, AuthError, DestinationError, LockHeld, SettingsError, StateError
from archiver.logs import configure_logging
from archiver.models import RunSummary, parse_time
from archiver.settings import Settings, load_settings

log = structlog.get_logger("archiver")

EXIT_OK, EXIT_INCOMPLETE = 0, 1
EXIT_CODES: dict[type[ArchiverError], int] = {
    SettingsError: 2,
    StateError: 2,
    AuthError: 3,
    DestinationError: 4,
    LockHeld: 5,
}


def exit_code_for(exc: ArchiverError) -> int:
    for kind, code in EXIT_CODES.items():
        if isinstance(exc, kind):
            return code
    return EXIT_INCOMPLETE


def summary_exit_code(summary: RunSummary) -> int:
    return EXIT_OK if summary.complete else EXIT_INCOMPLETE


def _timestamp(value: str) -> datetime:
    try:
        return parse_time(value if "T" in value or " " in value else value + "T00:00:00Z")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints usage and exits 2 itself; keep that (usage errors are exit 2) but as one line.
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="rc-archiver", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"rc-archiver {__version__}")
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $RC_ARCHIVER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="archive once and exit with a code that says how it went")
    run.add_argument(
        "--since", type=_timestamp, help="window start, ISO 8601 (default: watermark - lookback)"
    )
    run.add_argument("--until", type=_timestamp, help="window end, ISO 8601 (default: now - settle delay)")
    run.add_argument(
        "--wait-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another run to release the state file (default: exit 5 at once)",
    )

    emulator = commands.add_parser("emulator", help="serve a RingCentral look-alike on loopback")
    from archiver.emulator.cli import add_arguments

    add_arguments(emulator)

    demo = commands.add_parser("demo", help="archive a few hundred synthetic calls into ./demo-archive")
    demo.add_argument("--calls", type=int, default=300)
    demo.add_argument("--output", type=Path, default=Path("demo-archive"))
    return parser


def _install_signal_handlers(cancel: threading.Event) -> None:
    """First SIGTERM/SIGINT: stop taking work and finish cleanly. Second: leave at once."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.is_set():
            log.warning("stop_forced", signal=signal.Signals(signum).name)
            logging.shutdown()
            os._exit(128 + signum)  # SQLite commits are atomic: an abrupt exit corrupts nothing
        cancel.set()
        log.info("stop_requested", signal=signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    configure_logging(settings.log_level, settings.resolved_log_format())
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from archiver.runner import RunRequest, run_once

    settings = _settings(args)
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    summary = run_once(settings, RunRequest(args.since, args.until, args.wait_lock), cancel)
    code = summary_exit_code(summary)
    log.info("run_summary", **summary.as_dict(), exit_code=code)
    if summary.abandoned:
        # Worker threads still hold abandoned transfers; the state is committed, so leave now.
        logging.shutdown()
        os._exit(code)
    return code


def cmd_emulator(args: argparse.Namespace) -> int:
    from archiver.emulator.cli import serve

    configure_logging("info", "console" if sys.stdout.isatty() else "json")
    return serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from archiver.demo import run_demo

    return run_demo(args.calls, args.output)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "emulator": cmd_emulator,
    "demo": cmd_demo,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Until the settings are read, log in the default format (errors in the settings need a voice too).
    configure_logging("info", "console" if sys.stdout.isatty() else "json")
    try:
        return COMMANDS[args.command](args)
    except ArchiverError as exc:
        code = exit_code_for(exc)
        event = re.sub(r"(?<!^)(?=[A-Z])", "_", type(exc).__name__).lower()  # SettingsError -> settings_error
        log.error(event, error=str(exc), fix=exc.hint or None, exit_code=code)
        return code
    except KeyboardInterrupt:
        return 130
