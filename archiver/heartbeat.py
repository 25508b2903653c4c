"""Heartbeat pings in the style of healthchecks.io: `<url>/start` when a run begins, `<url>` on
success, `<url>/fail` on failure, with the summary as the body. A ping that fails is logged and
never fails the run; the final ping goes out on every path out of a run.
"""

from __future__ import annotations

import json
from typing import Any

import requests
import structlog

from archiver.logs import redact_text

log = structlog.get_logger(__name__)
TIMEOUT = (5.0, 10.0)


class Heartbeat:
    def __init__(self, url: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
        self._session = session or requests.Session()

    def _ping(self, suffix: str, body: dict[str, Any] | None = None) -> None:
        if not self.url:
            return
        try:
            reply = self._session.post(
                # The body leaves the machine: the same redaction as every log line.
                self.url + suffix,
                data=redact_text(json.dumps(body or {}, default=str)).encode(),
                timeout=TIMEOUT,
            )
            if reply.status_code >= 400:
                log.warning("ping_failed", ping=suffix or "/", status=reply.status_code)
        except requests.RequestException as exc:
            log.warning("ping_failed", ping=suffix or "/", error=type(exc).__name__)

    def start(self) -> None:
        self._ping("/start")

    def success(self, summary: dict[str, Any]) -> None:
        self._ping("", summary)

    def fail(self, details: dict[str, Any]) -> None:
        self._ping("/fail", details)

    def close(self) -> None:
        self._session.close()
