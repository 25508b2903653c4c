"""`rc-archiver emulator`: the emulator as a long-running process on loopback."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

import structlog

from archiver.emulator.data import DataOptions
from archiver.emulator.faults import FAULT_KINDS, FaultOptions
from archiver.emulator.ratelimit import GroupLimit
from archiver.emulator.server import Emulator, EmulatorConfig
from archiver.settings import parse_rate

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


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    heavy_limit, heavy_window = parse_rate(args.heavy)
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
    )


def serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        config.faults.validate()
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
