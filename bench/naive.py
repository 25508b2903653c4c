"""The naive baseline: a sequential client that pages the call log, downloads every recording in scan
order (newest call first), and on a 429 sleeps Retry-After and retries. What a first attempt at an
archiver does; the benchmarks hold ours against it on the same workload."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import requests

from archiver.emulator import Emulator
from archiver.models import format_time

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


@dataclass(frozen=True)
class NaiveRun:
    recordings: int  # distinct recordings it asked for
    lost: int  # of those, already deleted when it asked (404)
    seconds: float  # from its login to its last download


def naive_archive(emu: Emulator, since: datetime) -> NaiveRun:
    """Archive (download and drop) every recording of calls since SINCE from the emulator, naively."""
    cfg = emu.config
    session = requests.Session()
    token = session.post(
        f"{emu.url}/restapi/oauth/token",
        auth=(cfg.client_id, cfg.client_secret),
        timeout=30,
        data={"grant_type": JWT_GRANT, "assertion": cfg.jwt},
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
    params = {"dateFrom": format_time(since), "view": "Detailed", "recordingType": "All", "perPage": "1000"}
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
                    lost += get(rec["contentUri"]).status_code == 404  # the body is read: the download
        url = (page["navigation"].get("nextPage") or {}).get("uri")
    return NaiveRun(len(seen), lost, time.monotonic() - started)
