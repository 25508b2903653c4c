"""A scripted stand-in for RingCentral's HTTP side, for unit tests of the client and the login.

Like httpx's MockTransport: a requests transport adapter that hands every request to a small
callable (the "server") and turns the Reply it returns into a real `requests.Response`, body
streamed, so the client's own code (pacing, retries, Range resumes, header handling) runs unchanged.
Mount it on the session the client is given: `session.mount("https://", ScriptedTransport(server))`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
import requests.adapters
import urllib3


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    cut_after: int | None = None  # the connection breaks after this many body bytes
    error: type[requests.RequestException] | None = None  # no reply at all: this exception
    framed: bool = True  # False: no Content-Length (the body ends when the connection closes)


@dataclass(frozen=True)
class Sent:
    """One request as the transport received it, with the options requests passed along."""

    request: requests.PreparedRequest
    verify: bool | str
    timeout: Any

    @property
    def method(self) -> str:
        return str(self.request.method)

    @property
    def url(self) -> str:
        return str(self.request.url)

    @property
    def headers(self) -> Mapping[str, str]:
        return self.request.headers

    def json(self) -> Any:
        body = self.request.body
        return json.loads(body.decode() if isinstance(body, bytes) else str(body))


class _CutStream(io.RawIOBase):
    """A body whose connection breaks after `cut` bytes."""

    def __init__(self, data: bytes, cut: int) -> None:
        self._data = data[:cut]
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._pos >= len(self._data):
            raise ConnectionResetError("connection reset by peer")
        chunk = self._data[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)


class ScriptedTransport(requests.adapters.BaseAdapter):
    def __init__(self, server: Callable[[requests.PreparedRequest], Reply]) -> None:
        super().__init__()
        self._server = server
        self._builder = requests.adapters.HTTPAdapter()
        self.sent: list[Sent] = []

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        self.sent.append(Sent(request, verify, timeout))
        reply = self._server(request)
        if reply.error is not None:
            raise reply.error("scripted failure")
        headers = dict(reply.headers)
        if isinstance(reply.body, dict | list):
            data = json.dumps(reply.body).encode()
            headers.setdefault("Content-Type", "application/json")
        else:
            data = reply.body or b""
        if reply.framed:
            headers.setdefault("Content-Length", str(len(data)))
        stream_body: Any = (
            io.BytesIO(data)
            if reply.cut_after is None
            else io.BufferedReader(_CutStream(data, reply.cut_after))
        )
        raw = urllib3.HTTPResponse(
            body=stream_body,
            headers=headers,
            status=reply.status,
            preload_content=False,
            decode_content=False,
        )
        return self._builder.build_response(request, raw)  # requests' Session reads it unless stream

    def close(self) -> None:
        self._builder.close()
