"""Logging: JSON lines, redaction of every secret shape, stdlib loggers through the same pipeline."""

from __future__ import annotations

import io
import json
import logging

import structlog

from archiver.logs import REDACTED, configure_logging, redact_text, register_secret


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_logs_json_lines_with_timestamp_level_and_event() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    structlog.get_logger("t").info("recording_archived", recording_id="1", bytes=3)
    (event,) = lines(out)
    assert event["event"] == "recording_archived" and event["level"] == "info" and event["bytes"] == 3
    assert str(event["timestamp"]).endswith("Z")


def test_logs_redact_secret_keys_known_values_and_header_shapes() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", out)
    register_secret("known-secret-value-123")
    log = structlog.get_logger("t")
    log.debug(
        "x",
        authorization="Bearer abcdefghijk",
        jwt="anything",
        note="has known-secret-value-123 inside",
        header="Basic dXNlcjpwYXNzd29yZA==",
        url="https://h/?assertion=eyJabc&x=1",
    )
    logging.getLogger("botocore.endpoint").warning("sent %s", "Authorization: Bearer zzzzzzzzzzzz")
    text = out.getvalue()
    for secret in (
        "abcdefghijk",
        "anything",
        "known-secret-value-123",
        "dXNlcjpwYXNzd29yZA",
        "eyJabc",
        "zzzzzzzz",
    ):
        assert secret not in text
    assert text.count(REDACTED) >= 6
    assert '"logger": "botocore.endpoint"' in text  # stdlib records take the same path


def test_logs_redact_text_keeps_the_context() -> None:
    assert redact_text("Authorization: Bearer abcdefghijkl") == f"Authorization: Bearer {REDACTED}"
    assert redact_text("token=abc&x=1") == f"token={REDACTED}&x=1"
    assert redact_text("plain words stay") == "plain words stay"


def test_logs_exceptions_are_redacted_too() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    register_secret("secret-in-a-traceback")
    try:
        raise RuntimeError("boom with secret-in-a-traceback")
    except RuntimeError:
        structlog.get_logger("t").exception("failed")
    assert "secret-in-a-traceback" not in out.getvalue()
    assert "RuntimeError" in out.getvalue()
