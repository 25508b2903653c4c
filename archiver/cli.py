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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog

from archiver import __version__
from archiver.errors import EXIT_INCOMPLETE, EXIT_OK, ArchiverError, SettingsError, exit_code_for
from archiver.logs import configure_logging
from archiver.models import RunSummary, parse_time
from archiver.settings import Settings, load_settings

log = structlog.get_logger("archiver")


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
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="scan and print what would be archived; download and write nothing",
    )

    status = commands.add_parser("status", help="watermark, last runs, failures, recordings at risk")
    status.add_argument("--json", action="store_true", help="JSON instead of a table")

    verify = commands.add_parser("verify", help="check the archive against the call log for a range")
    verify.add_argument("--since", type=_timestamp, help="range start (default: 90 days ago)")
    verify.add_argument("--until", type=_timestamp, help="range end (default: now - settle delay)")
    verify.add_argument(
        "--sample",
        type=float,
        default=0.0,
        metavar="PERCENT",
        help="re-read this share of the objects in full and re-hash them (100 = all)",
    )
    verify.add_argument(
        "--repair", action="store_true", help="queue missing and corrupt recordings for the next run"
    )
    verify.add_argument("--wait-lock", type=float, default=0.0, metavar="SECONDS")

    commands.add_parser("check", help="validate settings, log in, read the call log, probe the destination")

    daemon = commands.add_parser("daemon", help="archive on RC_ARCHIVER_SCHEDULE (cron), one run at a time")
    daemon.add_argument("--run-now", action="store_true", help="also run once right away")

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


# Commands whose stdout is a report for a person (status, verify, check, a dry run) log to stderr,
# so the report stays readable and pipeable; `run` and `daemon` log to stdout, their real output.
REPORT_COMMANDS = {"status", "verify", "check"}


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    reports = args.command in REPORT_COMMANDS or getattr(args, "dry_run", False)
    configure_logging(settings.log_level, settings.resolved_log_format(), sys.stderr if reports else None)
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from archiver.runner import RunRequest, dry_run, run_once

    settings = _settings(args)
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    request = RunRequest(args.since, args.until, args.wait_lock)
    if args.dry_run:
        planned = dry_run(settings, request, cancel)
        for item in planned:
            print(f"would archive {item.recording_id}  {item.start:%Y-%m-%d %H:%M}  -> {item.key}")
        print(
            f"{len(planned)} recording(s) would be archived; sizes are unknown until download "
            "(the call log does not carry them); nothing was downloaded or written"
        )
        return EXIT_OK
    summary = run_once(settings, request, cancel)
    code = summary_exit_code(summary)
    log.info("run_summary", **summary.as_dict(), exit_code=code)
    if summary.abandoned:
        # Worker threads still hold abandoned transfers; the state is committed, so leave now.
        logging.shutdown()
        os._exit(code)
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from archiver.runner import state_file
    from archiver.status import open_for_reading, render, status_report

    settings = _settings(args)
    state = open_for_reading(state_file(settings))
    try:
        report = status_report(state, settings.risk_days, datetime.now(UTC))
    finally:
        state.close()
    print(render(report, args.json))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from archiver.runner import RunRequest, runtime
    from archiver.verify import verify

    settings = _settings(args)
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    since = args.since or datetime.now(UTC) - timedelta(days=90)
    with runtime(settings, args.wait_lock, cancel) as rt:
        start, end = rt.window(RunRequest(since, args.until))
        result = verify(rt, start, end, args.sample, args.repair)
    for recording_id, why in result.missing:
        print(f"missing  {recording_id}  {why}")
    for recording_id, why in result.corrupt:
        print(f"corrupt  {recording_id}  {why}")
    repaired = " (queued for the next run)" if args.repair and not result.ok else ""
    print(
        f"checked {result.checked}, missing {len(result.missing)}, corrupt {len(result.corrupt)}, "
        f"re-hashed {result.rehashed}, call-log days unreadable {result.scan_errors}{repaired}"
    )
    return EXIT_OK if result.ok else EXIT_INCOMPLETE


def cmd_check(args: argparse.Namespace) -> int:
    from archiver.check import CheckLine, run_checks

    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(CheckLine("settings", False, str(exc), exc.hint).render())
        return EXIT_INCOMPLETE
    lines = run_checks(settings)
    for line in lines:
        print(line.render())
    return EXIT_OK if all(line.ok for line in lines) else EXIT_INCOMPLETE


def cmd_daemon(args: argparse.Namespace) -> int:
    from archiver.schedule import run_daemon

    settings = _settings(args)
    settings.require("client_id", "client_secret", "jwt", "destination")  # fail at start, not at 2 a.m.
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    return run_daemon(settings, cancel, args.run_now)


def cmd_emulator(args: argparse.Namespace) -> int:
    from archiver.emulator.cli import serve

    configure_logging("info", "console" if sys.stdout.isatty() else "json")
    return serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from archiver.demo import run_demo

    return run_demo(args.calls, args.output)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "status": cmd_status,
    "verify": cmd_verify,
    "check": cmd_check,
    "daemon": cmd_daemon,
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
