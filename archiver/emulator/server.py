"""The RingCentral emulator: a platform listener and a media listener on loopback.

Routes (as RingCentral serves them, see docs/ringcentral-api.md#hosts):
  platform  POST /restapi/oauth/token          JWT bearer grant (and refresh, when enabled)
            POST /restapi/oauth/revoke                 `token` in the form or in the query string
            GET  /restapi/v1.0/account/{~|id}/call-log
            GET  /restapi/v1.0/account/{~|id}/recording/{id}
            DELETE /restapi/v1.0/account/{~|id}/call-recordings  {"records": [ids]}, at most 100
  media     GET  /restapi/v1.0/account/{~|id}/recording/{id}/content   (Range; `access_token` query too)
Introspection for tests lives under /_emulator/, a prefix the real API does not have:
            GET  /_emulator/stats, GET /_emulator/ground-truth?dateFrom=&dateTo=, POST /_emulator/reset-stats
            GET  /_emulator/deleted (every recording gone: when, and whether by the API or retention)
Where no public source settles how RingCentral behaves, both readings are options (readings.py).
Per-test faults that no reading covers are options too: error knobs (`content_error`, ...), how content
bodies are framed (`content_framing`) and what befalls every DELETE (`delete_fault`); faults.py lists them.

One module per job: config.py (EmulatorConfig), state.py (what both listeners share), gates.py (the plumbing
and the gates of every request), oauth.py, calllog.py, media.py, deleting.py (the routes); this module
dispatches to them and runs the listeners.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from archiver.emulator.calllog import CallLogRoutes
from archiver.emulator.config import EmulatorConfig
from archiver.emulator.deleting import DeleteRoutes
from archiver.emulator.faults import FaultOptions
from archiver.emulator.gates import CALL_LOG_RE, CONTENT_RE, DELETE_RE, RECORDING_RE
from archiver.emulator.media import MediaRoutes
from archiver.emulator.oauth import OAuthRoutes
from archiver.emulator.state import EmulatorState, Stats

__all__ = ["Emulator", "EmulatorConfig"]


class _Handler(OAuthRoutes, CallLogRoutes, MediaRoutes, DeleteRoutes):
    """Every route, dispatched by listener (platform or media), method and path."""

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        if url.path.startswith("/_emulator/"):
            self._introspect(url.path, query)
            return
        if self.media:
            match = CONTENT_RE.match(url.path)
            if match:
                self._content(match.group(2))
                return
        else:
            if CALL_LOG_RE.match(url.path):
                self._call_log(query)
                return
            match = RECORDING_RE.match(url.path)
            if match:
                self._recording(match.group(2))
                return
        self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if self.media:
            self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")
        elif url.path == "/restapi/oauth/token":
            self._token(body)
        elif url.path == "/restapi/oauth/revoke":
            self._revoke(body)
        elif url.path == "/_emulator/reset-stats":
            self.state.stats.reset()
            self._send("introspect", 200, {"ok": True})
        else:
            self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")

    def do_DELETE(self) -> None:
        url = urlsplit(self.path)
        body = self._body()
        if not self.media and DELETE_RE.match(url.path):
            self._delete_recordings(body)
        else:
            self._error("other", 404, "CMN-102", "Resource for parameter [path] is not found")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


class Emulator:
    """Start and stop both listeners in-process; `with Emulator(config) as emu:` for tests."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.state = EmulatorState(self.config)
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    def _listener(self, port: int, media: bool) -> _Server:
        handler = type("Handler", (_Handler,), {"state": self.state, "media": media})
        return _Server((self.config.host, port), handler)

    def start(self) -> Emulator:
        platform = self._listener(self.config.port, media=False)
        media = self._listener(self.config.media_port, media=True)
        self._servers = [platform, media]
        host = self.config.host
        self.state.platform_url = f"http://{host}:{platform.server_address[1]}"
        self.state.media_url = f"http://{host}:{media.server_address[1]}"
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers, self._threads = [], []

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.state.platform_url

    @property
    def media_url(self) -> str:
        return self.state.media_url

    @property
    def stats(self) -> Stats:
        return self.state.stats

    def ground_truth(self, date_from: float = 0.0, date_to: float | None = None) -> list[dict[str, Any]]:
        return self.state.ground_truth(date_from, self.config.clock() if date_to is None else date_to)

    def deleted(self) -> list[dict[str, Any]]:
        return self.state.deleted()

    def set_faults(self, options: FaultOptions) -> None:
        self.state.faults.reconfigure(options)
