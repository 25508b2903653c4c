"""Recordings: metadata on the platform host, content on the media host (Range, framing, Accept)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

from archiver.emulator.data import Recording
from archiver.emulator.gates import HandlerBase
from archiver.emulator.replies import RANGE_NOT_SATISFIABLE


class MediaRoutes(HandlerBase):
    def _find_recording(self, route: str, recording_id: str, rate: dict[str, str]) -> Recording | None:
        rec = self.state.data.recordings.get(recording_id)
        now = self.state.config.clock()
        if rec is None or not self.state.ready(rec, now) or self.state.gone(rec, now):
            # A recording not (yet) available: 404 CMN-102
            # (docs/ringcentral-api.md#u9-not-ready-and-deleted-recordings). A deleted one (by the API
            # or by retention) answers the same: RingCentral documents nothing else for a recording
            # it no longer has, and CMN-102 is its "resource not found".
            self._error(
                route,
                404,
                "CMN-102",
                "Resource for parameter [recordingId] is not found",
                rate,
                parameterName="recordingId",
                parameterValue=recording_id[:100],
            )
            return None
        return rec

    def _recording_gate(
        self, route: str, recording_id: str, group: str = "heavy", knob: str = ""
    ) -> tuple[Recording, dict[str, str], str | None] | None:
        """The API gate, then the recording if it exists and is ready; None when already answered."""
        gate = self._api_gate(route, "ReadCallRecording", group, knob)
        if gate is None:
            return None
        rate, fault = gate
        rec = self._find_recording(route, recording_id, rate)
        return None if rec is None else (rec, rate, fault)

    def _recording(self, recording_id: str) -> None:
        route = "recording"
        found = self._recording_gate(route, recording_id)
        if found is None:
            return
        rec, rate, fault = found
        payload = {
            "id": rec.id,
            "contentUri": self._recording_json(rec)["contentUri"],
            "contentType": rec.content_type,
            "duration": rec.duration,
        }
        self._send(route, 200, payload, rate, fault)

    def _content(self, recording_id: str) -> None:
        route = "content"
        readings, cfg = self.state.readings, self.state.config
        found = self._recording_gate(route, recording_id, readings.media_group, cfg.content_error)
        if found is None:
            return
        rec, rate, fault = found
        if readings.media_accept == "refuse" and not accepts(self.headers.get("Accept"), rec.content_type):
            # U20 reading B: a binary download asked for as JSON is refused, as the official SDKs found
            # in 2022 (ringcentral-python#51, -js#196, -php#114); they name no code, so the body is
            # the generic invalid-parameter one, naming the header.
            self._error(
                route,
                406,
                "CMN-101",
                f"Requested media type is not acceptable: the recording is {rec.content_type}",
                rate,
                parameterName="Accept",
                parameterValue=(self.headers.get("Accept") or "")[:100],
            )
            return
        start, end, status = 0, rec.size, 200
        headers = {**rate, "Accept-Ranges": "bytes", "Content-Type": rec.content_type}
        range_header = self.headers.get("Range")
        if range_header:
            parsed = _parse_range(range_header, rec.size)
            if parsed is None:
                self._reply(route, RANGE_NOT_SATISFIABLE, {**rate, "Content-Range": f"bytes */{rec.size}"})
                return
            start, end = parsed
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{rec.size}"
        self.state.stats.count(route, status)
        self.state.stats.count_download(rec.id)
        by_close = cfg.content_framing == "close"
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if by_close:
            # The body ends where the connection does (RFC 9112 6.3, last rule): no Content-Length and
            # no chunked coding, so the client cannot tell a cut body from a whole one by framing.
            # send_header sets close_connection for this header; set it outright all the same, as the
            # keep-alive loop must not read another request from a connection whose end is the body's.
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(end - start))
        self.end_headers()
        cut = end
        if fault == "truncate":
            cut = start + self.state.faults.truncate_point(end - start)
        self._stream(self.state.data.iter_content(rec, start, cut))
        if cut < end and not by_close:
            # Fewer bytes than Content-Length, then the end: the client sees an incomplete body.
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        # Under "close" a cut body ends like a whole one: the handler returns, finish() flushes and the
        # server closes the connection (FIN, not RST), which is the clean end of body the client expects.

    def _stream(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            self.wfile.write(chunk)


def accepts(header: str | None, content_type: str) -> bool:
    """Whether an Accept header admits `content_type` (no header, `*/*`, `audio/*` or the type itself;
    a range with q=0 refuses)."""
    if not header or not header.strip():
        return True
    major = content_type.split("/", 1)[0]
    for item in header.split(","):
        media_range, *params = (part.strip().lower() for part in item.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media_range in ("*/*", f"{major}/*", content_type):
            return True
    return False


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """A single `bytes=` range as [start, end); None when unsatisfiable or malformed."""
    unit, _, spec = header.partition("=")
    if unit.strip() != "bytes" or "," in spec:
        return None
    first, _, last = spec.strip().partition("-")
    try:
        if first == "":
            length = int(last)
            if length <= 0:
                return None
            return max(0, size - length), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or end <= start:
        return None
    return start, min(end, size)
