"""`rc-archiver emulator`: the emulator as a long-running process on loopback."""

from __future__ import annotations

import argparse
import ipaddress
import signal
import threading
from types import FrameType
from typing import Any

import structlog

from archiver.emulator.data import DataOptions
from archiver.emulator.faults import FAULT_KINDS, FAULTS, FaultOptions
from archiver.emulator.ratelimit import GroupLimit
from archiver.emulator.readings import CHOICES, DELETE_UNKNOWN, DELETED_LISTINGS, NEXT_PAGE_STYLES
from archiver.emulator.replies import RETRY_AFTER_MODES
from archiver.emulator.server import Emulator, EmulatorConfig
from archiver.settings import parse_duration, parse_rate

log = structlog.get_logger("archiver.emulator")
DEFAULTS = EmulatorConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--host", default="127.0.0.1", help="listen address (loopback only, by design)")
    a("--port", type=int, default=8080, help="platform listener (OAuth, call log, recording metadata)")
    a("--media-port", type=int, default=8081, help="media listener (recording content)")
    a("--seed", type=int, default=7, help="seed of the synthetic data and of fault injection")
    a("--calls", type=int, default=500, help="number of calls to generate")
    a("--days", type=float, default=3.0, help="the calls spread over this many days before now")
    a("--client-id", default=DEFAULTS.client_id, help="client id accepted by the token endpoint")
    a("--client-secret", default=DEFAULTS.client_secret, help="client secret accepted by the token endpoint")
    a("--jwt", default=DEFAULTS.jwt, help="JWT assertion accepted by the token endpoint")
    a(
        "--bytes-per-second",
        type=int,
        default=4000,
        help="recording size per second of call (4000 ~ 32 kbit/s mp3)",
    )
    a("--fixed-size", type=int, help="make every recording exactly this many bytes")
    a(
        "--hostile",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="share of calls with hostile names and numbers ('../', control characters, ...)",
    )
    a(
        "--leg-only",
        type=float,
        metavar="SHARE",
        help="share of calls recorded only on a transfer leg (default: 0.04 with the top-level filter)",
    )
    a("--token-ttl", type=int, default=3600, help="access token lifetime in seconds")
    a(
        "--refresh-tokens",
        action="store_true",
        help="issue refresh tokens (off by default, as at RingCentral)",
    )
    a("--heavy", default="10/60s", help="Heavy group limit, requests/window")
    a("--auth", default="5/60s", help="Auth group limit, requests/window")
    a("--penalty", type=float, help="penalty seconds after a 429 (default: the group's window)")
    a(
        "--no-rate-limits",
        action="store_true",
        help="accept every request (raised-limit accounts, benchmarks)",
    )
    a("--record-delay", type=float, default=20.0, help="seconds after a call ends before its record appears")
    a(
        "--recording-delay",
        type=float,
        default=60.0,
        help="seconds after a call ends before its recording is available (before: 404 CMN-102)",
    )
    for kind in FAULT_KINDS:
        a(
            f"--fault-{kind}",
            type=float,
            default=0.0,
            metavar="P",
            help=f"probability of a '{kind}' fault per request",
        )
    a("--fault-auth", action="store_true", help="inject faults on the token endpoints too")
    a("--slow-seconds", type=float, default=1.0, help="delay of a 'slow' fault")
    a("--scope", default=DEFAULTS.scope, help="scope of issued tokens (add EditCallLog to allow deletions)")
    a(
        "--user-permissions",
        default=DEFAULTS.user_permissions,
        help="the JWT user's permissions; without FullCompanyCallLog (EditCompanyCallRecordings) the call"
        " log (a deletion) answers 403 CMN-408",
    )
    a(
        "--retention",
        help="delete each recording's content this long after its call started (90d, 900s); default never",
    )
    _add_readings(parser)
    for name, fault in FAULTS.items():  # one flag per named fault: faults.FAULTS is the one table
        a(
            f"--{name.replace('_', '-')}",
            choices=fault.values,
            default=getattr(DEFAULTS, name) or None,
            help=fault.what,
        )


def _chosen_faults(args: argparse.Namespace) -> dict[str, Any]:
    return {name: getattr(args, name) or "" for name in FAULTS}  # an option not given: "" (off)


def _add_readings(parser: argparse.ArgumentParser) -> None:
    """The points RingCentral's public sources leave open: each reading an option, and a switch."""
    group = parser.add_argument_group(
        "readings",
        "how RingCentral behaves where no public source settles it (default: the optimistic reading)",
    )
    a = group.add_argument
    a(
        "--pessimistic",
        action="store_true",
        help="the worse reading of every unverified point at once (options below still override it)",
    )
    a(
        "--filter-top-level-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recordingType matches only records whose own (top-level) recording is set",
    )
    a("--session-cap", type=int, help="live sessions per user and app; a new login ends the oldest (0: none)")
    a("--retry-after", dest="retry_after_mode", choices=RETRY_AFTER_MODES, help="Retry-After form on 429s")
    a("--next-page-style", choices=NEXT_PAGE_STYLES, help="'no-version': paging links lack /restapi/v1.0")
    a("--media-group", help="rate group of content requests ('heavy' shares the platform's budget)")
    a("--media", help="limit of a separate media group, requests/window (default: the Heavy limit)")
    a(
        "--deleted-listing",
        choices=DELETED_LISTINGS,
        help="a recording deleted through the API: 'kept' on its call-log record, or 'dropped' from it",
    )
    a(
        "--delete-unknown",
        choices=DELETE_UNKNOWN,
        help="a delete batch with unknown or deleted ids: 'ignore' (204, the rest deleted) or 'refuse' (404)",
    )
    for name, help_text in NEW_READINGS.items():
        a(f"--{name.replace('_', '-')}", choices=CHOICES[name], help=help_text)


# The readings added for issue 21, each a --option of the same name (docs/ringcentral-api.md lists them).
NEW_READINGS = {
    "media_accept": "content asked for with a JSON-only Accept: 'ignore' (served) or 'refuse' (406) (U20)",
    "rate_429_form": "429s: 'standard' (rate headers, Remaining 0, JSON) or 'varied' (in turn Remaining > 0,"
    " no rate headers, an HTML body) (U21)",
    "page_links": "paging links: 'plain' or 'extra' (showBlocked/withRecording the request never sent) (U22)",
    "queue_records": "a call-queue call: 'single' record or 'fanout' (a record per member rung) (U23)",
    "ended_session": "an ended token's 401: 'token-code' (OAU-213) or 'other-code' (CMN-405) (U2)",
    "auth_bucket": "whose Auth budget a login spends: 'user' (per user and app) or 'client' (per app) (U13)",
    "page_cap": "`page` past the spec's 1000: 'refuse' (400 CMN-101) or 'cap' (page 1000 again) (U24)",
    "refresh_reuse": "a refresh token used again: 'window' (10 s: the same reply) or 'once' (400) (U25)",
}


def _check_loopback(host: str) -> None:
    """The emulator accepts any JWT-looking login and serves fake data: never beyond this machine."""
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"--host {host[:60]!r} is not a loopback address: use 127.0.0.1, ::1 or localhost")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    _check_loopback(args.host)
    heavy_limit, heavy_window = parse_rate(args.heavy)
    media = None
    if args.media:
        media_limit, media_window = parse_rate(args.media)
        media = GroupLimit(media_limit, media_window, args.penalty or media_window)
    retention = parse_duration(args.retention).total_seconds() if args.retention else None
    auth_limit, auth_window = parse_rate(args.auth)
    faults = FaultOptions(
        rates={k: getattr(args, f"fault_{k}") for k in FAULT_KINDS if getattr(args, f"fault_{k}")},
        seed=args.seed,
        slow_seconds=args.slow_seconds,
    )
    return EmulatorConfig(
        host=args.host,
        port=args.port,
        media_port=args.media_port,
        client_id=args.client_id,
        client_secret=args.client_secret,
        jwt=args.jwt,
        data=DataOptions(
            seed=args.seed,
            calls=args.calls,
            days=args.days,
            bytes_per_second=args.bytes_per_second,
            fixed_size=args.fixed_size,
            hostile_fraction=args.hostile,
            leg_only_fraction=args.leg_only,
        ),
        token_ttl=args.token_ttl,
        refresh_tokens=args.refresh_tokens,
        heavy=GroupLimit(heavy_limit, heavy_window, args.penalty or heavy_window),
        auth=GroupLimit(auth_limit, auth_window, args.penalty or auth_window),
        rate_limits=not args.no_rate_limits,
        record_delay=args.record_delay,
        recording_delay=args.recording_delay,
        faults=faults,
        fault_auth=args.fault_auth,
        scope=args.scope,
        pessimistic=args.pessimistic,
        filter_top_level_only=args.filter_top_level_only,
        session_cap=args.session_cap,
        retry_after_mode=args.retry_after_mode,
        next_page_style=args.next_page_style,
        media_group=args.media_group,
        media=media,
        deleted_listing=args.deleted_listing,
        delete_unknown=args.delete_unknown,
        **{name: getattr(args, name) for name in NEW_READINGS},
        user_permissions=args.user_permissions,
        **_chosen_faults(args),
        retention=retention,
    )


def serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        config.faults.validate()
        config.validate()
    except ValueError as exc:
        log.error("emulator_settings_error", error=str(exc))
        return 2
    stop = threading.Event()

    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    try:
        emulator = Emulator(config).start()
    except OSError as exc:
        log.error("emulator_cannot_listen", error=exc.strerror, port=args.port, media_port=args.media_port)
        return 2
    log.info(
        "emulator_ready",
        platform=emulator.url,
        media=emulator.media_url,
        calls=len(emulator.state.data.calls),
        recordings=len(emulator.state.data.recordings),
        hint=f"RC_SERVER_URL={emulator.url} RC_CLIENT_ID={config.client_id}",
    )
    stop.wait()
    emulator.stop()
    log.info("emulator_stopped", stats=emulator.stats.snapshot())
    return 0
