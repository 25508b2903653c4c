"""Benchmarks: start the emulator and a moto server, run the archiver as a real process, print a table.

    .venv/bin/python bench/bench.py            # everything (a few minutes)
    .venv/bin/python bench/bench.py --quick    # smaller sizes, for a smoke check

Rows (compare them across commits; each ratio is measured within one run of this script):
  pacing      efficiency under enforced limits = ideal time / measured time, where ideal time is
              Heavy requests made / limit x window (the window scaled down to 2 s), and the 429 count.
              Target: efficiency >= 0.95 with zero 429s.
  naive       the same workload from a sequential client that retries a 429 after Retry-After.
  throughput  small recordings per second with limits off (a raised-limit account), to a folder and
              to moto. Target: >= 200/s to a folder on 2 cores.
  media       the same with content in a rate group of its own (20 per 2 s) beside heavy (10 per 2 s):
              ideal time is the slower of the two groups' needs. Target: >= 0.95 with zero 429s.
  s3          S3 requests per new recording (the probe, manifests and index included) and recordings
              per second, on moto and on SeaweedFS (a real S3-compatible store; in-process, counted
              through botocore's events). Target: 3 per recording and a little overhead.
  memory      peak RSS of the archiver process while it archives one 1 GB recording to moto.
              Target: under 100 MB.
  cliff       a backlog whose oldest recordings reach RingCentral's deletion deadline during the run,
              at 10 Heavy requests per 2 s: recordings lost by ours (deadline order), by the same
              request times handed out in scan order (newest call first), and by the naive client.
              Target: zero lost by ours whenever the backlog is clearable in time (this one is).
  flat        peak RSS archiving 5,000 and 50,000 small recordings in one run (limits off, to a
              folder). Target: the larger within 1.2x the smaller, and under 120 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import requests

from archiver.emulator import DataOptions, Emulator, EmulatorConfig, GroupLimit
from archiver.models import format_time

BIN = Path(sys.executable).parent
RAISED = GroupLimit(1_000_000, 60.0, 60.0)  # "limits off": an account whose limits RingCentral raised
NO_SHORTS: dict[str, Any] = {
    "unrecorded_fraction": 0.0,
    "short_fraction": 0.0,
    "fax_fraction": 0.0,
    "transfer_fraction": 0.0,
    "internal_fraction": 0.0,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MotoServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("moto_server did not start")

    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def bucket(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def archiver_env(
    emu: Emulator, work: Path, destination: str, rate: str, extra: dict[str, str]
) -> dict[str, str]:
    cfg = emu.config
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "RC_SERVER_URL": emu.url,
        "RC_CLIENT_ID": cfg.client_id,
        "RC_CLIENT_SECRET": cfg.client_secret,
        "RC_JWT": cfg.jwt,
        "RC_ARCHIVER_DESTINATION": destination,
        "RC_ARCHIVER_STATE_PATH": str(work / "state.db"),
        "RC_ARCHIVER_SPOOL_DIR": str(work / "spool"),
        "RC_ARCHIVER_RATE_HEAVY": rate,
        "RC_ARCHIVER_SETTLE_DELAY": "0s",
        "RC_ARCHIVER_LOG_FORMAT": "json",
        "RC_ARCHIVER_LOG_LEVEL": "warning",
        **extra,
    }


def run_archiver(env: dict[str, str], since: datetime) -> tuple[dict[str, Any], float, int]:
    """Run `rc-archiver run`; return its summary, wall seconds and peak RSS in bytes."""
    env = {**env, "RC_ARCHIVER_LOG_LEVEL": "info"}
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(BIN / "rc-archiver"), "run", "--since", format_time(since)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0]

    def watch() -> None:
        status = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, err = proc.communicate()
    wall = time.monotonic() - started
    watcher.join()
    summary = next((json.loads(line) for line in out.splitlines() if '"run_summary"' in line), None)
    if proc.returncode != 0 or summary is None:
        raise RuntimeError(f"archiver exited {proc.returncode}: {out[-2000:]}{err[-2000:]}")
    return summary, wall, peak[0]


def heavy_requests(emu: Emulator) -> int:
    """Heavy requests the workload needed: refused ones (429) are not work done."""
    requests_seen = emu.stats.snapshot()["requests"]
    return sum(
        n
        for k, n in requests_seen.items()
        if k.split()[0] in ("call-log", "recording", "content") and not k.endswith(" 429")
    )


PACED_LIMIT, PACED_WINDOW = 10, 2.0  # RingCentral's 10 a minute, with the window scaled to 2 s


def paced_config(recordings: int) -> EmulatorConfig:
    """The same workload for our archiver and the naive baseline."""
    return EmulatorConfig(
        data=DataOptions(seed=1, calls=recordings, days=0.5, bytes_per_second=20, **NO_SHORTS),
        heavy=GroupLimit(PACED_LIMIT, PACED_WINDOW, PACED_WINDOW),
        record_delay=0,
        recording_delay=0,
    )


def pacing(recordings: int, work: Path) -> dict[str, Any]:
    limit, window = PACED_LIMIT, PACED_WINDOW
    with Emulator(paced_config(recordings)) as emu:
        dest = work / "pacing"
        dest.mkdir()
        env = archiver_env(emu, work / "pacing-state", dest.as_uri(), f"{limit}/{window}s", {})
        summary, _, _ = run_archiver(env, datetime.now(UTC) - timedelta(days=1))
        used = heavy_requests(emu)
        ideal = used / limit * window
        return {
            "measured": summary["seconds"],
            "ideal": ideal,
            "requests": used,
            "429s": emu.stats.snapshot()["rate_limited"],
            "archived": summary["archived"],
        }


def naive(recordings: int) -> dict[str, Any]:
    """A sequential client that pages, downloads, and on a 429 sleeps Retry-After and retries."""
    limit, window = PACED_LIMIT, PACED_WINDOW
    cfg = paced_config(recordings)
    with Emulator(cfg) as emu:
        session = requests.Session()
        cfg_auth = (cfg.client_id, cfg.client_secret)
        token = session.post(
            f"{emu.url}/restapi/oauth/token",
            auth=cfg_auth,
            timeout=30,
            data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": cfg.jwt},
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        started = time.monotonic()

        def get(url: str, **params: Any) -> requests.Response:
            while True:
                reply = session.get(url, params=params or None, headers=headers, timeout=30)
                if reply.status_code != 429:
                    return reply
                time.sleep(float(reply.headers.get("Retry-After", "30")))

        url: str | None = f"{emu.url}/restapi/v1.0/account/~/call-log"
        params = {
            "dateFrom": format_time(datetime.now(UTC) - timedelta(days=1)),
            "view": "Detailed",
            "recordingType": "All",
            "perPage": "1000",
        }
        seen: set[str] = set()
        while url:
            page = get(url, **params).json()
            params = {}
            for record in page["records"]:
                for item in [record, *record.get("legs", [])]:
                    rec = item.get("recording")
                    if rec and rec["id"] not in seen:
                        seen.add(rec["id"])
                        get(rec["contentUri"]).content  # noqa: B018 - the download is the point
            url = (page["navigation"].get("nextPage") or {}).get("uri")
        measured = time.monotonic() - started
        used = heavy_requests(emu)
        return {
            "measured": measured,
            "ideal": used / limit * window,
            "requests": used,
            "429s": emu.stats.snapshot()["rate_limited"],
            "archived": len(seen),
        }


MEDIA_LIMIT = 20  # the media host's own budget per PACED_WINDOW (twice the Heavy one)


def media_group(recordings: int, work: Path) -> dict[str, Any]:
    """Content in a rate group of its own (a reading RingCentral's guide allows): ideal time is the
    slower of the two groups' needs, so a pacer that learns the media group uses its whole budget."""
    cfg = EmulatorConfig(
        data=DataOptions(seed=5, calls=recordings, days=0.5, bytes_per_second=20, **NO_SHORTS),
        heavy=GroupLimit(PACED_LIMIT, PACED_WINDOW, PACED_WINDOW),
        media_group="media",
        media=GroupLimit(MEDIA_LIMIT, PACED_WINDOW, PACED_WINDOW),
        record_delay=0,
        recording_delay=0,
    )
    with Emulator(cfg) as emu:
        dest = work / "media"
        dest.mkdir()
        rate = f"{PACED_LIMIT}/{PACED_WINDOW}s"
        env = archiver_env(
            emu, work / "media-state", dest.as_uri(), rate, {"RC_ARCHIVER_DOWNLOAD_CONCURRENCY": "4"}
        )
        summary, _, _ = run_archiver(env, datetime.now(UTC) - timedelta(days=1))
        requests_seen = emu.stats.snapshot()["requests"]

        def count(route: str) -> int:
            return sum(
                n for k, n in requests_seen.items() if k.split()[0] == route and not k.endswith(" 429")
            )

        heavy = count("call-log") + count("recording")
        media = count("content")
        ideal = max(heavy / PACED_LIMIT, media / MEDIA_LIMIT) * PACED_WINDOW
        return {
            "measured": summary["seconds"],
            "ideal": ideal,
            "requests": heavy + media,
            "429s": emu.stats.snapshot()["rate_limited"],
            "archived": summary["archived"],
        }


def throughput(recordings: int, work: Path, moto: MotoServer) -> dict[str, float]:
    cfg = EmulatorConfig(
        data=DataOptions(seed=2, calls=recordings, days=0.5, fixed_size=2048, **NO_SHORTS),
        heavy=RAISED,
        record_delay=0,
        recording_delay=0,
    )
    out: dict[str, float] = {}
    with Emulator(cfg) as emu:
        extra = {"RC_ARCHIVER_DOWNLOAD_CONCURRENCY": "8", "RC_ARCHIVER_UPLOAD_CONCURRENCY": "8"}
        dest = work / "throughput"
        dest.mkdir()
        env = archiver_env(emu, work / "tp-folder", dest.as_uri(), "1000000/60s", extra)
        summary, _, _ = run_archiver(env, datetime.now(UTC) - timedelta(days=1))
        out["folder"] = summary["archived"] / summary["seconds"]
        env = archiver_env(
            emu, work / "tp-s3", f"s3://{moto.bucket()}/tp", "1000000/60s", {**extra, **moto.env()}
        )
        summary, _, _ = run_archiver(env, datetime.now(UTC) - timedelta(days=1))
        out["s3"] = summary["archived"] / summary["seconds"]
    return out


def s3_servers_row(recordings: int, work: Path, moto: MotoServer) -> dict[str, dict[str, float]]:
    """S3 requests per new recording and recordings per second, on moto and on SeaweedFS (a real
    S3-compatible store), the requests counted through botocore's events: the run is in-process."""
    import contextlib
    import io
    from collections import Counter

    import archiver.destinations
    from archiver.cli import main as archiver_main

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.s3_servers import start_seaweedfs

    sent: Counter[str] = Counter()
    real = archiver.destinations.make_s3_client

    def counted(*args: Any, **kwargs: Any) -> Any:
        client = real(*args, **kwargs)
        client.meta.events.register("before-send.s3", lambda **_: sent.update(["request"]))
        return client

    archiver.destinations.make_s3_client = counted  # type: ignore[assignment]
    cfg = EmulatorConfig(
        data=DataOptions(seed=3, calls=recordings, days=0.5, fixed_size=2048, **NO_SHORTS),
        heavy=RAISED,
        record_delay=0,
        recording_delay=0,
    )
    out: dict[str, dict[str, float]] = {}
    weed_dir = work / "seaweedfs"
    weed_dir.mkdir()
    with Emulator(cfg) as emu, start_seaweedfs(weed_dir) as weed_url:
        for name, url in (("moto", moto.url), ("SeaweedFS", weed_url)):
            server = {**moto.env(), "AWS_ENDPOINT_URL": url}
            bucket = f"bench-{uuid.uuid4().hex[:10]}"
            boto3.client(
                "s3",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ).create_bucket(Bucket=bucket)
            env = archiver_env(emu, work / f"s3-{name}", f"s3://{bucket}/b", "1000000/60s", server)
            env["RC_ARCHIVER_UPLOAD_CONCURRENCY"] = env["RC_ARCHIVER_DOWNLOAD_CONCURRENCY"] = "8"
            saved = dict(os.environ)
            os.environ.update({**env, "RC_ARCHIVER_LOG_LEVEL": "info"})
            sent.clear()
            stdout = io.StringIO()
            since = format_time(datetime.now(UTC) - timedelta(days=1))
            try:
                with contextlib.redirect_stdout(stdout):
                    code = archiver_main(["run", "--since", since])
            finally:
                os.environ.clear()
                os.environ.update(saved)
            summary = next(json.loads(x) for x in stdout.getvalue().splitlines() if '"run_summary"' in x)
            if code != 0:
                raise RuntimeError(f"archiver exited {code} against {name}: {stdout.getvalue()[-2000:]}")
            out[name] = {
                "per_recording": sent["request"] / summary["archived"],
                "per_second": summary["archived"] / summary["seconds"],
            }
    archiver.destinations.make_s3_client = real
    return out


def memory(size: int, work: Path, moto: MotoServer) -> dict[str, float]:
    cfg = EmulatorConfig(
        data=DataOptions(seed=3, calls=1, days=0.1, fixed_size=size, **NO_SHORTS),
        heavy=RAISED,
        record_delay=0,
        recording_delay=0,
    )
    with Emulator(cfg) as emu:
        env = archiver_env(emu, work / "mem", f"s3://{moto.bucket()}/mem", "1000000/60s", moto.env())
        summary, _, peak = run_archiver(env, datetime.now(UTC) - timedelta(days=1))
        if summary["bytes"] != size:
            raise RuntimeError(f"archived {summary['bytes']} bytes, expected {size}")
        return {
            "peak_rss_mb": peak / 1e6,
            "seconds": summary["seconds"],
            "mb_per_s": size / 1e6 / summary["seconds"],
        }


CLIFF_CALLS, CLIFF_LEAD, CLIFF_SPREAD = 60, 5.0, 20.0  # deadlines from 5 s to 25 s after the start
CLIFF_ENDED = 3700.0  # the newest call started this long before the start (every call has ended)


def cliff_config() -> tuple[EmulatorConfig, float]:
    """A backlog whose deadlines (call start + retention) lie CLIFF_LEAD..+CLIFF_SPREAD seconds ahead:
    clearable in deadline order at 5 a second (about 12 s of work), not in scan order."""
    now = time.time()
    retention = float(round(CLIFF_ENDED + CLIFF_LEAD + CLIFF_SPREAD))  # the state keeps whole seconds
    data = DataOptions(
        seed=4,
        calls=CLIFF_CALLS,
        days=CLIFF_SPREAD / 86400,
        anchor=now + CLIFF_LEAD + CLIFF_SPREAD - retention,
        fixed_size=512,
        **NO_SHORTS,  # type: ignore[arg-type]
    )
    heavy = GroupLimit(PACED_LIMIT, PACED_WINDOW, PACED_WINDOW)
    config = EmulatorConfig(data=data, heavy=heavy, record_delay=0, recording_delay=0, retention=retention)
    return config, retention


def cliff(work: Path) -> dict[str, Any]:
    """Recordings lost: ours, the same pace in scan order, and the naive client (each on a fresh cliff)."""
    config, retention = cliff_config()
    with Emulator(config) as emu:
        dest = work / "cliff"
        dest.mkdir()
        extra = {
            "RC_ARCHIVER_SOURCE_RETENTION": f"{retention:.0f}s",
            "RC_ARCHIVER_LOOKBACK": "3h",
            "RC_ARCHIVER_LOG_LEVEL": "info",
        }
        env = archiver_env(emu, work / "cliff-state", dest.as_uri(), f"{PACED_LIMIT}/{PACED_WINDOW}s", extra)
        since = datetime.now(UTC) - timedelta(hours=3)
        proc = subprocess.run(
            [str(BIN / "rc-archiver"), "run", "--since", format_time(since)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # exit 1 when recordings are lost: that is the measurement
        )
        summary = next(
            (json.loads(line) for line in proc.stdout.splitlines() if '"run_summary"' in line), None
        )
        if summary is None:
            raise RuntimeError(
                f"archiver exited {proc.returncode}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
            )
        deadlines = {item["recordingId"]: item["deadline"] for item in emu.ground_truth()}
        offset = time.time() - time.monotonic()
        slots = sorted(
            datetime.fromtimestamp(t + offset, UTC)
            for t, route, status in emu.stats.timeline
            if route == "content" and status == 200
        )
        newest_first = sorted(deadlines, key=lambda rec: deadlines[rec], reverse=True)
        scan_order = sum(
            1 for rec, at in zip(newest_first, slots, strict=False) if format_time(at) >= deadlines[rec]
        ) + max(0, len(newest_first) - len(slots))
    config, _ = cliff_config()
    with Emulator(config) as emu:
        naive_lost = _naive_cliff(emu, config)
    return {
        "lost": summary["lost"],
        "archived": summary["archived"],
        "seconds": summary["seconds"],
        "scan_order_lost": scan_order,
        "naive_lost": naive_lost,
        "recordings": len(deadlines),
    }


def _naive_cliff(emu: Emulator, cfg: EmulatorConfig) -> int:
    """The naive client of `naive` (scan order, sleeps Retry-After on a 429) on a cliff: how many
    recordings it finds already deleted when it asks for them."""
    session = requests.Session()
    token = session.post(
        f"{emu.url}/restapi/oauth/token",
        auth=(cfg.client_id, cfg.client_secret),
        timeout=30,
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": cfg.jwt},
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def get(url: str, **params: Any) -> requests.Response:
        while True:
            reply = session.get(url, params=params or None, headers=headers, timeout=30)
            if reply.status_code != 429:
                return reply
            time.sleep(float(reply.headers.get("Retry-After", "30")))

    url: str | None = f"{emu.url}/restapi/v1.0/account/~/call-log"
    params = {
        "dateFrom": format_time(datetime.now(UTC) - timedelta(hours=3)),
        "view": "Detailed",
        "recordingType": "All",
        "perPage": "1000",
    }
    seen: set[str] = set()
    lost = 0
    while url:
        page = get(url, **params).json()
        params = {}
        for record in page["records"]:
            for item in [record, *record.get("legs", [])]:
                rec = item.get("recording")
                if rec and rec["id"] not in seen:
                    seen.add(rec["id"])
                    lost += get(rec["contentUri"]).status_code == 404
        url = (page["navigation"].get("nextPage") or {}).get("uri")
    return lost


def memory_flat(counts: tuple[int, ...], work: Path) -> dict[int, float]:
    """Peak RSS (MB) of one run archiving each count of 2 KB recordings: memory must not grow with it."""
    out: dict[int, float] = {}
    for count in counts:
        cfg = EmulatorConfig(
            data=DataOptions(seed=4, calls=count, days=2.0, fixed_size=2048, **NO_SHORTS),
            heavy=RAISED,
            record_delay=0,
            recording_delay=0,
        )
        with Emulator(cfg) as emu:
            dest = work / f"flat-{count}"
            dest.mkdir()
            extra = {"RC_ARCHIVER_DOWNLOAD_CONCURRENCY": "8", "RC_ARCHIVER_UPLOAD_CONCURRENCY": "8"}
            env = archiver_env(emu, work / f"flat-{count}-state", dest.as_uri(), "1000000/60s", extra)
            summary, _, peak = run_archiver(env, datetime.now(UTC) - timedelta(days=3))
            if summary["archived"] < count * 0.99 or summary["archived"] != summary["found"]:
                raise RuntimeError(f"archived {summary['archived']} of {summary['found']} found")
            out[count] = peak / 1e6
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke check")
    parser.add_argument("--only", choices=["cliff"], help="run one row only")
    args = parser.parse_args()
    if args.only == "cliff":
        with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp:
            print(cliff_row(cliff(Path(tmp))))
        return
    paced = 30 if args.quick else 60
    small = 500 if args.quick else 2000
    big = (100 if args.quick else 1024) * 1024 * 1024
    flat_counts = (1_000, 10_000) if args.quick else (5_000, 50_000)
    moto = MotoServer()
    try:
        with tempfile.TemporaryDirectory(prefix="rc-bench-") as tmp:
            work = Path(tmp)
            ours = pacing(paced, work)
            media = media_group(paced * 2, work)
            base = naive(paced)
            tp = throughput(small, work, moto)
            s3 = s3_servers_row(small // 4, work, moto)
            mem = memory(big, work, moto)
            flat = memory_flat(flat_counts, work)
            edge = cliff(work)
    finally:
        moto.stop()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"rc-archiver benchmark, {datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, {cpu}, "
        f"Python {platform.python_version()}"
    )
    print()
    print("| measure | ours | naive baseline | target |")
    print("|---|---|---|---|")

    def efficiency(row: dict[str, Any]) -> str:
        return f"{row['ideal'] / row['measured']:.2f} ({row['requests']} requests in {row['measured']:.1f} s)"

    print(
        f"| pacing efficiency (ideal/measured), {paced} recordings at 10 per 2 s | "
        f"{efficiency(ours)} | {efficiency(base)} | >= 0.95 |"
    )
    print(f"| 429 responses | {ours['429s']} | {base['429s']} | 0 |")
    print(
        f"| pacing efficiency, content in its own rate group ({MEDIA_LIMIT} per 2 s), {paced * 2} recordings "
        f"| {efficiency(media)}, {media['429s']} 429s | | >= 0.95, 0 429s |"
    )
    print(f"| throughput, limits off, 2 KB recordings to a folder | {tp['folder']:.0f}/s | | >= 200/s |")
    print(f"| throughput, limits off, 2 KB recordings to moto S3 | {tp['s3']:.0f}/s | | |")
    for name, row in s3.items():
        print(
            f"| S3 requests per new recording (all included), and throughput, to {name} | "
            f"{row['per_recording']:.2f}, {row['per_second']:.0f}/s | 5 before issue 23 | <= 3 + overhead |"
        )
    print(
        f"| peak RSS archiving one {big // 2**20} MB recording to moto | {mem['peak_rss_mb']:.0f} MB "
        f"({mem['mb_per_s']:.0f} MB/s) | | < 100 MB |"
    )
    few, many = flat_counts
    print(
        f"| peak RSS archiving {few:,} / {many:,} 2 KB recordings to a folder | {flat[few]:.0f} / "
        f"{flat[many]:.0f} MB ({flat[many] / flat[few]:.2f}x) | | <= 1.2x, < 120 MB |"
    )
    print(cliff_row(edge))


def cliff_row(row: dict[str, Any]) -> str:
    return (
        f"| cliff: recordings lost, {row['recordings']} whose deadlines fall {CLIFF_LEAD:.0f}-"
        f"{CLIFF_LEAD + CLIFF_SPREAD:.0f} s into the run, at {PACED_LIMIT} per {PACED_WINDOW:.0f} s | "
        f"{row['lost']} (deadline order, {row['seconds']:.1f} s; scan order at the same pace: "
        f"{row['scan_order_lost']}) | {row['naive_lost']} | 0 when clearable |"
    )


if __name__ == "__main__":
    main()
