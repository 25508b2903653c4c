"""Prometheus metrics, derived from the state file after every run, so the one-shot textfile and the
daemon's /metrics endpoint say the same. The freshness signal matters most: a stuck archiver shows
as a stale `rc_archiver_last_success_timestamp_seconds`.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, write_to_textfile
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from archiver.models import RunSummary
from archiver.state import StateStore


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.archived = Counter("rc_archiver_recordings_archived", "Recordings archived", registry=r)
        self.failed = Counter("rc_archiver_recordings_failed", "Recording attempts that failed", registry=r)
        self.bytes = Counter("rc_archiver_bytes_archived", "Bytes of recordings archived", registry=r)
        self.rate_limited = Counter("rc_archiver_rate_limited", "429 answers from RingCentral", registry=r)
        self.rate_wait = Counter(
            "rc_archiver_rate_limit_wait_seconds", "Seconds spent waiting for the rate budget", registry=r
        )
        self.by_status = Gauge(
            "rc_archiver_recordings", "Recordings in the state, by status", ["status"], registry=r
        )
        self.run_duration = Gauge("rc_archiver_run_duration_seconds", "Duration of the last run", registry=r)
        self.last_success = Gauge(
            "rc_archiver_last_success_timestamp_seconds",
            "End of the last run that archived everything",
            registry=r,
        )
        self.oldest_pending = Gauge(
            "rc_archiver_oldest_pending_age_seconds",
            "Age of the oldest call whose recording is not archived",
            registry=r,
        )
        self.up = Gauge("rc_archiver_up", "1 while the archiver process runs", registry=r)
        self.up.set(1)

    def record_run(self, summary: RunSummary) -> None:
        self.archived.inc(summary.archived)
        self.failed.inc(summary.failed)
        self.bytes.inc(summary.bytes)
        self.rate_limited.inc(summary.rate_limited)
        self.rate_wait.inc(summary.rate_wait_seconds)
        self.run_duration.set(summary.seconds)

    def refresh_from_state(self, state: StateStore, now: datetime | None = None) -> None:
        now = now or datetime.now(UTC)
        for status, count in state.counts().items():
            self.by_status.labels(status=status).set(count)
        ended = state.last_success()
        if ended is not None:
            self.last_success.set(ended.timestamp())
        oldest = state.oldest_unarchived()
        self.oldest_pending.set((now - oldest).total_seconds() if oldest else 0)

    def write_textfile(self, path: Path) -> None:
        """For node_exporter's textfile collector (written to a temporary file, then renamed)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(path), self.registry)

    def serve(self, address: str, healthy: Any) -> ThreadingHTTPServer:
        """/metrics and /healthz on host:port, in a background thread."""
        host, _, port = address.rpartition(":")
        registry = self.registry

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    body, status, kind = generate_latest(registry), 200, CONTENT_TYPE_LATEST
                elif self.path.split("?")[0] == "/healthz":
                    ok = bool(healthy())
                    body, status, kind = (
                        (b"ok\n" if ok else b"unhealthy\n"),
                        (200 if ok else 503),
                        "text/plain",
                    )
                else:
                    body, status, kind = b"not found\n", 404, "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
        return server
