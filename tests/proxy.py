"""A small TCP proxy on loopback that tests put between the archiver and a server, then cut and restore.

Cut: every open connection is reset (RST, both sides) and every new one is accepted and reset at once,
as when a network path or a server dies. Freeze: nothing is forwarded any more and nothing is closed:
open connections fall silent, new ones are accepted and never answered, as when a server hangs
(SIGSTOP, a stuck disk) or a firewall drops packets. Restore: connections are forwarded again (what
was frozen is reset first: its requests are long given up).
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from types import TracebackType

LINGER_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST instead of FIN


def _reset(sock: socket.socket) -> None:
    """Reset a connection now. shutdown() first: a close() alone waits for a pump thread's blocked
    recv() on the same socket to return, which on an idle connection is never."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._up = True
        self._flowing = threading.Event()  # cleared while frozen: every pump holds its bytes
        self._flowing.set()
        self._frozen: set[socket.socket] = set()  # accepted while frozen: held open, never forwarded
        self._stopping = threading.Event()
        self.accepted = 0
        self.refused = 0
        self._thread = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    @classmethod
    def to_url(cls, url: str) -> TcpProxy:
        """A proxy in front of http://HOST:PORT."""
        host, _, port = url.removeprefix("http://").rstrip("/").partition(":")
        return cls(host, int(port))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        return self

    def cut(self) -> None:
        with self._lock:
            self._up = False
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def freeze(self) -> None:
        self._flowing.clear()

    def restore(self) -> None:
        if not self._flowing.is_set():
            self.cut()  # frozen connections end; their clients gave up long ago
        with self._lock:
            self._up = True
            doomed, self._frozen = self._frozen, set()
        for sock in doomed:
            _reset(sock)
        self._flowing.set()

    def stop(self) -> None:
        self._stopping.set()
        self.restore()
        self.cut()
        self._thread.join(timeout=5)
        self._listener.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                up = self._up
                if not self._flowing.is_set():
                    self._frozen.add(client)  # accepted (the kernel did), never answered
                    continue
            if not up:
                self.refused += 1
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                if not self._up:  # cut while connecting
                    _reset(client)
                    _reset(upstream)
                    continue
                self._open.update((client, upstream))
                self.accepted += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), name="proxy-pump", daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self._flowing.wait(0.2):  # frozen: hold the bytes, close nothing
                    if self._stopping.is_set() or src not in self._open:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # One side ended: end the other (its pump then ends too); forget both.
            with self._lock:
                known = src in self._open or dst in self._open
                self._open.discard(src)
                self._open.discard(dst)
            if known:
                for sock in (src, dst):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
