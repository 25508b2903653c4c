"""Logging, configured once by the CLI: structlog, JSON lines off a TTY, a console format on one.

The standard-library loggers (boto3, botocore, urllib3, apscheduler) go through the same pipeline,
and every event passes the redaction step last before rendering: values under secret-looking keys,
any secret the process knows (JWT, client secret, access tokens: see register_secret), and
Authorization-style strings are replaced, at every level, in messages and tracebacks alike.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
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


def _render_message(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # Foreign (stdlib) records arrive with positional args unmerged; render them into the event.
    record = event_dict.get("_record")
    if record is not None and event_dict.get("event") is record.msg and record.args:
        event_dict["event"] = record.getMessage()
    return event_dict


def configure_logging(level: str = "info", fmt: str = "json", stream: Any = None) -> None:
    out = stream or sys.stdout
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            _render_message,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
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
