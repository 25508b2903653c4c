"""The daemon's "run now": SIGUSR1 asks for an archive pass at once, and the log says who asked.

The signal is taken with sigtimedwait in a thread of its own rather than by a Python handler, for two
reasons: the siginfo names the sender (pid, uid, its command), which a handler never learns, and
the request is acted on in an ordinary thread, never inside the scheduler's main loop that a handler
would interrupt. So that sigtimedwait receives it, SIGUSR1 is blocked in the main thread before any
other thread starts (threads inherit the mask). A Python handler stays installed as a fallback for
a thread that did not inherit the mask: it queues the request without a sender rather than letting
SIGUSR1's default action end the daemon.
"""

from __future__ import annotations

import queue
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import structlog

log = structlog.get_logger(__name__)
SIGNAL = signal.SIGUSR1


def sender_of(info: signal.struct_siginfo | None) -> dict[str, object]:
    """Who sent the signal, for the log: pid, uid and the sender's command (e.g. `systemd` for
    `systemctl kill`, `kill` for ExecReload=)."""
    if info is None:
        return {"sender": "unknown"}
    try:
        command = Path(f"/proc/{info.si_pid}/comm").read_text().strip()
    except OSError:  # the sender already exited, or /proc is not ours to read
        command = "?"
    return {"sender": command, "sender_pid": info.si_pid, "sender_uid": info.si_uid}


class RunNowListener:
    """Calls `request(who)` for every SIGUSR1 until stopped; `request` decides whether a run starts."""

    def __init__(self, request: Callable[[dict[str, object]], None]) -> None:
        self._request = request
        self._stop = threading.Event()
        self._fallback: queue.SimpleQueue[dict[str, object]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="run-now", daemon=True)

    def install(self) -> bool:
        """Block SIGUSR1 in this thread (call before starting other threads) and start listening.
        False (and no "run now") when not called from the main thread, as in tests that run the
        daemon in a thread: signals are the main thread's to take."""
        if threading.current_thread() is not threading.main_thread():
            return False
        signal.pthread_sigmask(signal.SIG_BLOCK, {SIGNAL})
        signal.signal(SIGNAL, self._handle_stray)
        self._thread.start()
        return True

    def _handle_stray(self, signum: int, frame: FrameType | None) -> None:
        self._fallback.put({"sender": "unknown"})  # SimpleQueue.put is safe in a signal handler

    def _loop(self) -> None:
        while not self._stop.is_set():
            info = signal.sigtimedwait({SIGNAL}, 0.5)  # a timeout, to notice stop()
            if info is not None:
                self._ask(sender_of(info))
            while not self._fallback.empty():
                self._ask(self._fallback.get())

    def _ask(self, who: dict[str, object]) -> None:
        try:
            self._request(who)
        except Exception as exc:  # a bad request must not end the listener
            log.error("run_now_failed", error=repr(exc), **who)

    def stop(self) -> None:
        self._stop.set()
