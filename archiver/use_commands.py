"""The commands for people who use the archive: find, export, hold, index rebuild, verify --bundle.

Each is declared here (its options, beside its rendering) and run by a few lines that build what it
needs and call one function: find.py, export.py, hold.py, index_files.py, bundle.py. None of them logs
in to RingCentral. find, export and hold read the local state (or a copy of an S3 state: `state backup`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from archiver.cli_args import add_wait_lock
from archiver.errors import EXIT_INCOMPLETE, EXIT_OK, SettingsError
from archiver.settings import Settings
from archiver.state.parties import Filters

CommandFactory = Callable[..., Any]


def _expiry(value: str) -> timedelta:
    from archiver.find import url_expiry

    try:
        return url_expiry(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_filters(parser: argparse.ArgumentParser, timestamp: Callable[[str], datetime]) -> None:
    group = parser.add_argument_group("filters (all given must match)")
    group.add_argument(
        "--number", help="a party's phone number, E.164 (+16505550100) or national (6505550100)"
    )
    group.add_argument("--extension", help="a party's extension number, e.g. 101")
    group.add_argument("--name", help="a party's name, case-insensitive substring")
    group.add_argument("--direction", choices=["Inbound", "Outbound", "inbound", "outbound"])
    group.add_argument("--call-id", help="the call-log record id")
    group.add_argument("--session-id", help="the sessionId or telephonySessionId")
    group.add_argument("--since", type=timestamp, help="call start from, ISO 8601 (inclusive)")
    group.add_argument("--until", type=timestamp, help="call start before, ISO 8601 (exclusive)")


def filters_of(args: argparse.Namespace) -> Filters:
    if args.since is not None and args.until is not None and args.until <= args.since:
        raise SettingsError("--until must be after --since", hint="swap them, or widen the range")
    return Filters(
        number=args.number,
        extension=args.extension,
        name=args.name,
        direction=args.direction,
        call_id=args.call_id,
        session_id=args.session_id,
        since=args.since,
        until=args.until,
    )


def add_use_commands(
    commands: argparse._SubParsersAction[Any], command: CommandFactory, timestamp: Callable[[str], datetime]
) -> None:
    find = command(
        commands,
        "find",
        "list the archived recordings of a number, an extension, a name, a call or a time range",
        "Answers from the state alone. A number matches every recording of every call it is a party to "
        "(the record's or any leg's, a transfer's too). Prints a table, or JSON Lines with --json; an "
        "object URL only with --url. The output is personal data.",
        "rc-archiver find --number +16505550100 --since 2026-03-01 --until 2026-06-01\n"
        "rc-archiver find --name lovelace --json | jq .key",
    )
    add_filters(find, timestamp)
    find.add_argument("--json", action="store_true", help="JSON Lines, one object per recording")
    find.add_argument(
        "--url",
        type=_expiry,
        metavar="EXPIRY",
        help="add an S3 presigned GET URL valid for EXPIRY (e.g. 900, 15m, 2h; at most 7d); implies --json",
    )

    export = command(
        commands,
        "export",
        "write an evidence bundle of the matching recordings: audio, sidecars, hashes, manifest entries",
        "Copies each recording and its sidecar byte for byte, writes MANIFEST.json and SHA256SUMS of every "
        "file, the manifest-chain entries that listed each recording, and README.txt on how to check it "
        "(`rc-archiver verify --bundle`).",
        "rc-archiver export --number +16505550100 --since 2026-03-01 --to /tmp/case-4711\n"
        "rc-archiver export --call-id Y2FsbC1pZA --zip --to /tmp/case-4711.zip",
    )
    add_filters(export, timestamp)
    export.add_argument("--to", type=Path, required=True, metavar="PATH", help="a new folder (or zip file)")
    export.add_argument("--zip", action="store_true", help="write one zip file at PATH instead of a folder")

    hold = command(
        commands,
        "hold",
        "put an S3 legal hold on the matching recordings, lift it (--release), or list holds (--list)",
        "Audio and sidecar of each match; the hold (reason, time, query) is recorded in the state. Needs "
        "a bucket with Object Lock (exit 2 otherwise). Deleting at the source never waits on a hold.",
        'rc-archiver hold --number +16505550100 --since 2026-03-01 --reason "case 4711"\n'
        'rc-archiver hold --release --number +16505550100 --reason "case 4711 closed"\n'
        "rc-archiver hold --list",
    )
    add_filters(hold, timestamp)
    hold.add_argument("--reason", help="why (required to hold or release)")
    hold.add_argument("--release", action="store_true", help="lift the hold on the matches")
    hold.add_argument("--hold-id", type=int, help="with --release: only this hold's claim (see --list)")
    hold.add_argument("--list", action="store_true", help="the holds in force")
    add_wait_lock(hold)

    index = command(
        commands,
        "index",
        "rebuild the archive's index (_index/ beside the recordings) from the sidecars",
        "Runs write the index as they go; rebuild writes it whole again from the sidecars (no state "
        "needed) and then removes the parts it replaced. Run it between runs.",
        "rc-archiver index rebuild",
    )
    index.add_argument("action", choices=["rebuild"], help="rebuild: from the sidecars")


def run_find(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.find import print_found
    from archiver.local_state import open_for_reading, state_file

    presign = None
    if args.url is not None:
        from archiver.destinations import destination_for
        from archiver.destinations.s3_hold import presigned_get

        destination = destination_for(settings)
        presign = lambda key: presigned_get(destination, key, args.url)  # noqa: E731
    state = open_for_reading(state_file(settings))
    try:
        print_found(state, filters_of(args), as_json=args.json or presign is not None, presign=presign)
    finally:
        state.close()
    return EXIT_OK


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.destinations import destination_for
    from archiver.export import export
    from archiver.local_state import open_for_reading, state_file

    state = open_for_reading(state_file(settings))
    try:
        done = export(state, destination_for(settings), filters_of(args), args.to, as_zip=args.zip)
    finally:
        state.close()
    print(
        f"exported {done.recordings} recording(s), {done.files} file(s) to {done.path}; "
        f"MANIFEST.json sha256 {done.manifest_sha256} (keep it to show the bundle is the one you sent)"
    )
    return EXIT_OK


def run_hold(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.destinations import destination_for
    from archiver.hold import place_hold, release_hold, render_holds
    from archiver.local_state import state_file
    from archiver.state import StateStore, lock_for

    path = state_file(settings)
    if args.list:
        from archiver.local_state import open_for_reading

        state = open_for_reading(path)
        try:
            print(render_holds(state.holds()))
        finally:
            state.close()
        return EXIT_OK
    if not args.reason:
        raise SettingsError("hold: --reason is required", hint='e.g. --reason "case 4711, counsel J. Doe"')
    filters = filters_of(args)
    destination = destination_for(settings)
    lock = lock_for(path)  # a hold is recorded in the state: one writer at a time
    lock.acquire(args.wait_lock)
    try:
        state = StateStore(path)
        try:
            if args.release:
                done = release_hold(state, destination, filters, args.reason, args.hold_id)
                print(
                    f"released {done.recordings} recording(s) from hold(s) "
                    f"{', '.join(f'#{h}' for h in done.hold_ids) or '(none in force)'}; "
                    f"legal hold lifted on {done.objects} object(s)"
                )
            else:
                done = place_hold(state, destination, filters, args.reason)
                print(
                    f"hold #{done.hold_ids[0]}: legal hold on {done.objects} object(s) "
                    f"of {done.recordings} recording(s)"
                )
        finally:
            state.close()
    finally:
        lock.release()
    return EXIT_OK


def run_index(args: argparse.Namespace, settings: Settings) -> int:
    from archiver.destinations import destination_for
    from archiver.index_files import rebuild_index

    done = rebuild_index(destination_for(settings))
    print(
        f"index rebuilt: {done.rows} recording(s) in {done.parts} part(s); {done.removed} old part(s) removed"
    )
    for key in done.unreadable or []:
        print(f"unreadable sidecar {key}")
    return EXIT_INCOMPLETE if done.unreadable else EXIT_OK


def run_verify_bundle(path: Path) -> int:
    from archiver.bundle import verify_bundle

    result = verify_bundle(path)
    for problem in result.problems:
        print(problem)
    print(f"bundle {path}: {result.files} file(s) checked, {len(result.problems)} problem(s)")
    return EXIT_OK if result.ok else EXIT_INCOMPLETE


USE_COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "find": run_find,
    "export": run_export,
    "hold": run_hold,
    "index": run_index,
}
