"""Logging: JSON lines, redaction of every secret shape, stdlib loggers through the same pipeline."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import pytest
import structlog

from archiver.logs import (
    LIBRARY_EVENT,
    REDACTED,
    bind,
    configure_logging,
    redact_text,
    register_secret,
    set_console_writer,
    stream_is_journal,
)


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


def test_logs_every_line_names_its_logger() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    structlog.get_logger("archiver.archive").info("recording_archived", recording_id="1")
    logging.getLogger("apscheduler.scheduler").info("Scheduler started")
    own, foreign = lines(out)
    assert own["logger"] == "archiver.archive" and foreign["logger"] == "apscheduler.scheduler"


def test_logs_library_sentences_become_events_with_the_message_as_a_field() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    logging.getLogger("apscheduler.executors.default").warning("Run time of job %r was missed", "archive")
    logging.getLogger("urllib3.connectionpool").warning("Retrying (%d attempts left)", 2)
    first, second = lines(out)
    assert first["event"] == LIBRARY_EVENT and first["message"] == "Run time of job 'archive' was missed"
    assert second["event"] == LIBRARY_EVENT and second["message"] == "Retrying (2 attempts left)"
    assert first["level"] == "warning"


def test_logs_carry_the_syslog_priority_when_stdout_is_the_journal() -> None:
    out = io.StringIO()
    configure_logging("debug", "json", out, journal=True)
    log = structlog.get_logger("archiver.t")
    log.debug("a")
    log.info("b")
    log.warning("c")
    log.error("d")
    logging.getLogger("botocore.credentials").error("Unable to locate credentials")
    prefixes = [line[:3] for line in out.getvalue().splitlines()]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>", "<3>"]
    assert json.loads(out.getvalue().splitlines()[3][3:])["event"] == "d"  # the rest is the JSON line


def test_logs_without_the_journal_lines_have_no_prefix() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    structlog.get_logger("archiver.t").error("d")
    assert out.getvalue().startswith("{")


def test_logs_stream_is_journal_only_when_journal_stream_names_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (tmp_path / "journal").open("w") as journal, (tmp_path / "other").open("w") as other:
        info = os.fstat(journal.fileno())
        monkeypatch.setenv("JOURNAL_STREAM", f"{info.st_dev}:{info.st_ino}")
        assert stream_is_journal(journal) is True
        assert stream_is_journal(other) is False
        assert stream_is_journal(io.StringIO()) is False
        monkeypatch.delenv("JOURNAL_STREAM")
        assert stream_is_journal(journal) is False


def test_logs_go_through_the_console_writer_while_one_is_set() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    written: list[str] = []
    set_console_writer(written.append)
    try:
        structlog.get_logger("archiver.t").info("above_the_bar", n=1)
    finally:
        set_console_writer(None)
    structlog.get_logger("archiver.t").info("after_the_bar")
    assert len(written) == 1 and json.loads(written[0])["event"] == "above_the_bar"
    assert not written[0].endswith("\n")
    assert [e["event"] for e in lines(out)] == ["after_the_bar"]


def test_logs_bound_run_id_reaches_every_event_of_the_context() -> None:
    out = io.StringIO()
    configure_logging("info", "json", out)
    bind(run_id="r-1")
    try:
        structlog.get_logger("archiver.t").info("progress", done=1)
        logging.getLogger("botocore.hooks").warning("a library line")
    finally:
        structlog.contextvars.clear_contextvars()
    assert [e["run_id"] for e in lines(out)] == ["r-1", "r-1"]
