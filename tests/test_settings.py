"""Settings: names users depend on, the example file, secrets from files, errors naming the setting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from archiver.errors import SettingsError
from archiver.settings import ENV_NAMES, load_settings, parse_duration, parse_rate

EXAMPLE = Path(__file__).parents[1] / "config" / "rc-archiver.example.toml"


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
    [("24h", 86400), ("90m", 5400), ("1h30m", 5400), ("2d", 172800), ("45", 45), ("0s", 0)],
)
def test_settings_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "h", "1 fortnight", "-1h", "1h-"])
def test_settings_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_settings_parse_rate() -> None:
    assert parse_rate("10/60s") == (10, 60.0)
    assert parse_rate("40/1m") == (40, 60.0)
    for bad in ("10", "0/60s", "x/60s", "10/0s"):
        with pytest.raises(ValueError):
            parse_rate(bad)
