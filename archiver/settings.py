"""One validated settings object, read from environment variables and optionally a TOML file.

Environment variables win over the file. Secrets (RC_CLIENT_SECRET, RC_JWT) come from the
environment, from a file named by RC_CLIENT_SECRET_FILE / RC_JWT_FILE, or from systemd's
$CREDENTIALS_DIRECTORY (credentials `rc_client_secret`, `rc_jwt`), never from the TOML file, which
tends to end up in version control. Every invalid setting is reported at once, by its variable name.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from archiver.errors import SettingsError
from archiver.keys import validate_template

SECRET_FIELDS = ("client_secret", "jwt")
CREDENTIAL_NAMES = {"client_secret": "rc_client_secret", "jwt": "rc_jwt"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s|ms)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_duration(value: object) -> timedelta:
    """'24h', '90m', '1h30m', '2d', '30s' or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    text = str(value).strip().lower().replace(" ", "")
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    if not text or _DURATION.sub("", text):
        raise ValueError(f"invalid duration {str(value)[:40]!r}: use e.g. 24h, 90m, 1h30m, 2d or 30s")
    return timedelta(seconds=sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text)))


def parse_rate(value: str) -> tuple[int, float]:
    """'10/60s' -> (10 requests, 60.0 seconds)."""
    count, sep, window = str(value).partition("/")
    try:
        limit = int(count)
        seconds = parse_duration(window or "").total_seconds()
    except ValueError:
        limit, seconds = 0, 0.0
    if not sep or limit < 1 or seconds <= 0:
        raise ValueError(f"invalid rate {str(value)[:40]!r}: use requests/window, e.g. 10/60s")
    return limit, seconds


STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "GLACIER_IR",
        "DEEP_ARCHIVE",
        "REDUCED_REDUNDANCY",
    }
)


def parse_tags(value: str) -> dict[str, str]:
    """'team=legal,retention=7y' -> {'team': 'legal', 'retention': '7y'}."""
    tags: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        key, sep, val = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid tag {item[:40]!r}: use key=value pairs separated by commas")
        tags[key.strip()] = val.strip()
    if len(tags) > 10:
        raise ValueError("S3 allows at most 10 tags per object")
    return tags


def _default_state_path() -> str:
    state_dir = os.environ.get("STATE_DIRECTORY")  # set by systemd's StateDirectory=
    if state_dir:
        return str(Path(state_dir.split(":")[0]) / "state.db")
    return "./rc-archiver-state.db"


def _default_spool_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"rc-archiver-spool-{os.getuid()}"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Every setting, with its environment variable as the alias (the names users depend on)."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True, validate_default=True)

    server_url: str = Field("https://platform.ringcentral.com", validation_alias=_env("RC_SERVER_URL"))
    client_id: str | None = Field(None, validation_alias=_env("RC_CLIENT_ID"))
    client_secret: SecretStr | None = Field(None, validation_alias=_env("RC_CLIENT_SECRET"))
    client_secret_file: Path | None = Field(None, validation_alias=_env("RC_CLIENT_SECRET_FILE"))
    jwt: SecretStr | None = Field(None, validation_alias=_env("RC_JWT"))
    jwt_file: Path | None = Field(None, validation_alias=_env("RC_JWT_FILE"))
    destination: str | None = Field(None, validation_alias=_env("RC_ARCHIVER_DESTINATION"))
    state_path: str = Field(
        default_factory=_default_state_path, validation_alias=_env("RC_ARCHIVER_STATE_PATH")
    )
    key_template: str = Field(
        "{start:%Y/%m/%d}/{recording_id}.{ext}", validation_alias=_env("RC_ARCHIVER_KEY_TEMPLATE")
    )
    log_format: Literal["json", "console", "auto"] = Field(
        "auto", validation_alias=_env("RC_ARCHIVER_LOG_FORMAT")
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", validation_alias=_env("RC_ARCHIVER_LOG_LEVEL")
    )
    timezone: str = Field("UTC", validation_alias=_env("RC_ARCHIVER_TIMEZONE"))
    lookback: timedelta = Field(timedelta(hours=24), validation_alias=_env("RC_ARCHIVER_LOOKBACK"))
    settle_delay: timedelta = Field(timedelta(hours=1), validation_alias=_env("RC_ARCHIVER_SETTLE_DELAY"))
    rate_heavy: str = Field("10/60s", validation_alias=_env("RC_ARCHIVER_RATE_HEAVY"))
    rate_auth: str = Field("5/60s", validation_alias=_env("RC_ARCHIVER_RATE_AUTH"))
    upload_concurrency: int = Field(4, ge=1, le=64, validation_alias=_env("RC_ARCHIVER_UPLOAD_CONCURRENCY"))
    download_concurrency: int = Field(
        2, ge=1, le=32, validation_alias=_env("RC_ARCHIVER_DOWNLOAD_CONCURRENCY")
    )
    max_attempts: int = Field(5, ge=1, validation_alias=_env("RC_ARCHIVER_MAX_ATTEMPTS"))
    spool_dir: Path = Field(
        default_factory=_default_spool_dir, validation_alias=_env("RC_ARCHIVER_SPOOL_DIR")
    )
    stop_timeout: timedelta = Field(timedelta(seconds=20), validation_alias=_env("RC_ARCHIVER_STOP_TIMEOUT"))
    connect_timeout: timedelta = Field(
        timedelta(seconds=10), validation_alias=_env("RC_ARCHIVER_CONNECT_TIMEOUT")
    )
    read_timeout: timedelta = Field(timedelta(seconds=60), validation_alias=_env("RC_ARCHIVER_READ_TIMEOUT"))
    s3_max_attempts: int = Field(10, ge=1, le=50, validation_alias=_env("RC_ARCHIVER_S3_MAX_ATTEMPTS"))
    multipart_threshold: int = Field(
        16 * 1024 * 1024, ge=5 * 1024 * 1024, validation_alias=_env("RC_ARCHIVER_MULTIPART_THRESHOLD")
    )
    schedule: str = Field("0 2 * * *", validation_alias=_env("RC_ARCHIVER_SCHEDULE"))
    jitter: timedelta = Field(timedelta(0), validation_alias=_env("RC_ARCHIVER_JITTER"))
    ping_url: str = Field("", validation_alias=_env("RC_ARCHIVER_PING_URL"))
    metrics_addr: str = Field("", validation_alias=_env("RC_ARCHIVER_METRICS_ADDR"))
    metrics_file: Path | None = Field(None, validation_alias=_env("RC_ARCHIVER_METRICS_FILE"))
    risk_days: int = Field(75, ge=1, le=365, validation_alias=_env("RC_ARCHIVER_RISK_DAYS"))
    progress_interval: timedelta = Field(
        timedelta(seconds=30), validation_alias=_env("RC_ARCHIVER_PROGRESS_INTERVAL")
    )
    # S3 storage options, applied to audio and sidecars alike (ignored for folders).
    s3_sse: Literal["", "AES256", "aws:kms"] = Field("", validation_alias=_env("RC_ARCHIVER_S3_SSE"))
    s3_kms_key_id: str = Field("", validation_alias=_env("RC_ARCHIVER_S3_KMS_KEY_ID"))
    s3_storage_class: str = Field("", validation_alias=_env("RC_ARCHIVER_S3_STORAGE_CLASS"))
    s3_tags: str = Field("", validation_alias=_env("RC_ARCHIVER_S3_TAGS"))
    s3_object_lock_mode: Literal["", "GOVERNANCE", "COMPLIANCE"] = Field(
        "", validation_alias=_env("RC_ARCHIVER_S3_OBJECT_LOCK_MODE")
    )
    s3_object_lock_days: int = Field(
        0, ge=0, le=36500, validation_alias=_env("RC_ARCHIVER_S3_OBJECT_LOCK_DAYS")
    )
    s3_legal_hold: bool = Field(False, validation_alias=_env("RC_ARCHIVER_S3_LEGAL_HOLD"))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (command-line overrides) > environment > TOML file.
        return init_settings, env_settings, TomlSource(settings_cls)

    # -- field validation -----------------------------------------------------------------------
    @field_validator(
        "lookback",
        "settle_delay",
        "stop_timeout",
        "connect_timeout",
        "read_timeout",
        "progress_interval",
        "jitter",
        mode="before",
    )
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("rate_heavy", "rate_auth")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value[:60]!r}: use an IANA name such as UTC or Europe/Berlin"
            ) from None
        return value

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://platform.ringcentral.com")
        return value.rstrip("/")

    @field_validator("destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith("s3://"):
            if not re.match(r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9](/.*)?$", value):
                raise ValueError(
                    "an S3 destination is s3://bucket or s3://bucket/prefix with a valid bucket name"
                )
            return value
        if value.startswith("file://"):
            if not value[len("file://") :].startswith("/"):
                raise ValueError(
                    "a folder destination is an absolute file:// URL, e.g. file:///srv/recordings"
                )
            return value
        raise ValueError("must start with s3:// or file://")

    @field_validator("key_template")
    @classmethod
    def _key_template(cls, value: str) -> str:
        validate_template(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {value[:60]!r} ({exc}); e.g. '0 2 * * *'") from None
        return value

    @field_validator("ping_url")
    @classmethod
    def _ping_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL, e.g. https://hc-ping.com/<uuid>")
        return value

    @field_validator("metrics_addr")
    @classmethod
    def _metrics_addr(cls, value: str) -> str:
        if value and not re.fullmatch(r"[\w.\-\[\]:]*:\d{1,5}", value):
            raise ValueError("must be host:port, e.g. 0.0.0.0:9108 or 127.0.0.1:9108")
        return value

    @field_validator("s3_tags")
    @classmethod
    def _tags(cls, value: str) -> str:
        parse_tags(value)
        return value

    @field_validator("s3_storage_class")
    @classmethod
    def _storage_class(cls, value: str) -> str:
        if value and value not in STORAGE_CLASSES:
            raise ValueError(
                f"unknown storage class {value[:40]!r}; use one of {', '.join(sorted(STORAGE_CLASSES))}"
            )
        return value

    @model_validator(mode="after")
    def _object_lock_pairs(self) -> Settings:
        if bool(self.s3_object_lock_mode) != bool(self.s3_object_lock_days):
            raise ValueError(
                "RC_ARCHIVER_S3_OBJECT_LOCK_MODE and RC_ARCHIVER_S3_OBJECT_LOCK_DAYS go together: "
                "set both or neither"
            )
        if self.s3_kms_key_id and self.s3_sse != "aws:kms":
            raise ValueError("RC_ARCHIVER_S3_KMS_KEY_ID needs RC_ARCHIVER_S3_SSE=aws:kms")
        return self

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        for name in SECRET_FIELDS:
            if getattr(self, name) is not None:
                continue
            path: Path | None = getattr(self, f"{name}_file")
            env_name = "RC_CLIENT_SECRET_FILE" if name == "client_secret" else "RC_JWT_FILE"
            if path is None and os.environ.get("CREDENTIALS_DIRECTORY"):
                candidate = Path(os.environ["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAMES[name]
                if candidate.exists():
                    path, env_name = candidate, f"$CREDENTIALS_DIRECTORY/{CREDENTIAL_NAMES[name]}"
            if path is None:
                continue
            try:
                text = path.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ValueError(f"{env_name}: cannot read {path}: {exc.strerror}") from None
            if not text:
                raise ValueError(f"{env_name}: {path} is empty")
            object.__setattr__(self, name, SecretStr(text))
        return self

    # -- derived values ---------------------------------------------------------------------------
    @property
    def heavy_rate(self) -> tuple[int, float]:
        return parse_rate(self.rate_heavy)

    @property
    def auth_rate(self) -> tuple[int, float]:
        return parse_rate(self.rate_auth)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def resolved_log_format(self) -> Literal["json", "console"]:
        if self.log_format == "auto":
            return "console" if sys.stdout.isatty() else "json"
        return self.log_format

    def require(self, *names: str) -> None:
        """Fail with one SettingsError naming every missing setting a command needs."""
        missing = [ENV_NAMES[n] for n in names if getattr(self, n) in (None, "")]
        if missing:
            raise SettingsError(
                "missing settings: " + ", ".join(missing),
                hint="set them in the environment (secrets may also come from *_FILE variables) "
                "or the --config TOML file; see config/rc-archiver.example.toml",
            )


def _env_name(info: FieldInfo) -> str:
    alias = info.validation_alias
    assert isinstance(alias, AliasChoices)
    first = alias.choices[0]
    assert isinstance(first, str)
    return first


ENV_NAMES: dict[str, str] = {name: _env_name(info) for name, info in Settings.model_fields.items()}


class TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by --config or RC_ARCHIVER_CONFIG; keys are the field names."""

    path: Path | None = None  # set by load_settings for the duration of one load

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ does the work

    def __call__(self) -> dict[str, Any]:
        path = TomlSource.path
        if path is None:
            return {}
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(
                f"cannot read config file {path}: {exc.strerror}", hint="check --config"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}", hint="fix the file") from None
        unknown = sorted(set(data) - set(ENV_NAMES))
        if unknown:
            raise SettingsError(
                f"config file {path}: unknown settings {', '.join(unknown)}",
                hint="see config/rc-archiver.example.toml for the names",
            )
        secrets_in_file = sorted(set(data) & set(SECRET_FIELDS))
        if secrets_in_file:
            raise SettingsError(
                f"config file {path}: {', '.join(secrets_in_file)} must not be stored in the config file",
                hint="use RC_JWT_FILE / RC_CLIENT_SECRET_FILE (or systemd credentials) for secrets",
            )
        return {ENV_NAMES[k]: v for k, v in data.items()}


def load_settings(config_path: Path | None = None, **overrides: Any) -> Settings:
    """Build and validate the settings; every problem becomes one SettingsError naming the variables."""
    if config_path is None and os.environ.get("RC_ARCHIVER_CONFIG"):
        config_path = Path(os.environ["RC_ARCHIVER_CONFIG"])
    TomlSource.path = config_path
    try:
        return Settings(**{ENV_NAMES[k]: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = error["loc"][0] if error["loc"] else ""
            name = ENV_NAMES.get(str(loc), str(loc))
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{name}: {message}" if name else message)
        raise SettingsError(
            "invalid settings: " + "; ".join(problems),
            hint="fix the named settings (environment or --config file); see config/rc-archiver.example.toml",
        ) from None
    finally:
        TomlSource.path = None
