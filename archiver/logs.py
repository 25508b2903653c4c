"""Logging, configured once by the CLI: structlog, JSON lines off a TTY, a console format on one.

The standard-library loggers (boto3, botocore, urllib3, apscheduler) go through the same pipeline,
and every event passes the redaction step last before rendering: values under secret-looking keys,
any secret the process knows (JWT, client secret, access tokens: see register_secret), and
Authorization-style strings are replaced, at every level, in messages and tracebacks alike.

Every line names its `logger`. A third-party library's line becomes the event `library_log` with
its sentence in `message`, so events stay snake_case names to filter on. When stdout is the journal
(systemd sets JOURNAL_STREAM to its device and inode), each line starts with the syslog priority
(`<3>` error ... `<7>` debug) so `journalctl -p err` filters. While a terminal progress bar is shown,
console lines go through the bar's writer (set_console_writer) so they print above it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"(?i)(authorization|access_token|refresh_token|^token$|jwt|assertion|secret|password|credential|cookie)"
)
_SECRET_TEXT = [  # the secret part follows the group named keep, which is left in place
    re.compile(r"(?i)(?P<keep>\b(?:bearer|basic)(?:\s+|%20))[A-Za-z0-9._~+/=\-]{8,}"),
    re.compile(r"(?P<keep>)eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),  # JWT-shaped
    re.compile(r"(?i)(?P<keep>\b(?:assertion|access_token|refresh_token|client_secret|token)=)[^&\s'\"]+"),
    re.compile(r"(?P<keep>(?:Signature|Credential)=)[^,\s'\"]+"),
]
_known: set[str] = set()
_known_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Every later log line has this value replaced, wherever it appears."""
    if value and len(value) >= 6:
        with _known_lock:
            _known.add(value)


def redact_text(text: str) -> str:
    with _known_lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_TEXT:
        text = pattern.sub(r"\g<keep>" + REDACTED, text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", 0):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(key, v) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    if isinstance(value, int | float | bool) or value is None:
        return value
    return redact_text(str(value))


def redact(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """The structlog processor: must run after exceptions are formatted and before rendering."""
    return {k: _redact_value(k, v) for k, v in event_dict.items()}


LIBRARY_EVENT = "library_log"
_OWN_LOGGER = "archiver"


def _library_event(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A stdlib record (APScheduler, botocore, urllib3 ...) becomes an event with its sentence as
    `message`; the archiver's own stdlib records (if any) keep it as the event."""
    record = event_dict.get("_record")
    if record is None or event_dict.get("_from_structlog"):
        return event_dict
    message = str(event_dict.get("event", ""))  # already record.getMessage(): args merged
    name = str(record.name)
    if name == _OWN_LOGGER or name.startswith(_OWN_LOGGER + "."):
        event_dict["event"] = message
    else:
        event_dict["event"], event_dict["message"] = LIBRARY_EVENT, message
    return event_dict


# syslog priorities (sd-daemon(3)): what journald stores as PRIORITY= and `journalctl -p` filters on.
_PRIORITY = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
_DEBUG_PRIORITY = 7


def syslog_priority(levelno: int) -> int:
    return next((priority for level, priority in _PRIORITY if levelno >= level), _DEBUG_PRIORITY)


def stream_is_journal(stream: Any) -> bool:
    """True when `stream` is the journal stream systemd announced in JOURNAL_STREAM ("dev:inode")."""
    announced = os.environ.get("JOURNAL_STREAM", "")
    try:
        info = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):  # no file descriptor (a StringIO, a closed stream)
        return False
    return bool(announced) and announced == f"{info.st_dev}:{info.st_ino}"


_console_writer: Callable[[str], None] | None = None


def set_console_writer(write: Callable[[str], None] | None) -> None:
    """While set, console log lines (each without its newline) go to `write` instead of the stream:
    a terminal progress bar passes its own writer so lines print above the bar. None restores."""
    global _console_writer  # noqa: PLW0603 -- one console per process, like the root handler
    _console_writer = write


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each formatted line, with the journal's priority prefix when asked for, through the
    console writer when one is set."""

    def __init__(self, stream: Any, journal: bool) -> None:
        super().__init__(stream)
        self.journal = journal

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if self.journal:  # on every line: a multi-line console traceback keeps its priority
                prefix = f"<{syslog_priority(record.levelno)}>"
                text = "\n".join(prefix + line for line in text.splitlines())
            writer = _console_writer
            if writer is not None:
                writer(text)
                return
            self.stream.write(text + "\n")
            self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def configure_logging(
    level: str = "info", fmt: str = "json", stream: Any = None, journal: bool | None = None
) -> None:
    """Configure logging once for the process; `journal` None detects a journal stdout."""
    out = stream or sys.stdout
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            _library_event,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = _Handler(out, stream_is_journal(out) if journal is None else journal)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    numeric = getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    for noisy in ("botocore", "boto3", "s3transfer", "urllib3"):
        # Their DEBUG output is huge; at our debug level keep them at INFO unless asked for by name.
        logging.getLogger(noisy).setLevel(max(numeric, logging.INFO))
    structlog.configure(
        processors=[
            # First: a disabled level costs one check, not a trip through the whole pipeline.
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def bind(**values: Any) -> None:
    """Bind values (run_id, ...) to every later event of this context (copied into worker threads)."""
    structlog.contextvars.bind_contextvars(**values)
