"""One validated settings object, read from environment variables and optionally a TOML file.

Environment variables win over the file. Secrets (RC_CLIENT_SECRET, RC_JWT) come from the
environment, from a file named by RC_CLIENT_SECRET_FILE / RC_JWT_FILE, or from systemd's
$CREDENTIALS_DIRECTORY (credentials `rc_client_secret`, `rc_jwt`), never from the TOML file, which
tends to end up in version control. Every invalid setting is reported at once, by its variable name,
when the settings are loaded: before any lock, login or download.

Each field carries its own documentation (description, group, example): docs/reference/settings.md's table
and config/rc-archiver.example.toml are generated from it by archiver/settings_docs.py.
"""

from __future__ import annotations

import math
import os
import re
import sys
import tempfile
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AliasChoices,
    Field,
    JsonValue,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from archiver.errors import SettingsError
from archiver.keys import validate_template

SECRET_FIELDS = ("client_secret", "jwt")
CREDENTIAL_NAMES = {"client_secret": "rc_client_secret", "jwt": "rc_jwt"}
SECRET_FILE_VARIABLES = {"client_secret": "RC_CLIENT_SECRET_FILE", "jwt": "RC_JWT_FILE"}
# `ms` before `m`: the alternation takes the first unit that matches, and "500ms" is not "500m" + "s".
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_UNIT_SECONDS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# No duration setting means anything near this (each has its own bound, DURATION_BOUNDS): a ceiling that
# keeps every timedelta and every datetime computed from one (now ± a duration) far from overflow.
LONGEST_DURATION = timedelta(days=36500)
DURATION_HELP = "use a number with a unit: ms, s, m, h or d, e.g. 7d, 12h, 90m, 30s, 500ms or 1h30m"


def parse_duration(value: object) -> timedelta:
    """'24h', '90m', '1h30m', '2d', '30s', '500ms'. A unit is required: a bare number is refused (was
    `7` seconds or days?), except 0, which means the same in every unit. Negative, infinite, NaN or
    absurdly long values (over LONGEST_DURATION) are refused too."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: {DURATION_HELP}")
    elif isinstance(value, int | float):  # a TOML number: a bare number like any other
        seconds = _bare_number(str(value), float(value), ' (in a TOML file, a string: "7d")')
    else:
        text = str(value).strip().lower().replace(" ", "")
        shown = str(value)[:40]
        if text.startswith("-"):
            raise ValueError(f"invalid duration {shown!r}: must not be negative")
        try:
            number = float(text)
        except ValueError:
            number = None
        if number is not None:  # "7", "1e3", "inf", "nan": no unit
            seconds = _bare_number(shown, number)
        elif not text or _DURATION.sub("", text):
            raise ValueError(f"invalid duration {shown!r}: {DURATION_HELP}")
        else:
            seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION.findall(text))
    if not math.isfinite(seconds) or seconds > LONGEST_DURATION.total_seconds():
        longest = format_duration(LONGEST_DURATION)
        raise ValueError(f"invalid duration {str(value)[:40]!r}: too long (at most {longest})")
    if seconds < 0:
        raise ValueError(f"invalid duration {str(value)[:40]!r}: must not be negative")
    return timedelta(seconds=seconds)


def _bare_number(shown: str, number: float, where: str = "") -> float:
    if not math.isfinite(number):
        raise ValueError(f"invalid duration {shown!r}: {DURATION_HELP}")
    if number < 0:
        raise ValueError(f"invalid duration {shown!r}: must not be negative")
    if number == 0:
        return 0.0
    raise ValueError(f"{shown!r} has no unit: add one, e.g. 7d, 12h, 30s or 500ms{where}")


def format_duration(value: timedelta) -> str:
    """The shortest way to write a duration in the settings' syntax: 15d, 1h30m, 500ms, 0s."""
    millis = round(value.total_seconds() * 1000)
    if millis == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parse_rate(value: str) -> tuple[int, float]:
    """'10/60s' -> (10 requests, 60.0 seconds)."""
    count, sep, window = str(value).partition("/")
    try:
        limit = int(count)
        seconds = parse_duration(window or "").total_seconds()
    except ValueError:
        limit, seconds = 0, 0.0
    if not sep or not 1 <= limit <= 1_000_000 or not 0 < seconds <= 86400:
        raise ValueError(
            f"invalid rate {str(value)[:40]!r}: use requests/window, the window with a unit and at most "
            "1d, e.g. 10/60s"
        )
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


# Documentation groups: docs/reference/settings.md and the example TOML list the settings in this order, under
# these headings (one schema validates the settings AND generates their documentation, as borgmatic's does).
RINGCENTRAL = "RingCentral"
WHERE = "Where recordings go"
STATE = "State and spool"
WINDOW = "Window"
WORK = "Throughput and retries"
SOURCE = "RingCentral's retention, and deleting at the source"
S3 = "S3 storage options (audio and sidecars alike; ignored for folders)"
DAEMON = "Daemon (`rc-archiver daemon`)"
MONITORING = "Monitoring"
PROCESS = "Process"
GROUPS = (RINGCENTRAL, WHERE, STATE, WINDOW, WORK, SOURCE, S3, DAEMON, MONITORING, PROCESS)

DURATIONS = "Durations need a unit: 500ms, 30s, 90m, 24h, 2d, 1h30m."


def setting(
    default: Any = None,
    *,
    env: str,
    group: str,
    description: str,
    example: object = None,
    shown_default: str | None = None,
    required: bool = False,
    default_factory: Callable[[], Any] | None = None,
    **constraints: Any,
) -> Any:
    """A field with everything its documentation needs: variable, group, description, example.

    `shown_default` replaces the default in the docs where it depends on the machine; `required`
    marks a setting a run cannot do without (the example TOML sets it to its example).
    """
    extra: dict[str, JsonValue] = {"group": group, "required": required}
    if shown_default is not None:
        extra["shown_default"] = shown_default
    common: dict[str, Any] = {
        "validation_alias": AliasChoices(env),
        "description": description,
        "examples": None if example is None else [example],
        "json_schema_extra": extra,
        **constraints,
    }
    if default_factory is not None:
        return Field(default_factory=default_factory, **common)
    return Field(default, **common)


# Durations that must be longer than zero: a zero timeout, interval or window is never what anyone means
# (RC_ARCHIVER_READ_TIMEOUT=0 used to be reported as "cannot reach RingCentral").
POSITIVE_DURATIONS = (
    "connect_timeout",
    "read_timeout",
    "request_deadline",
    "s3_connect_timeout",
    "s3_read_timeout",
    "s3_request_deadline",
    "rate_penalty",
    "lookback",
    "exhausted_retry_interval",
    "source_retention",
    "progress_interval",
    "stop_timeout",
    "state_checkpoint_interval",
)
# Durations where zero means something: no settle delay, no jitter, delete as soon as verified, no
# recording counted at risk before its deadline.
NON_NEGATIVE_DURATIONS = ("settle_delay", "delete_after", "jitter", "risk_window")
# The longest each duration may be: generous for any real use, and far from overflowing the datetime
# arithmetic done with them (now - lookback, call start + retention, archived_at + delete_after ...).
DURATION_BOUNDS: dict[str, timedelta] = {
    "rate_penalty": timedelta(hours=1),
    "connect_timeout": timedelta(minutes=10),
    "read_timeout": timedelta(hours=1),
    "request_deadline": timedelta(hours=1),
    "s3_connect_timeout": timedelta(minutes=10),
    "s3_read_timeout": timedelta(hours=1),
    "s3_request_deadline": timedelta(hours=1),
    "lookback": timedelta(days=3650),
    "settle_delay": timedelta(days=7),
    "exhausted_retry_interval": timedelta(days=365),
    "source_retention": timedelta(days=3650),
    "risk_window": timedelta(days=3650),
    "delete_after": timedelta(days=3650),
    "jitter": timedelta(days=1),
    "progress_interval": timedelta(days=1),
    "stop_timeout": timedelta(hours=1),
    "state_checkpoint_interval": timedelta(minutes=10),  # each checkpoint renews the 15-minute S3 lease
}


class Settings(BaseSettings):
    """Every setting, with its environment variable as the alias (the names users depend on).

    Each field's `description` is its documentation: `python -m archiver.settings_docs --write`
    regenerates docs/reference/settings.md's table and config/rc-archiver.example.toml from this model.
    """

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=True, validate_default=True)
    # Settings accepted but worth a warning (a deprecated name, a surprising combination): logged by
    # log_notices() once logging is configured, since the settings choose the log format.
    _notices: list[str] = PrivateAttr(default_factory=list)

    # -- RingCentral ------------------------------------------------------------------------------
    server_url: str = setting(
        "https://platform.ringcentral.com",
        env="RC_SERVER_URL",
        group=RINGCENTRAL,
        description="The RingCentral platform API. Recording content comes from the media host the call "
        "log names.",
    )
    client_id: str | None = setting(
        None,
        env="RC_CLIENT_ID",
        group=RINGCENTRAL,
        description="The app's client id (not a secret).",
        example="YOUR-CLIENT-ID",
        shown_default="(required)",
        required=True,
    )
    client_secret: SecretStr | None = setting(
        None,
        env="RC_CLIENT_SECRET",
        group=RINGCENTRAL,
        description="The app's client secret: environment only, never the TOML file. Or "
        "RC_CLIENT_SECRET_FILE, or the systemd credential `rc_client_secret`. Empty is refused.",
        shown_default="(required)",
    )
    client_secret_file: Path | None = setting(
        None,
        env="RC_CLIENT_SECRET_FILE",
        group=RINGCENTRAL,
        description="A file holding the client secret (a Kubernetes Secret, a root-only file).",
        example="/etc/rc-archiver/client-secret",
    )
    jwt: SecretStr | None = setting(
        None,
        env="RC_JWT",
        group=RINGCENTRAL,
        description="The service user's JWT credential: environment only, never the TOML file. Or "
        "RC_JWT_FILE, or the systemd credential `rc_jwt`. Empty is refused.",
        shown_default="(required)",
    )
    jwt_file: Path | None = setting(
        None,
        env="RC_JWT_FILE",
        group=RINGCENTRAL,
        description="A file holding the JWT credential.",
        example="/etc/rc-archiver/jwt",
    )
    rate_heavy: str = setting(
        "10/60s",
        env="RC_ARCHIVER_RATE_HEAVY",
        group=RINGCENTRAL,
        description="RingCentral's Heavy group limit for this app, requests/window. Raise it only if "
        "RingCentral raised yours.",
    )
    rate_auth: str = setting(
        "5/60s",
        env="RC_ARCHIVER_RATE_AUTH",
        group=RINGCENTRAL,
        description="RingCentral's Auth group limit, requests/window.",
    )
    rate_penalty: timedelta = setting(
        "60s",
        env="RC_ARCHIVER_RATE_PENALTY",
        group=RINGCENTRAL,
        description="RingCentral's penalty after a 429 (60 s by default): a 429 without a usable "
        "Retry-After holds its whole group this long, or a window if that is longer.",
    )
    connect_timeout: timedelta = setting(
        "10s",
        env="RC_ARCHIVER_CONNECT_TIMEOUT",
        group=RINGCENTRAL,
        description="How long to wait for a connection to RingCentral (more than 0).",
    )
    read_timeout: timedelta = setting(
        "60s",
        env="RC_ARCHIVER_READ_TIMEOUT",
        group=RINGCENTRAL,
        description="How long RingCentral may stay silent during a request or download (more than 0).",
    )
    request_deadline: timedelta = setting(
        "90s",
        env="RC_ARCHIVER_REQUEST_DEADLINE",
        group=RINGCENTRAL,
        description="How long one request may go unanswered by RingCentral (timeouts, refused "
        "connections), its retries included, before it counts as failed (more than 0; a second attempt "
        "is always made): with the outage breaker, a hung RingCentral stops a run (exit 6) in a few of "
        "these, charging no recording.",
    )

    # -- Where recordings go ----------------------------------------------------------------------
    destination: str | None = setting(
        None,
        env="RC_ARCHIVER_DESTINATION",
        group=WHERE,
        description="`s3://bucket/prefix` or `file:///absolute/folder`. S3 credentials, region and "
        "endpoint come from the standard AWS variables and files (AWS_REGION, AWS_ENDPOINT_URL, "
        "AWS_PROFILE, instance roles ...).",
        example="s3://example-call-recordings/ringcentral",
        shown_default="(required)",
        required=True,
    )
    key_template: str = setting(
        "{start:%Y/%m/%d}/{recording_id}.{ext}",
        env="RC_ARCHIVER_KEY_TEMPLATE",
        group=WHERE,
        description="Object key under the prefix. Placeholders: `{recording_id}` (required), "
        "`{call_id}`, `{session_id}`, `{telephony_session_id}`, `{start:<strftime>}`, `{direction}`, "
        "`{from_number}`, `{to_number}`, `{from_name}`, `{to_name}`, `{extension_id}`, `{ext}` (mp3, "
        "wav, or bin for other types). Must end in `.{ext}`: the sidecar is the key with `.json` in "
        "place of `.{ext}`, so the two never collide. Values are sanitised to one safe segment each, "
        "and the template is test-rendered with hostile values at start: one that could escape the "
        "prefix, render an empty or `..` segment or a key over 900 bytes is refused.",
    )
    timezone: str = setting(
        "UTC",
        env="RC_ARCHIVER_TIMEZONE",
        group=WHERE,
        description="IANA time zone of `{start:...}` in keys, of the day slices a long window is scanned "
        "in, and of the daemon's schedule.",
        example="Europe/Berlin",
    )

    # -- State and spool --------------------------------------------------------------------------
    state_path: str = setting(
        env="RC_ARCHIVER_STATE_PATH",
        group=STATE,
        description="The SQLite state file, or `s3://bucket/key` for runs without a volume (leased, "
        "checkpointed with If-Match).",
        example="/var/lib/rc-archiver/state.db",
        shown_default="$STATE_DIRECTORY/state.db under systemd, else ./rc-archiver-state.db",
        default_factory=_default_state_path,
    )
    state_replication: Literal["snapshot", "incremental", "auto"] = setting(
        "auto",
        env="RC_ARCHIVER_STATE_REPLICATION",
        group=STATE,
        description="How an `s3://` state is saved: `snapshot` uploads the whole database at each "
        "checkpoint (one object, at most 5 GB); `incremental` uploads only the 64 KiB chunks that "
        "changed, then a manifest (no size limit); `auto` is `snapshot` until the state reaches 256 MiB "
        "(or is already saved incrementally), then `incremental` for good. Either reads a state saved by "
        "the other.",
        example="incremental",
    )
    state_checkpoint_interval: timedelta = setting(
        "60s",
        env="RC_ARCHIVER_STATE_CHECKPOINT_INTERVAL",
        group=STATE,
        description="How often a run saves an `s3://` state (and renews its lease); a run also saves it "
        f"at its end. More than 0, at most 10m (each renews the run's 15-minute lease). {DURATIONS}",
    )
    spool_dir: Path = setting(
        env="RC_ARCHIVER_SPOOL_DIR",
        group=STATE,
        description="Folder for downloads in progress (each removed when stored; a killed run's "
        "leftovers are cleared by the next).",
        example="/var/spool/rc-archiver",
        shown_default="$TMPDIR/rc-archiver-spool-<uid>",
        default_factory=_default_spool_dir,
    )

    # -- Window -----------------------------------------------------------------------------------
    lookback: timedelta = setting(
        "24h",
        env="RC_ARCHIVER_LOOKBACK",
        group=WINDOW,
        description="Each run scans from its last watermark minus this (a state with no watermark: the "
        "whole RC_ARCHIVER_SOURCE_RETENTION window, so a new state forgets nothing). More than 0. "
        f"{DURATIONS}",
    )
    settle_delay: timedelta = setting(
        "1h",
        env="RC_ARCHIVER_SETTLE_DELAY",
        group=WINDOW,
        description="How far behind now a run stops: call-log records and recordings appear late. "
        "0s allowed.",
    )

    # -- Throughput and retries -------------------------------------------------------------------
    download_concurrency: int = setting(
        2,
        env="RC_ARCHIVER_DOWNLOAD_CONCURRENCY",
        group=WORK,
        description="Parallel downloads (1-32), all inside RC_ARCHIVER_RATE_HEAVY.",
        ge=1,
        le=32,
    )
    upload_concurrency: int = setting(
        4,
        env="RC_ARCHIVER_UPLOAD_CONCURRENCY",
        group=WORK,
        description="Parallel uploads (1-64).",
        ge=1,
        le=64,
    )
    max_attempts: int = setting(
        5,
        env="RC_ARCHIVER_MAX_ATTEMPTS",
        group=WORK,
        description="Runs a recording may fail (for reasons of its own, not outages) before it is "
        "`exhausted`: reported loudly, then retried every RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL.",
        ge=1,
    )
    exhausted_retry_interval: timedelta = setting(
        "24h",
        env="RC_ARCHIVER_EXHAUSTED_RETRY_INTERVAL",
        group=WORK,
        description="How often a recording past RC_ARCHIVER_MAX_ATTEMPTS is still retried: never "
        "given up while RingCentral may hold it (`rc-archiver retry` resets it at once). More than 0.",
    )
    s3_max_attempts: int = setting(
        10,
        env="RC_ARCHIVER_S3_MAX_ATTEMPTS",
        group=WORK,
        description="Attempts per S3 request (botocore standard retries), 1-50.",
        ge=1,
        le=50,
    )
    s3_connect_timeout: timedelta = setting(
        "5s",
        env="RC_ARCHIVER_S3_CONNECT_TIMEOUT",
        group=WORK,
        description="How long to wait for a connection to S3 (more than 0).",
    )
    s3_read_timeout: timedelta = setting(
        "20s",
        env="RC_ARCHIVER_S3_READ_TIMEOUT",
        group=WORK,
        description="How long S3 may stay silent on an open connection (more than 0); not a limit on "
        "a transfer's length.",
    )
    s3_request_deadline: timedelta = setting(
        "40s",
        env="RC_ARCHIVER_S3_REQUEST_DEADLINE",
        group=WORK,
        description="No S3 request is retried once this long has passed since it began: a hung or "
        "vanished server fails each request within this plus RC_ARCHIVER_S3_READ_TIMEOUT, and the run "
        "stops with exit 4 about a minute after it went (more than 0).",
    )
    multipart_threshold: int = setting(
        16 * 1024 * 1024,
        env="RC_ARCHIVER_MULTIPART_THRESHOLD",
        group=WORK,
        description="Bytes above which S3 uploads are multipart (at least 5 MiB, S3's smallest part).",
        ge=5 * 1024 * 1024,
    )

    # -- RingCentral's retention, and deleting at the source --------------------------------------
    source_retention: timedelta = setting(
        "90d",
        env="RC_ARCHIVER_SOURCE_RETENTION",
        group=SOURCE,
        description="How long RingCentral keeps a recording (90 days; 30 on HIPAA-configured "
        "accounts): each recording's deadline is its call's start plus this. Any duration, e.g. 30d "
        "or 900s. More than 0.",
        example="30d",
    )
    source_cap: int = setting(
        100_000,
        env="RC_ARCHIVER_SOURCE_CAP",
        group=SOURCE,
        description="RingCentral's per-account recording cap, beyond which it drops the oldest first; "
        "runs warn as the account approaches it.",
        ge=1,
    )
    risk_window: timedelta = setting(
        "15d",
        env="RC_ARCHIVER_RISK_WINDOW",
        group=SOURCE,
        description="A recording not yet archived is at risk (`status`, the at-risk gauge and alert) "
        "once its deadline (call start + RC_ARCHIVER_SOURCE_RETENTION) is at most this far away. Works "
        "with any retention: a window as long as the retention or longer counts every recording not yet "
        "archived; 0s only those past their deadline.",
    )
    risk_days: int | None = setting(
        None,
        env="RC_ARCHIVER_RISK_DAYS",
        group=SOURCE,
        description="Deprecated: use RC_ARCHIVER_RISK_WINDOW. Still read (with a warning) when "
        "RC_ARCHIVER_RISK_WINDOW is not set: the window is then RC_ARCHIVER_SOURCE_RETENTION minus this "
        "many days (at least 0s).",
        example=75,
        shown_default="(unset)",
        ge=0,
        le=3650,
    )
    delete_from_source: bool = setting(
        False,
        env="RC_ARCHIVER_DELETE_FROM_SOURCE",
        group=SOURCE,
        description="Delete recordings at RingCentral once their archived copy has been read back and "
        "its sha256 matched (needs the EditCallLog app permission). Irreversible: opt in.",
    )
    delete_after: timedelta = setting(
        "7d",
        env="RC_ARCHIVER_DELETE_AFTER",
        group=SOURCE,
        description="With RC_ARCHIVER_DELETE_FROM_SOURCE, how long after archiving a recording is "
        "deleted at RingCentral; 0s allowed.",
    )

    # -- S3 storage options -----------------------------------------------------------------------
    s3_sse: Literal["", "AES256", "aws:kms"] = setting(
        "",
        env="RC_ARCHIVER_S3_SSE",
        group=S3,
        description='Server-side encryption: "" (the bucket\'s default), AES256 or aws:kms.',
    )
    s3_kms_key_id: str = setting(
        "",
        env="RC_ARCHIVER_S3_KMS_KEY_ID",
        group=S3,
        description='The KMS key for RC_ARCHIVER_S3_SSE=aws:kms ("" = the AWS-managed key).',
    )
    s3_storage_class: str = setting(
        "",
        env="RC_ARCHIVER_S3_STORAGE_CLASS",
        group=S3,
        description=f'Storage class: one of {", ".join(sorted(STORAGE_CLASSES))} ("" = STANDARD).',
        example="GLACIER_IR",
    )
    s3_tags: str = setting(
        "",
        env="RC_ARCHIVER_S3_TAGS",
        group=S3,
        description="Object tags, key=value pairs separated by commas (at most 10).",
        example="team=legal,retention=7y",
    )
    s3_object_lock_mode: Literal["", "GOVERNANCE", "COMPLIANCE"] = setting(
        "",
        env="RC_ARCHIVER_S3_OBJECT_LOCK_MODE",
        group=S3,
        description="S3 Object Lock retention mode, GOVERNANCE or COMPLIANCE, set together with "
        "RC_ARCHIVER_S3_OBJECT_LOCK_DAYS; the bucket must have Object Lock enabled (checked first).",
    )
    s3_object_lock_days: int = setting(
        0,
        env="RC_ARCHIVER_S3_OBJECT_LOCK_DAYS",
        group=S3,
        description="Days each object is retained under RC_ARCHIVER_S3_OBJECT_LOCK_MODE (0-36500).",
        ge=0,
        le=36500,
    )
    s3_legal_hold: bool = setting(
        False,
        env="RC_ARCHIVER_S3_LEGAL_HOLD",
        group=S3,
        description="A legal hold on every object (needs an Object Lock bucket too).",
    )

    # -- Daemon -----------------------------------------------------------------------------------
    schedule: str = setting(
        "0 2 * * *",
        env="RC_ARCHIVER_SCHEDULE",
        group=DAEMON,
        description="When the daemon runs: a 5-field cron expression in RC_ARCHIVER_TIMEZONE (6 fields: "
        "seconds first).",
    )
    jitter: timedelta = setting(
        "0s",
        env="RC_ARCHIVER_JITTER",
        group=DAEMON,
        description="A random delay of up to this after each scheduled time; 0s allowed.",
    )
    verify_schedule: str = setting(
        "",
        env="RC_ARCHIVER_VERIFY_SCHEDULE",
        group=DAEMON,
        description="When the daemon runs `verify --manifests --sample RC_ARCHIVER_VERIFY_SAMPLE` "
        "over the last 90 days, never during a run: a 5-field cron expression (6: seconds first) in "
        'RC_ARCHIVER_TIMEZONE ("" = never). Its result is in /metrics.',
        example="0 12 * * 0",
    )
    verify_sample: float = setting(
        5.0,
        env="RC_ARCHIVER_VERIFY_SAMPLE",
        group=DAEMON,
        description="Percent of the objects the scheduled verify reads back in full and re-hashes (0-100).",
        ge=0,
        le=100,
    )

    @field_validator("verify_schedule")
    @classmethod
    def _verify_schedule(cls, value: str) -> str:
        from archiver.cron import parse_cron

        try:
            if value:
                parse_cron(value)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {value[:60]!r} ({exc}); e.g. '0 12 * * 0'") from None
        return value

    # -- Monitoring -------------------------------------------------------------------------------
    ping_url: str = setting(
        "",
        env="RC_ARCHIVER_PING_URL",
        group=MONITORING,
        description="Heartbeat pings (healthchecks.io style): <url>/start when a run begins, <url> on "
        'success, <url>/fail on failure, with the run summary as the body ("" = off).',
        example="https://hc-ping.com/<uuid>",
    )
    pushgateway_url: str = setting(
        "",
        env="RC_ARCHIVER_PUSHGATEWAY_URL",
        group=MONITORING,
        description="A Prometheus Pushgateway that receives each run's metrics at its end, whatever "
        'the outcome (for Kubernetes CronJobs; "" = off).',
        example="http://pushgateway.monitoring:9091",
    )
    metrics_instance: str = setting(
        "",
        env="RC_ARCHIVER_METRICS_INSTANCE",
        group=MONITORING,
        description="The `instance` label of this deployment's Pushgateway group: unique per "
        "deployment, stable across runs, so two deployments never overwrite each other. Letters, "
        "digits, `.`, `_` and `-`.",
        example="rc-archiver-eu",
        shown_default="`rc-` and a hash of RC_CLIENT_ID and RC_ARCHIVER_DESTINATION",
        pattern=r"^[A-Za-z0-9._-]{0,64}$",
    )
    metrics_addr: str = setting(
        "",
        env="RC_ARCHIVER_METRICS_ADDR",
        group=MONITORING,
        description='host:port where the daemon serves /metrics and /healthz ("" = off).',
        example="127.0.0.1:9108",
    )
    metrics_file: Path | None = setting(
        None,
        env="RC_ARCHIVER_METRICS_FILE",
        group=MONITORING,
        description="Where a one-shot run writes its metrics, for node_exporter's textfile collector "
        "(unset or empty = off).",
        example="/var/lib/node_exporter/textfile/rc-archiver.prom",
    )
    progress_interval: timedelta = setting(
        "30s",
        env="RC_ARCHIVER_PROGRESS_INTERVAL",
        group=MONITORING,
        description="How often a run reports progress (an event in the logs; a bar on a terminal). "
        "More than 0.",
    )

    # -- Process ----------------------------------------------------------------------------------
    stop_timeout: timedelta = setting(
        "20s",
        env="RC_ARCHIVER_STOP_TIMEOUT",
        group=PROCESS,
        description="On SIGTERM/SIGINT, how long in-flight transfers may finish (Kubernetes allows 30 s "
        "by default). More than 0.",
    )
    log_format: Literal["json", "console", "auto"] = setting(
        "auto",
        env="RC_ARCHIVER_LOG_FORMAT",
        group=PROCESS,
        description="json, console, or auto: console on a terminal, json elsewhere.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = setting(
        "info",
        env="RC_ARCHIVER_LOG_LEVEL",
        group=PROCESS,
        description="debug, info, warning or error.",
    )

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
    @field_validator(*POSITIVE_DURATIONS, *NON_NEGATIVE_DURATIONS, mode="before")
    @classmethod
    def _duration(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator(*POSITIVE_DURATIONS)
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than 0s, e.g. 30s, 90m, 24h or 2d")
        return value

    @field_validator(*NON_NEGATIVE_DURATIONS)
    @classmethod
    def _non_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative (0s is allowed)")
        return value

    @field_validator(*DURATION_BOUNDS)
    @classmethod
    def _bounded(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        longest = DURATION_BOUNDS[str(info.field_name)]
        if value > longest:
            raise ValueError(f"{format_duration(value)} is too long: at most {format_duration(longest)}")
        return value

    @field_validator("client_secret", "jwt")
    @classmethod
    def _secret_not_blank(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # An empty variable is a mistake (a template left unfilled, a Secret key misspelt), not "unset":
        # refused here rather than failing later at login. The value never reaches the message.
        if value is None:
            return None
        text = value.get_secret_value().strip()
        if not text:
            alternative = SECRET_FILE_VARIABLES[str(info.field_name)]
            raise ValueError(f"is empty: give the value, or unset it and use {alternative}")
        return SecretStr(text)

    @field_validator("client_secret_file", "jwt_file", mode="before")
    @classmethod
    def _secret_file_not_blank(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():  # Path("") would be the current folder
            raise ValueError("is empty: name the file holding the secret, or unset it")
        return value

    @field_validator("metrics_file", mode="before")
    @classmethod
    def _empty_is_off(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("client_id")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None

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
        from archiver.destinations.registry import url_problem  # the backends' own URL rules

        problem = url_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("key_template")
    @classmethod
    def _key_template(cls, value: str) -> str:
        validate_template(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        from archiver.cron import parse_cron

        try:
            parse_cron(value)
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {value[:60]!r} ({exc}); e.g. '0 2 * * *'") from None
        return value

    @field_validator("ping_url")
    @classmethod
    def _ping_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL, e.g. https://hc-ping.com/<uuid>")
        return value

    @field_validator("pushgateway_url")
    @classmethod
    def _pushgateway_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL, e.g. http://pushgateway.monitoring:9091")
        return value.rstrip("/")

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
    def _risk_window(self) -> Settings:
        # RC_ARCHIVER_RISK_DAYS (an age, which had to stay below the retention) becomes the window before
        # the deadline it meant; RC_ARCHIVER_RISK_WINDOW wins when both are set.
        window, days = ENV_NAMES["risk_window"], ENV_NAMES["risk_days"]
        if self.risk_days is not None:
            if "risk_window" in self.model_fields_set:
                self._notices.append(f"{days} is deprecated and ignored: {window} is set and wins")
            else:
                converted = max(self.source_retention - timedelta(days=self.risk_days), timedelta(0))
                object.__setattr__(self, "risk_window", converted)
                self._notices.append(
                    f"{days} is deprecated: read as {window}={format_duration(converted)} "
                    f"({ENV_NAMES['source_retention']} {format_duration(self.source_retention)} minus "
                    f"{self.risk_days} days); set {window} instead"
                )
        elif self.risk_window >= self.source_retention:
            self._notices.append(
                f"{window} ({format_duration(self.risk_window)}) is not shorter than "
                f"{ENV_NAMES['source_retention']} ({format_duration(self.source_retention)}): every "
                "recording not yet archived counts as at risk"
            )
        return self

    @model_validator(mode="after")
    def _read_secret_files(self) -> Settings:
        for name in SECRET_FIELDS:
            if getattr(self, name) is not None:
                continue
            path: Path | None = getattr(self, f"{name}_file")
            env_name = SECRET_FILE_VARIABLES[name]
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
    def notices(self) -> tuple[str, ...]:
        """Warnings about settings that were accepted (a deprecated name, a window as long as the
        retention): one line each, naming the variables."""
        return tuple(self._notices)

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


_LOGGED_NOTICES: set[str] = set()


def log_notices(settings: Settings) -> None:
    """Log each of the settings' notices as one warning line, once per process; call it once logging
    is configured (before, it would land on a report's stdout in the wrong format)."""
    import structlog

    log = structlog.get_logger("archiver.settings")
    for notice in settings.notices:
        if notice not in _LOGGED_NOTICES:
            _LOGGED_NOTICES.add(notice)
            log.warning("settings_warning", warning=notice)


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
            # One line, whatever a library put in its message: the error is one log line.
            message = " ".join(str(error["msg"]).removeprefix("Value error, ").split())
            problems.append(f"{name}: {message}" if name else message)
        raise SettingsError(
            "invalid settings: " + "; ".join(problems),
            hint="fix the named settings (environment or --config file); see config/rc-archiver.example.toml",
        ) from None
    finally:
        TomlSource.path = None
