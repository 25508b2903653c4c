"""Settings: names users depend on, the example file, secrets from files, errors naming the setting."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
import structlog

from archiver import settings as settings_module
from archiver import settings_docs
from archiver.emulator import Emulator
from archiver.errors import SettingsError
from archiver.settings import (
    DURATION_BOUNDS,
    ENV_NAMES,
    NON_NEGATIVE_DURATIONS,
    POSITIVE_DURATIONS,
    Settings,
    format_duration,
    load_settings,
    log_notices,
    parse_duration,
    parse_rate,
)
from tests.helpers import ROOT, SINCE, Run, folder_env, run_subprocess

EXAMPLE = ROOT / "config" / "rc-archiver.example.toml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("RC_", "CREDENTIALS_DIRECTORY", "STATE_DIRECTORY")):
            monkeypatch.delenv(name)


def test_settings_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert settings.server_url == "https://platform.ringcentral.com"
    assert settings.key_template == "{start:%Y/%m/%d}/{recording_id}.{ext}"
    assert settings.lookback == timedelta(hours=24) and settings.settle_delay == timedelta(hours=1)
    assert settings.heavy_rate == (10, 60.0) and settings.auth_rate == (5, 60.0)
    assert settings.state_path == "./rc-archiver-state.db"
    assert settings.upload_concurrency == 4 and settings.max_attempts == 5
    assert settings.stop_timeout == timedelta(seconds=20)


def test_settings_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    expected = {
        "server_url": "RC_SERVER_URL",
        "client_id": "RC_CLIENT_ID",
        "client_secret": "RC_CLIENT_SECRET",
        "jwt": "RC_JWT",
        "client_secret_file": "RC_CLIENT_SECRET_FILE",
        "jwt_file": "RC_JWT_FILE",
        "destination": "RC_ARCHIVER_DESTINATION",
        "state_path": "RC_ARCHIVER_STATE_PATH",
        "key_template": "RC_ARCHIVER_KEY_TEMPLATE",
        "log_format": "RC_ARCHIVER_LOG_FORMAT",
        "log_level": "RC_ARCHIVER_LOG_LEVEL",
        "timezone": "RC_ARCHIVER_TIMEZONE",
        "lookback": "RC_ARCHIVER_LOOKBACK",
        "settle_delay": "RC_ARCHIVER_SETTLE_DELAY",
        "rate_heavy": "RC_ARCHIVER_RATE_HEAVY",
        "rate_auth": "RC_ARCHIVER_RATE_AUTH",
        "upload_concurrency": "RC_ARCHIVER_UPLOAD_CONCURRENCY",
        "max_attempts": "RC_ARCHIVER_MAX_ATTEMPTS",
        "spool_dir": "RC_ARCHIVER_SPOOL_DIR",
        "stop_timeout": "RC_ARCHIVER_STOP_TIMEOUT",
    }
    for field, env in expected.items():
        assert ENV_NAMES[field] == env
    monkeypatch.setenv("RC_ARCHIVER_LOOKBACK", "2d")
    monkeypatch.setenv("RC_ARCHIVER_DESTINATION", "s3://my-bucket/calls")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    settings = load_settings()
    assert settings.lookback == timedelta(days=2)
    assert settings.destination == "s3://my-bucket/calls"
    assert settings.state_path == str(tmp_path / "state.db")  # systemd's StateDirectory=


def test_settings_example_file_loads_and_names_every_setting() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.destination == "s3://example-call-recordings/ringcentral"
    text = EXAMPLE.read_text()
    for field in ENV_NAMES:
        if field not in ("client_secret", "jwt"):
            documented = f"\n{field} = " in text or f"\n# {field} = " in text
            assert documented, f"{field} is not documented in the example config"


def test_settings_environment_wins_over_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_LOOKBACK", "3h")
    assert load_settings(EXAMPLE).lookback == timedelta(hours=3)


def test_settings_secrets_from_files_and_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "jwt").write_text("jwt-from-file\n")
    monkeypatch.setenv("RC_JWT_FILE", str(tmp_path / "jwt"))
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "rc_client_secret").write_text("secret-from-systemd")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    settings = load_settings()
    assert settings.jwt is not None and settings.jwt.get_secret_value() == "jwt-from-file"
    assert (
        settings.client_secret is not None
        and settings.client_secret.get_secret_value() == "secret-from-systemd"
    )
    assert "jwt-from-file" not in repr(settings)


def test_settings_unreadable_secret_file_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("RC_JWT_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="RC_JWT_FILE"):
        load_settings()


def test_settings_secrets_in_the_toml_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('jwt = "eyJ..."\n')
    with pytest.raises(SettingsError, match="must not be stored"):
        load_settings(config)


def test_settings_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('destnation = "s3://x"\n')
    with pytest.raises(SettingsError, match="destnation"):
        load_settings(config)


def test_settings_every_bad_field_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_LOOKBACK", "soon")
    monkeypatch.setenv("RC_ARCHIVER_UPLOAD_CONCURRENCY", "0")
    monkeypatch.setenv("RC_ARCHIVER_LOG_FORMAT", "xml")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    for name in ("RC_ARCHIVER_LOOKBACK", "RC_ARCHIVER_UPLOAD_CONCURRENCY", "RC_ARCHIVER_LOG_FORMAT"):
        assert name in str(raised.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("24h", 86400),
        ("90m", 5400),
        ("1h30m", 5400),
        ("2d", 172800),
        ("45s", 45),
        ("0s", 0),
        ("0", 0),  # zero is zero in every unit
        ("0.0", 0),
        (0, 0),  # a TOML zero
        ("500ms", 0.5),  # `ms` is not `m` + `s`
        ("1s500ms", 1.5),
        ("1.5h", 5400),
        (" 2 h ", 7200),
        ("3650d", 3650 * 86400),
    ],
)
def test_settings_parse_duration(text: str | int, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("7", "has no unit: add one, e.g. 7d"),  # 7 seconds, or 7 days? Refused, never guessed
        ("45", "has no unit"),
        ("0.5", "has no unit"),
        ("1e3", "has no unit"),
        (7, "has no unit"),  # a TOML integer
        (2.5, "has no unit"),  # a TOML float
        ("", "use a number with a unit"),
        ("h", "use a number with a unit"),
        ("1 fortnight", "use a number with a unit"),
        ("1h-", "use a number with a unit"),
        ("-1h", "must not be negative"),
        ("-0.5s", "must not be negative"),
        ("-5", "must not be negative"),
        (-5, "must not be negative"),
        ("inf", "use a number with a unit"),
        ("nan", "use a number with a unit"),
        ("infd", "use a number with a unit"),
        (float("inf"), "use a number with a unit"),
        (float("nan"), "use a number with a unit"),
        ("99999999d", "too long"),  # was accepted, then every run died with an OverflowError
        ("9" * 400 + "d", "too long"),  # a float overflows to inf
        ("36501d", "too long"),
        (True, "use a number with a unit"),  # a TOML boolean
    ],
)
def test_settings_parse_duration_refuses(text: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=15), "15d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(0), "0s"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(days=1, seconds=1), "1d1s"),
    ],
)
def test_settings_format_duration_round_trips(value: timedelta, text: str) -> None:
    assert format_duration(value) == text and parse_duration(text) == value


def test_settings_parse_rate() -> None:
    assert parse_rate("10/60s") == (10, 60.0)
    assert parse_rate("40/1m") == (40, 60.0)
    assert parse_rate("5/500ms") == (5, 0.5)
    for bad in ("10", "0/60s", "x/60s", "10/0s", "10/60", "10/2d", "10/99999999d", "10/inf"):
        with pytest.raises(ValueError, match="invalid rate"):
            parse_rate(bad)


# -- checked at load: every bad setting is one line naming its variable ---------------------------
@pytest.mark.parametrize("name", ["RC_JWT", "RC_CLIENT_SECRET"])
@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_settings_blank_secrets_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=f"{name}: is empty") as raised:
        load_settings()
    assert "\n" not in str(raised.value)
    assert f"{name}_FILE" in str(raised.value)  # the alternative is named


def test_settings_secrets_lose_surrounding_whitespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_JWT", "  eyJ.body.sig\n")
    settings = load_settings()
    assert settings.jwt is not None and settings.jwt.get_secret_value() == "eyJ.body.sig"


@pytest.mark.parametrize("name", ["RC_JWT_FILE", "RC_CLIENT_SECRET_FILE"])
def test_settings_blank_secret_file_variable_is_refused(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "")
    with pytest.raises(SettingsError, match=f"{name}: is empty"):
        load_settings()


def test_settings_blank_metrics_file_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_METRICS_FILE", "")
    assert load_settings().metrics_file is None


# -- durations: every duration setting, table-driven ------------------------------------------------
DURATION_FIELDS = sorted(name for name, info in Settings.model_fields.items() if info.annotation is timedelta)


def test_settings_every_duration_is_classified_and_bounded() -> None:
    # A new duration setting must say whether 0 is allowed and how long it may be.
    assert DURATION_FIELDS
    assert set(DURATION_FIELDS) == set(POSITIVE_DURATIONS) | set(NON_NEGATIVE_DURATIONS)
    assert not set(POSITIVE_DURATIONS) & set(NON_NEGATIVE_DURATIONS)
    assert set(DURATION_FIELDS) == set(DURATION_BOUNDS)
    assert DURATION_BOUNDS["delete_after"] == timedelta(days=3650)
    assert DURATION_BOUNDS["source_retention"] == timedelta(days=3650)
    assert all(timedelta(0) < bound <= settings_module.LONGEST_DURATION for bound in DURATION_BOUNDS.values())


def refused(field: str, message: str, config: Path | None = None) -> str:
    """The one-line SettingsError of loading, naming the field's variable."""
    with pytest.raises(SettingsError) as raised:
        load_settings(config)
    text = str(raised.value)
    assert f"{ENV_NAMES[field]}: " in text and message in text, text
    assert "\n" not in text
    return text


@pytest.mark.parametrize("field", DURATION_FIELDS)
@pytest.mark.parametrize("value", ["7", "45", "1.5", "86400"])
def test_settings_durations_refuse_bare_numbers(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], value)
    refused(field, f"'{value}' has no unit: add one, e.g. 7d, 12h, 30s")


@pytest.mark.parametrize("field", DURATION_FIELDS)
@pytest.mark.parametrize("value", ["7", "7.5", "-5"])
def test_settings_durations_refuse_toml_numbers(tmp_path: Path, field: str, value: str) -> None:
    # A TOML number reaches the same parser as the environment's text: a bare number, refused.
    config = tmp_path / "c.toml"
    config.write_text(f"{field} = {value}\n")
    refused(field, "must not be negative" if value.startswith("-") else "has no unit", config)


@pytest.mark.parametrize("field", DURATION_FIELDS)
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("inf", "use a number with a unit"),
        ("nan", "use a number with a unit"),
        ("-1s", "must not be negative"),
        ("-0.5h", "must not be negative"),
        ("99999999d", "too long"),
        ("9" * 400 + "d", "too long"),
        ("soon", "use a number with a unit"),
    ],
)
def test_settings_durations_refuse_nonsense_and_overflow(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str, message: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], value)
    refused(field, message)


@pytest.mark.parametrize("field", DURATION_FIELDS)
def test_settings_durations_accept_milliseconds(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    monkeypatch.setenv(ENV_NAMES[field], "500ms")
    assert getattr(load_settings(), field) == timedelta(milliseconds=500)


@pytest.mark.parametrize("field", DURATION_FIELDS)
def test_settings_durations_have_an_upper_bound(monkeypatch: pytest.MonkeyPatch, field: str) -> None:
    bound = DURATION_BOUNDS[field]
    monkeypatch.setenv(ENV_NAMES[field], format_duration(bound))
    if field == "risk_window":  # as long as the retention: accepted, with a notice
        monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", "3650d")
    assert getattr(load_settings(), field) == bound
    monkeypatch.setenv(ENV_NAMES[field], format_duration(bound + timedelta(seconds=1)))
    refused(field, f"is too long: at most {format_duration(bound)}")


@pytest.mark.parametrize("field", POSITIVE_DURATIONS)
@pytest.mark.parametrize("value", ["0s", "0", "0ms"])
def test_settings_durations_that_must_be_positive_refuse_zero(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], value)
    refused(field, "must be longer than 0s")


@pytest.mark.parametrize("field", NON_NEGATIVE_DURATIONS)
@pytest.mark.parametrize("value", ["0s", "0", "0ms"])
def test_settings_durations_where_zero_means_something_accept_zero(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], value)
    assert getattr(load_settings(), field) == timedelta(0)


@pytest.mark.parametrize("field", NON_NEGATIVE_DURATIONS)
def test_settings_durations_accept_a_toml_zero(tmp_path: Path, field: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"{field} = 0\n")
    assert getattr(load_settings(config), field) == timedelta(0)


@pytest.mark.parametrize(
    ("value", "message"),
    [("7", "'7' has no unit"), ("99999999d", "too long"), ("inf", "use a number with a unit")],
)
def test_settings_bad_delete_after_exits_2_naming_it_before_any_request(
    emulator: Emulator, tmp_path: Path, value: str, message: str
) -> None:
    """Through the real CLI, in a process of its own: RC_ARCHIVER_DELETE_AFTER=7 used to mean 7 seconds
    and delete; 99999999d used to end every run in an OverflowError traceback."""
    env = folder_env(
        emulator,
        tmp_path,
        RC_ARCHIVER_DELETE_FROM_SOURCE="true",
        RC_ARCHIVER_DELETE_AFTER=value,
    )
    for command in (["run", "--since", SINCE], ["check"]):
        result = run_subprocess(env, *command)
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "RC_ARCHIVER_DELETE_AFTER: " in output and message in output, output
        assert "Traceback" not in output and "OverflowError" not in output
    snapshot = emulator.stats.snapshot()
    assert snapshot["logins"] == 0 and not snapshot["requests"] and not snapshot["deleted"]
    assert not (tmp_path / "state" / "state.db").exists()  # before the state, the lock, anything


@pytest.mark.parametrize(
    "field",
    ["download_concurrency", "upload_concurrency", "max_attempts", "s3_max_attempts", "source_cap"],
)
@pytest.mark.parametrize("value", ["0", "-1"])
def test_settings_counts_refuse_zero_and_below(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], value)
    with pytest.raises(SettingsError, match=ENV_NAMES[field]):
        load_settings()


def test_settings_errors_are_one_line_naming_each_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_READ_TIMEOUT", "0")
    monkeypatch.setenv("RC_ARCHIVER_SCHEDULE", "every night")
    monkeypatch.setenv("RC_JWT", "")
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert "\n" not in message
    for name in ("RC_ARCHIVER_READ_TIMEOUT", "RC_ARCHIVER_SCHEDULE", "RC_JWT"):
        assert f"{name}: " in message


@pytest.mark.parametrize(
    "template",
    [
        "{recording_id}.json",  # the sidecar would overwrite the audio
        "{recording_id}.{ext}.json",
        "{start:%Y}/../{recording_id}.{ext}",
        "a//{recording_id}.{ext}",
    ],
)
def test_settings_unsafe_key_templates_are_refused_at_load(
    monkeypatch: pytest.MonkeyPatch, template: str
) -> None:
    monkeypatch.setenv("RC_ARCHIVER_KEY_TEMPLATE", template)
    with pytest.raises(SettingsError, match="RC_ARCHIVER_KEY_TEMPLATE"):
        load_settings()


# -- the settings other parts implement ------------------------------------------------------------
def test_settings_new_defaults() -> None:
    settings = load_settings()
    assert settings.exhausted_retry_interval == timedelta(hours=24)
    assert settings.source_retention == timedelta(days=90)
    assert settings.source_cap == 100_000
    assert settings.delete_from_source is False
    assert settings.delete_after == timedelta(days=7)
    assert settings.pushgateway_url == ""
    assert settings.risk_window == timedelta(days=15) and settings.risk_days is None
    assert settings.notices == ()


def test_settings_new_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL", "6h")
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", "900s")
    monkeypatch.setenv("RC_ARCHIVER_RISK_WINDOW", "5m")
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_CAP", "500")
    monkeypatch.setenv("RC_ARCHIVER_DELETE_FROM_SOURCE", "true")
    monkeypatch.setenv("RC_ARCHIVER_DELETE_AFTER", "0s")
    monkeypatch.setenv("RC_ARCHIVER_PUSHGATEWAY_URL", "http://127.0.0.1:9091/")
    settings = load_settings()
    assert settings.exhausted_retry_interval == timedelta(hours=6)
    assert settings.source_retention == timedelta(seconds=900)
    assert settings.risk_window == timedelta(minutes=5) and settings.source_cap == 500
    assert settings.delete_from_source is True and settings.delete_after == timedelta(0)
    assert settings.pushgateway_url == "http://127.0.0.1:9091"


def test_settings_pushgateway_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_PUSHGATEWAY_URL", "pushgateway:9091")
    with pytest.raises(SettingsError, match="RC_ARCHIVER_PUSHGATEWAY_URL: must be an http"):
        load_settings()


# -- at risk: a window before each recording's deadline (issue 18 item 2) -------------------------------
@pytest.mark.parametrize("retention", ["30d", "1h", "10d", "75d", "90d", "3650d"])
def test_settings_any_retention_works_alone(monkeypatch: pytest.MonkeyPatch, retention: str) -> None:
    # The README's advice, "set 30d for a HIPAA-configured account", used to exit 2 (RISK_DAYS 75).
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", retention)
    settings = load_settings()
    assert settings.source_retention == parse_duration(retention)
    assert settings.risk_window == timedelta(days=15)


@pytest.mark.parametrize(("retention", "window"), [("30d", "30d"), ("1h", "15d"), ("10d", "3650d")])
def test_settings_a_risk_window_as_long_as_the_retention_is_a_notice_not_an_error(
    monkeypatch: pytest.MonkeyPatch, retention: str, window: str
) -> None:
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", retention)
    monkeypatch.setenv("RC_ARCHIVER_RISK_WINDOW", window)
    settings = load_settings()
    assert settings.risk_window == parse_duration(window)
    (notice,) = settings.notices
    assert "RC_ARCHIVER_RISK_WINDOW" in notice and "every recording not yet archived" in notice


@pytest.mark.parametrize(
    ("retention", "days", "window"),
    [("90d", "75", "15d"), ("30d", "25", "5d"), ("30d", "75", "0s"), ("1h", "0", "1h"), ("900s", "0", "15m")],
)
def test_settings_risk_days_is_still_read_as_a_window_with_one_deprecation_line(
    monkeypatch: pytest.MonkeyPatch, retention: str, days: str, window: str
) -> None:
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", retention)
    monkeypatch.setenv("RC_ARCHIVER_RISK_DAYS", days)
    settings = load_settings()
    assert settings.risk_window == parse_duration(window)  # retention - days, at least 0
    (notice,) = settings.notices
    assert notice.startswith("RC_ARCHIVER_RISK_DAYS is deprecated: read as RC_ARCHIVER_RISK_WINDOW=")
    assert f"RC_ARCHIVER_RISK_WINDOW={window}" in notice and "\n" not in notice


def test_settings_risk_window_wins_over_risk_days(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RC_ARCHIVER_RISK_DAYS", "80")
    monkeypatch.setenv("RC_ARCHIVER_RISK_WINDOW", "20d")
    settings = load_settings()
    assert settings.risk_window == timedelta(days=20)
    (notice,) = settings.notices
    assert "RC_ARCHIVER_RISK_DAYS is deprecated and ignored" in notice and "RC_ARCHIVER_RISK_WINDOW" in notice
    # The same from the TOML file.
    monkeypatch.delenv("RC_ARCHIVER_RISK_DAYS")
    monkeypatch.delenv("RC_ARCHIVER_RISK_WINDOW")
    config = tmp_path / "c.toml"
    config.write_text('risk_days = 80\nrisk_window = "20d"\n')
    assert load_settings(config).risk_window == timedelta(days=20)


def test_settings_risk_days_keeps_its_range(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_RISK_DAYS", "-1")
    with pytest.raises(SettingsError, match="RC_ARCHIVER_RISK_DAYS: "):
        load_settings()


def test_settings_notices_are_logged_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(settings_module, "_LOGGED_NOTICES", set())
    monkeypatch.setenv("RC_ARCHIVER_RISK_DAYS", "75")
    settings = load_settings()
    with structlog.testing.capture_logs() as logs:
        log_notices(settings)
        log_notices(settings)
        log_notices(load_settings())
    assert len(logs) == 1
    assert logs[0]["log_level"] == "warning" and logs[0]["event"] == "settings_warning"
    assert "RC_ARCHIVER_RISK_DAYS" in logs[0]["warning"] and "RC_ARCHIVER_RISK_WINDOW" in logs[0]["warning"]


def test_settings_hipaa_retention_alone_runs_and_risk_days_still_works_end_to_end(
    emulator: Emulator, tmp_path: Path, run_archiver: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    """RC_ARCHIVER_SOURCE_RETENTION=30d and nothing else about risk: a run archives everything, `status`
    reports the window; RC_ARCHIVER_RISK_DAYS still accepted, with one deprecation line in the log."""
    monkeypatch.setattr(settings_module, "_LOGGED_NOTICES", set())
    env = folder_env(emulator, tmp_path, RC_ARCHIVER_SOURCE_RETENTION="30d")
    code, events = run_archiver(env, "run", "--since", SINCE)
    summary = next(e for e in events if e["event"] == "run_summary")
    assert code == 0 and summary["archived"] > 0, summary
    assert not [e for e in events if e["event"] == "settings_warning"]

    result = run_subprocess(env, "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["risk_window"] == "15d" and report["at_risk"] == []  # deadlines are 26+ days away

    # RISK_DAYS=29 with a 30-day retention: read as a window of 1 day.
    result = run_subprocess({**env, "RC_ARCHIVER_RISK_DAYS": "29"}, "status", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["risk_window"] == "1d"
    warnings = [line for line in result.stderr.splitlines() if "settings_warning" in line]
    assert len(warnings) == 1 and "RC_ARCHIVER_RISK_DAYS is deprecated" in warnings[0], result.stderr
    assert "RC_ARCHIVER_RISK_WINDOW=1d" in warnings[0]

    code, events = run_archiver({**env, "RC_ARCHIVER_RISK_DAYS": "29"}, "run", "--since", SINCE)
    assert code == 0
    assert len([e for e in events if e["event"] == "settings_warning"]) == 1


# -- documented once --------------------------------------------------------------------------------


def test_settings_docs_match_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = settings_docs.main(["--check", "--root", str(ROOT)])
    assert code == 0, capsys.readouterr().err


def test_settings_docs_check_names_each_drifted_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    reference = (ROOT / settings_docs.REFERENCE).read_text()
    start, end = reference.index("<!-- settings:start -->"), reference.index("<!-- settings:end -->")
    # Drift inside the generated table only (the prose around it names settings too).
    drifted = (
        reference[:start]
        + reference[start:end].replace("`RC_ARCHIVER_SOURCE_CAP`", "`RC_OLD`")
        + reference[end:]
    )
    (tmp_path / settings_docs.REFERENCE).parent.mkdir(parents=True)
    (tmp_path / settings_docs.REFERENCE).write_text(drifted)
    (tmp_path / "config" / "rc-archiver.example.toml").write_text(EXAMPLE.read_text() + "# edited\n")
    assert settings_docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "docs/reference/settings.md" in err and "rc-archiver.example.toml" in err and "--write" in err
    assert settings_docs.main(["--write", "--root", str(tmp_path)]) == 0
    assert settings_docs.main(["--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / settings_docs.REFERENCE).read_text() == reference


def test_settings_docs_check_refuses_a_reference_page_without_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / settings_docs.REFERENCE).parent.mkdir(parents=True)
    (tmp_path / settings_docs.REFERENCE).write_text("# no table here\n")
    (tmp_path / "config" / "rc-archiver.example.toml").write_text(settings_docs.example_toml())
    assert settings_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "settings:start" in capsys.readouterr().err


def test_settings_docs_name_every_variable_in_the_reference() -> None:
    block = settings_docs.reference_block()
    for field, env in ENV_NAMES.items():
        assert f"| `{env}` |" in block, field


SECRET_FILES = ("client_secret_file", "jwt_file")


def test_settings_example_values_are_all_valid(tmp_path: Path) -> None:
    # Uncommenting any line of the example must give a loadable file (the secret files excepted:
    # their example paths do not exist here).
    lines = []
    for line in EXAMPLE.read_text().splitlines():
        setting = line.removeprefix("# ")
        name = setting.split(" = ", 1)[0]
        if " = " in setting and name in ENV_NAMES and name not in SECRET_FILES:
            lines.append(setting)
    shown = {line.split(" = ", 1)[0] for line in lines}
    assert shown == set(ENV_NAMES) - {"client_secret", "jwt", *SECRET_FILES}
    config = tmp_path / "all.toml"
    config.write_text("\n".join(lines) + "\n")
    settings = load_settings(config)
    assert settings.state_path == "/var/lib/rc-archiver/state.db"
    assert settings.metrics_file == Path("/var/lib/node_exporter/textfile/rc-archiver.prom")
