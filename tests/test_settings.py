"""Settings: names users depend on, the example file, secrets from files, errors naming the setting."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from archiver import settings_docs
from archiver.errors import SettingsError
from archiver.settings import (
    ENV_NAMES,
    NON_NEGATIVE_DURATIONS,
    POSITIVE_DURATIONS,
    load_settings,
    parse_duration,
    parse_rate,
)

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


@pytest.mark.parametrize("field", POSITIVE_DURATIONS)
def test_settings_durations_that_must_be_positive_refuse_zero(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], "0s")
    with pytest.raises(SettingsError, match=f"{ENV_NAMES[field]}: must be longer than 0s"):
        load_settings()


@pytest.mark.parametrize("field", [*POSITIVE_DURATIONS, *NON_NEGATIVE_DURATIONS])
def test_settings_negative_durations_are_refused(tmp_path: Path, field: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"{field} = -5\n")  # a TOML number is seconds; the string forms cannot be negative
    with pytest.raises(SettingsError, match=ENV_NAMES[field]):
        load_settings(config)


@pytest.mark.parametrize("field", NON_NEGATIVE_DURATIONS)
def test_settings_durations_where_zero_means_something_accept_zero(
    monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    monkeypatch.setenv(ENV_NAMES[field], "0s")
    assert getattr(load_settings(), field) == timedelta(0)


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
    assert settings.risk_days == 75


def test_settings_new_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL", "6h")
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", "900s")
    monkeypatch.setenv("RC_ARCHIVER_RISK_DAYS", "0")  # the only value below 900 s in days
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_CAP", "500")
    monkeypatch.setenv("RC_ARCHIVER_DELETE_FROM_SOURCE", "true")
    monkeypatch.setenv("RC_ARCHIVER_DELETE_AFTER", "0s")
    monkeypatch.setenv("RC_ARCHIVER_PUSHGATEWAY_URL", "http://127.0.0.1:9091/")
    settings = load_settings()
    assert settings.exhausted_retry_interval == timedelta(hours=6)
    assert settings.source_retention == timedelta(seconds=900)
    assert settings.risk_days == 0 and settings.source_cap == 500
    assert settings.delete_from_source is True and settings.delete_after == timedelta(0)
    assert settings.pushgateway_url == "http://127.0.0.1:9091"


def test_settings_pushgateway_url_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_PUSHGATEWAY_URL", "pushgateway:9091")
    with pytest.raises(SettingsError, match="RC_ARCHIVER_PUSHGATEWAY_URL: must be an http"):
        load_settings()


def test_settings_risk_days_must_be_below_the_retention(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RC_ARCHIVER_SOURCE_RETENTION", "30d")  # a HIPAA account; risk_days stays 75
    with pytest.raises(SettingsError, match=r"RC_ARCHIVER_RISK_DAYS \(75\) must be below") as raised:
        load_settings()
    assert "RC_ARCHIVER_SOURCE_RETENTION" in str(raised.value)
    monkeypatch.setenv("RC_ARCHIVER_RISK_DAYS", "25")
    assert load_settings().risk_days == 25


# -- documented once --------------------------------------------------------------------------------
ROOT = Path(__file__).parents[1]


def test_settings_docs_match_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    code = settings_docs.main(["--check", "--root", str(ROOT)])
    assert code == 0, capsys.readouterr().err


def test_settings_docs_check_names_each_drifted_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    readme = (ROOT / "README.md").read_text()
    start, end = readme.index("<!-- settings:start -->"), readme.index("<!-- settings:end -->")
    # Drift inside the generated table only (the prose around it names settings too).
    drifted = (
        readme[:start] + readme[start:end].replace("`RC_ARCHIVER_SOURCE_CAP`", "`RC_OLD`") + readme[end:]
    )
    (tmp_path / "README.md").write_text(drifted)
    (tmp_path / "config" / "rc-archiver.example.toml").write_text(EXAMPLE.read_text() + "# edited\n")
    assert settings_docs.main(["--check", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "README.md" in err and "rc-archiver.example.toml" in err and "--write" in err
    assert settings_docs.main(["--write", "--root", str(tmp_path)]) == 0
    assert settings_docs.main(["--check", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").read_text() == readme


def test_settings_docs_check_refuses_a_readme_without_markers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "README.md").write_text("# no table here\n")
    (tmp_path / "config" / "rc-archiver.example.toml").write_text(settings_docs.example_toml())
    assert settings_docs.main(["--check", "--root", str(tmp_path)]) == 1
    assert "settings:start" in capsys.readouterr().err


def test_settings_docs_name_every_variable_in_the_readme() -> None:
    block = settings_docs.readme_block()
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
