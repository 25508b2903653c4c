"""The `rc-archiver` command. Each command builds its collaborators and calls one function; expected
errors become one clear log line and an exit code from the one table in errors.py, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog

from archiver import __version__
from archiver.cli_args import add_wait_lock, percent, positive, timestamp
from archiver.errors import EXIT_INCOMPLETE, EXIT_OK, ArchiverError, SettingsError, event_name, exit_code_for
from archiver.exit_codes_docs import epilog as exit_codes_epilog
from archiver.logs import configure_logging
from archiver.metrics import StateFacts
from archiver.settings import Settings, load_settings, log_notices
from archiver.state import StateStore

log = structlog.get_logger("archiver")
PROJECT_URL = "https://github.com/rc-archiver/rc-archiver"
DESCRIPTION = """\
Archive a company's RingCentral call recordings to S3 or a folder, every night, unattended, and
never lose one. Settings come from RC_* environment variables or a TOML file (--config).
"""
# The exit codes are rendered from errors.py's table (archiver/exit_codes_docs.py), never written here.
EPILOG = f"""\
{exit_codes_epilog()}
documentation: {PROJECT_URL}
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse exits 2 itself on a usage error; keep the code (exit 2 is "settings or usage"), one line.
        self.exit(2, f"{self.prog}: error: {message}\n")


def _command(
    commands: argparse._SubParsersAction[_Parser], name: str, summary: str, details: str, example: str
) -> _Parser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=f"{summary[0].upper()}{summary[1:]}. {details}",
        epilog="example:\n" + textwrap.indent(example, "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # --config is accepted after the subcommand too; SUPPRESS keeps a value given before it.
    parser.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="rc-archiver",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the URL on one line
    )
    parser.add_argument("--version", action="version", version=f"rc-archiver {__version__}")
    parser.add_argument(
        "--config", type=Path, help="TOML settings file (default: $RC_ARCHIVER_CONFIG); the environment wins"
    )
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="COMMAND")

    run = _command(
        commands,
        "run",
        "archive once and exit with a code that says how it went",
        "Scans the call log for the window, archives every recording due (earliest deletion deadline "
        "first) and logs one run_summary event.",
        "rc-archiver run\nrc-archiver run --since 2026-01-01 --until 2026-03-31   # a resumable backfill",
    )
    run.add_argument("--since", type=timestamp, help="window start, ISO 8601 (default: watermark - lookback)")
    run.add_argument("--until", type=timestamp, help="window end, ISO 8601 (default: now - settle delay)")
    add_wait_lock(run, "another run")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="scan and print what would be archived (and deleted) and the forecast; "
        "download and write nothing",
    )

    status = _command(
        commands,
        "status",
        "show the watermark, the last runs, failed, exhausted, lost and at-risk recordings and the forecast",
        "Reads the local state file only (no login); safe while a run is going on.",
        "rc-archiver status\nrc-archiver status --json | jq .forecast",
    )
    status.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    status.add_argument(
        "--limit", type=int, default=100, metavar="N", help="rows of each list (failed, lost...); 0: all"
    )

    verify = _command(
        commands,
        "verify",
        "check the archive against the call log for a range",
        "Re-lists the call log, checks each recording's object, size and sha256 and its sidecar, re-reads "
        "a sample in full; with --manifests walks the manifests' hash chain. Exit 1 if anything is wrong.",
        "rc-archiver verify --since 2026-11-01 --sample 5\nrc-archiver verify --manifests --repair",
    )
    verify.add_argument("--since", type=timestamp, help="range start (default: 90 days ago)")
    verify.add_argument("--until", type=timestamp, help="range end (default: now - settle delay)")
    verify.add_argument(
        "--sample",
        type=percent,
        default=0.0,
        metavar="PERCENT",
        help="re-read this share of the objects in full and re-hash them (0-100; 100 = all)",
    )
    verify.add_argument(
        "--repair", action="store_true", help="queue missing and corrupt recordings for the next run"
    )
    verify.add_argument(
        "--manifests",
        action="store_true",
        help="walk the manifest hash chain; report the first break and archived recordings no manifest lists",
    )
    add_wait_lock(verify)
    verify.add_argument(
        "--bundle",
        type=Path,
        metavar="PATH",
        help="instead: re-check an evidence bundle (folder or zip) offline; exit 1 names each bad file",
    )

    check = _command(
        commands,
        "check",
        "validate the setup before a first run: settings, state, login, permissions, call log, media, "
        "destination",
        "Prints one line per check and what it measured of the account (token scope, rate limits, "
        "leg-only recordings). Exit codes are those of `run`.",
        "rc-archiver check\nrc-archiver check --json",
    )
    check.add_argument("--json", action="store_true", help="one JSON object: ok, checks, facts")

    retry = _command(
        commands,
        "retry",
        "reset the attempts of failed, exhausted or lost recordings so the next run tries them again",
        "Give recording ids, or --all for every recording that has failed at least once.",
        "rc-archiver retry 1000417008 1000417009\nrc-archiver retry --all",
    )
    retry.add_argument("recording_ids", nargs="*", metavar="RECORDING_ID", help="recordings to retry")
    retry.add_argument("--all", action="store_true", help="every recording that is not archived")
    add_wait_lock(retry)

    state = _command(
        commands,
        "state",
        "back up, restore, migrate or compact the state (local file or S3 object)",
        "backup: a consistent copy (SQLite's online backup), safe while a run writes. restore: a checked "
        "backup put in place of the state under the run lock; the replaced state is kept beside it as "
        "<state>.replaced-<time>. migrate: this version's schema migration now, after a snapshot (an "
        "interrupted one resumes where it stopped). compact: drop the raw call-log records of recordings "
        "archived and gone from RingCentral (their sidecars keep them), then VACUUM.",
        "rc-archiver state backup /var/backups/rc-archiver/state-$(date +%F).db\n"
        "rc-archiver state restore /var/backups/rc-archiver/state-2026-11-27.db\n"
        "rc-archiver state migrate --wait-lock 600\n"
        "rc-archiver state compact --dry-run",
    )
    state_commands = state.add_subparsers(
        dest="state_command", required=True, parser_class=_Parser, metavar="ACTION"
    )
    backup = state_commands.add_parser("backup", help="write a consistent copy of the state to PATH (0600)")
    backup.add_argument("path", type=Path, metavar="PATH", help="the backup file to create (must not exist)")
    restore = state_commands.add_parser("restore", help="put the backup PATH in place of the state")
    restore.add_argument("path", type=Path, metavar="PATH", help="a file written by `state backup`")
    migrate = state_commands.add_parser("migrate", help="migrate the state to this version's schema now")
    compact = _compact_parser(state_commands)
    for action in (backup, restore, migrate, compact):
        action.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
    for action in (restore, migrate, compact):
        add_wait_lock(action)

    daemon = _command(
        commands,
        "daemon",
        "archive on RC_ARCHIVER_SCHEDULE (cron), one run at a time",
        "For systemd (Type=notify, watchdog) or a container; serves /metrics and /healthz when "
        "RC_ARCHIVER_METRICS_ADDR is set.",
        "RC_ARCHIVER_SCHEDULE='0 2 * * *' rc-archiver daemon --run-now",
    )
    daemon.add_argument("--run-now", action="store_true", help="also run once right away")

    emulator = _command(
        commands,
        "emulator",
        "serve a RingCentral look-alike on loopback, for rehearsals and tests",
        "OAuth, the company call log, recordings on a media port, rate limits with the 429 trap, faults; "
        "--pessimistic takes the worse reading of every point RingCentral does not document.",
        "rc-archiver emulator --port 8080 --media-port 8081 --calls 500 --pessimistic",
    )
    from archiver.emulator.cli import add_arguments

    add_arguments(emulator)

    demo = _command(
        commands,
        "demo",
        "archive a few hundred synthetic calls from the emulator into ./demo-archive",
        "Needs no RingCentral account; run it twice to see that nothing is archived twice.",
        "rc-archiver demo --calls 100 --output /tmp/demo",
    )
    demo.add_argument("--calls", type=positive, default=300, help="how many synthetic calls (default 300)")
    demo.add_argument(
        "--output",
        type=Path,
        default=Path("demo-archive"),
        help="the archive folder (default ./demo-archive)",
    )

    completion = _command(
        commands,
        "completion",
        "print a shell completion script",
        "Generated from this parser, so it always knows every command and option.",
        "rc-archiver completion bash > /etc/bash_completion.d/rc-archiver\n"
        'eval "$(rc-archiver completion zsh)"',
    )
    completion.add_argument("shell", choices=["bash", "zsh"], help="the shell to complete for")
    from archiver.use_commands import add_use_commands  # find, export, hold, index (issue 20)

    add_use_commands(commands, _command, timestamp)
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


# Commands whose stdout is a report for a person (status, verify, check, retry, a dry run) log to stderr,
# so the report stays readable and pipeable; `run` and `daemon` log to stdout, their real output.
REPORT_COMMANDS = {"status", "verify", "check", "retry", "state", "find", "export", "hold", "index"}


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(args.config)
    reports = args.command in REPORT_COMMANDS or getattr(args, "dry_run", False)
    configure_logging(settings.log_level, settings.resolved_log_format(), sys.stderr if reports else None)
    log_notices(settings)  # deprecations and the like, once per process, for every command
    return settings


def cmd_run(args: argparse.Namespace) -> int:
    from archiver.lifecycle import (
        RunRequest,
        execute_run,
        failed_before_the_pass,
        log_run_summary,
        new_run_id,
    )

    if args.dry_run:
        return _dry_run(args)
    try:
        settings = _settings(args)
    except SettingsError as exc:  # a run that could not start still ends with its summary
        summary = failed_before_the_pass(new_run_id(), exc)
        log_run_summary(summary)
        return summary.exit_code
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    bar = sys.stderr if sys.stderr.isatty() else None
    summary = execute_run(
        settings, RunRequest(args.since, args.until, args.wait_lock), cancel, bar_stream=bar
    )
    if summary.abandoned:
        # Worker threads still hold abandoned transfers; the state is committed, so leave now.
        logging.shutdown()
        os._exit(summary.exit_code)
    return summary.exit_code


def _dry_run(args: argparse.Namespace) -> int:
    from archiver.archive.plan import plan_pass, render_plan, render_planned
    from archiver.lifecycle import RunRequest
    from archiver.logs import bind
    from archiver.windows import plan_run_window
    from archiver.wiring import pass_services

    settings = _settings(args)
    bind(run_id="dry-run")
    request = RunRequest(args.since, args.until, args.wait_lock)
    request.check(datetime.now(UTC))
    cancel = threading.Event()
    _install_signal_handlers(cancel)

    with pass_services(settings, args.wait_lock, cancel) as ctx:
        watermark = ctx.state.watermark()
        window = plan_run_window(datetime.now(UTC), watermark, args.since, args.until, settings)
        plan = plan_pass(ctx, window=window, emit=lambda item: print(render_planned(item)))
    print(render_plan(plan, settings.delete_from_source))
    return EXIT_OK if not plan.days_unreadable else EXIT_INCOMPLETE


def cmd_status(args: argparse.Namespace) -> int:
    from archiver.local_state import open_for_reading, state_file
    from archiver.status import render, status_report

    settings = _settings(args)
    state = open_for_reading(state_file(settings))
    try:
        report = status_report(state, settings, datetime.now(UTC), limit=max(args.limit, 0))
    finally:
        state.close()
    print(render(report, args.json))
    return EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    from archiver.lifecycle import RunRequest
    from archiver.logs import bind
    from archiver.verify import render_verify, verify
    from archiver.windows import plan_window, verify_until
    from archiver.wiring import pass_services

    if args.bundle is not None:  # offline: no settings, no state, no RingCentral
        from archiver.use_commands import run_verify_bundle

        return run_verify_bundle(args.bundle)
    settings = _settings(args)
    bind(run_id="verify")
    since = args.since or datetime.now(UTC) - timedelta(days=90)
    RunRequest(since, args.until).check(datetime.now(UTC))
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    with pass_services(settings, args.wait_lock, cancel) as services:
        now = datetime.now(UTC)
        until = args.until or verify_until(now, services.state.watermark(), settings.settle_delay)
        window = plan_window(now, None, since, until, settings.lookback, settings.settle_delay)
        everything_deleted = args.since is None and args.until is None  # their archive is the only copy
        result = verify(
            services,
            window,
            args.sample,
            args.repair,
            args.manifests,
            all_deleted=everything_deleted,
        )
    print(render_verify(result, args.manifests, args.repair))
    return EXIT_OK if result.ok else EXIT_INCOMPLETE


def cmd_check(args: argparse.Namespace) -> int:
    from archiver.check import render, run_checks, settings_failed

    try:
        settings = _settings(args)
    except SettingsError as exc:
        print(render(settings_failed(exc), args.json))
        return exit_code_for(exc)
    report = run_checks(settings)
    print(render(report, args.json))
    return report.exit_code


def cmd_retry(args: argparse.Namespace) -> int:
    from archiver.local_state import state_file
    from archiver.state import lock_for

    if not args.recording_ids and not args.all:
        raise SettingsError("retry: name recording ids, or pass --all", hint="rc-archiver retry --help")
    settings = _settings(args)
    path = state_file(settings)
    lock = lock_for(path)
    lock.acquire(args.wait_lock)
    try:
        state = StateStore(path)
        try:
            changed = state.retry(None if args.all else args.recording_ids)
        finally:
            state.close()
    finally:
        lock.release()
    print(f"{changed} recording(s) will be tried again by the next run")
    return EXIT_OK


def cmd_state(args: argparse.Namespace) -> int:
    from archiver.state.backup import backup_state, migrate_state, restore_state

    settings = _settings(args)
    if args.state_command == "backup":
        copied = backup_state(settings, args.path)
        print(f"backed up {settings.state_path} (schema {copied.schema}) to {copied.path}")
    elif args.state_command == "restore":
        copied = restore_state(settings, args.path, args.wait_lock)
        kept = f"; the replaced state is kept as {copied.kept}" if copied.kept else ""
        print(f"restored {args.path} (schema {copied.schema}) as {copied.path}{kept}")
    elif args.state_command == "compact":
        return _compact(settings, args)
    else:
        copied = migrate_state(settings, args.wait_lock)
        before = f"; the state before it is kept as {copied.kept}" if copied.kept else " (it was already)"
        print(f"{copied.path} is at schema {copied.schema}{before}")
    return EXIT_OK


def _compact_parser(state_commands: argparse._SubParsersAction[_Parser]) -> argparse.ArgumentParser:
    compact = state_commands.add_parser(
        "compact", help="drop the raw call-log records the archive's sidecars keep (see --dry-run)"
    )
    compact.add_argument("--dry-run", action="store_true", help="say what it would free; change nothing")
    compact.add_argument(
        "--grace",
        type=_days,
        default=30,
        metavar="DAYS",
        help="keep the records of recordings whose deletion deadline passed less than DAYS ago (30)",
    )
    compact.add_argument(
        "--no-vacuum", action="store_true", help="leave the freed pages inside the file (for new recordings)"
    )
    return compact


def _days(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of days")
    return int(value)


def _compact(settings: Settings, args: argparse.Namespace) -> int:
    from archiver.state.backup import compact_state

    done = compact_state(
        settings, args.wait_lock, timedelta(days=args.grace), args.dry_run, vacuum=not args.no_vacuum
    )
    mb = done.record_bytes / 1e6
    if args.dry_run:
        print(
            f"would drop {done.records} raw call-log record(s), {mb:.1f} MB of the state's "
            f"{done.file_bytes_before / 1e6:.1f} MB"
        )
    else:
        print(
            f"dropped {done.records} raw call-log record(s) ({mb:.1f} MB); the state is "
            f"{done.file_bytes_after / 1e6:.1f} MB (was {done.file_bytes_before / 1e6:.1f} MB)"
        )
    return EXIT_OK


def cmd_daemon(args: argparse.Namespace) -> int:
    from archiver.schedule import run_daemon

    settings = _settings(args)
    settings.require("client_id", "client_secret", "jwt", "destination")  # fail at start, not at 2 a.m.
    cancel = threading.Event()
    _install_signal_handlers(cancel)
    return run_daemon(settings, cancel, args.run_now, state_facts=lambda: _facts_for_metrics(settings))


def _facts_for_metrics(settings: Settings) -> StateFacts | None:
    """The gauges' view of a local state file, read without the lock (None before the first run)."""
    from archiver.local_state import is_remote_state
    from archiver.status import state_facts

    path = Path(settings.state_path)
    if is_remote_state(settings) or not path.exists():
        return None
    state = StateStore(path, read_only=True)
    try:
        return state_facts(state, settings, datetime.now(UTC))
    finally:
        state.close()


def cmd_use(args: argparse.Namespace) -> int:
    """find, export, hold, index: the archive's users' commands (use_commands.py)."""
    from archiver.use_commands import USE_COMMANDS

    return USE_COMMANDS[args.command](args, _settings(args))


def cmd_emulator(args: argparse.Namespace) -> int:
    from archiver.emulator.cli import serve

    configure_logging("info", "console" if sys.stdout.isatty() else "json")
    return serve(args)


def cmd_demo(args: argparse.Namespace) -> int:
    from archiver.demo import run_demo

    return run_demo(args.calls, args.output)


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab

    print(shtab.complete(build_parser(), shell=args.shell))
    return EXIT_OK


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "status": cmd_status,
    "verify": cmd_verify,
    "check": cmd_check,
    "retry": cmd_retry,
    "state": cmd_state,
    "daemon": cmd_daemon,
    "emulator": cmd_emulator,
    "demo": cmd_demo,
    "completion": cmd_completion,
    **dict.fromkeys(("find", "export", "hold", "index"), cmd_use),
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Until the settings are read, log in the default format (errors in the settings need a voice too).
    configure_logging("info", "console" if sys.stdout.isatty() else "json")
    try:
        return COMMANDS[args.command](args)
    except ArchiverError as exc:
        code = exit_code_for(exc)
        log.error(event_name(exc), error=str(exc), fix=exc.hint or None, exit_code=code)
        return code
    except KeyboardInterrupt:
        return 130
