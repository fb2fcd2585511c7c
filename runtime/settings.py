"""Settings, read once at the composition root: environment (`VIGIE_*`) over a TOML file over defaults.

The TOML file is `$VIGIE_CONFIG`, else `./vigie.toml` when present:

    state = "sqlite:///vigie.db"
    poll_interval = 3600
    sources = ["ods+https://dgal.opendatasoft.com/export_alimconfiance"]

Secrets are SecretStr and print masked (`Settings.masked()`), URLs with their passwords and token-like query
parameters masked (core.urls). A value that cannot work (an unknown source scheme, a Redis store without the
`redis` extra, a malformed file) fails here, naming the setting: `runtime.errors` turns it into one line.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.health import parse_duration
from core.urls import mask_url
from notifiers.worker import DEFAULT_RETRY_SCHEDULE, parse_schedule
from producers import check_source

DEFAULT_STATE = "sqlite:///vigie.db"
EXTRAS = {"redis": "redis", "aiokafka": "kafka"}  # module → the extra that installs it


class ConfigError(ValueError):
    """The configuration file is missing or malformed; the message names the file."""


def config_file() -> Path | None:
    explicit = os.environ.get("VIGIE_CONFIG")
    if explicit:
        return _readable(Path(explicit))
    local = Path("vigie.toml")
    return _readable(local) if local.exists() else None


def _readable(path: Path) -> Path:
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file (VIGIE_CONFIG)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc} (https://toml.io; e.g. poll_interval = 3600)") from None
    return path


def sqlite_url(value: str) -> str:
    """A plain path (`state.db`, `/var/lib/vigie.db`) as the SQLite URL it means; URLs as they are."""
    if "://" in value or not value.strip():
        return value
    return f"sqlite:///{value.strip()}"


def needs_extra(url: str) -> str | None:
    """`pip install …` advice when the adapter of `url` needs an extra that is not installed."""
    module = {"redis": "redis", "rediss": "redis", "kafka": "aiokafka"}.get(url.partition("://")[0])
    if module is None or importlib.util.find_spec(module) is not None:
        return None
    return f"{url.partition('://')[0]}:// needs the {EXTRAS[module]} extra: pip install 'vigie[kafka,redis]'"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_", frozen=True, extra="ignore")

    sources: Annotated[list[str], NoDecode] = Field(default_factory=list)
    state: str = DEFAULT_STATE
    store: str | None = None
    bus: str = "memory://"
    namespace: str = "vigie"
    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1)  # of the topics Vigie creates (distributed runtime)
    republish_interval: float = Field(default=30.0, gt=0)
    poll_interval: float = Field(default=3600.0, gt=0)
    min_snapshot_ratio: float = Field(default=0.5, ge=0, le=1)
    baseline_alerts: bool = False
    mass_change_share: float = Field(default=0.05, gt=0, le=1)  # core/storms.py: a field rewritten on more than
    mass_change_minimum: int = Field(default=20, ge=1)  # this share of a snapshot (and this many records) is held
    stale_after: float = 864_000.0  # seconds (or 10d, 36h): core/health.py, no new version for this long is stale
    failing_after: int = Field(default=3, ge=1)  # consecutive failed or incomplete polls before a source is failing
    delivery_interval: float = Field(default=1.0, gt=0)
    max_attempts: int = Field(default=8, ge=1)
    http_timeout: float = Field(default=30.0, gt=0)
    # networks webhook URLs may reach although not public (a local receiver, an on-premise partner):
    # "127.0.0.0/8,::1". Empty (the default): public addresses only (notifiers/ssrf.py)
    webhook_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)
    webhook_connect_timeout: float = Field(default=10.0, gt=0)
    # a rotated-out webhook secret keeps signing (next to the new one) this many seconds (0: no overlap)
    webhook_secret_overlap: float = Field(default=86_400.0, ge=0)
    # seconds to wait before each attempt (the first is immediate), like Svix; "0,5s,5m,30m,2h,5h,10h,10h"
    retry_schedule: Annotated[tuple[float, ...], NoDecode] = DEFAULT_RETRY_SCHEDULE
    # an endpoint failing every delivery for this many seconds is disabled (every subscription to it)
    disable_after: float = Field(default=5 * 86_400.0, gt=0)
    slack_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("slack_bot_token", "VIGIE_SLACK_BOT_TOKEN", "SLACK_BOT_TOKEN"),
    )
    slack_api_url: str = "https://slack.com/api/"
    slack_signing_secret: SecretStr | None = Field(  # serves the /vigie slash command when set
        default=None,
        validation_alias=AliasChoices("slack_signing_secret", "VIGIE_SLACK_SIGNING_SECRET", "SLACK_SIGNING_SECRET"),
    )
    slack_commands_host: str = "127.0.0.1"
    slack_commands_port: int = Field(default=3000, ge=0, le=65535)
    telegram_bot_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("telegram_bot_token", "VIGIE_TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"),
    )
    telegram_api_url: str = "https://api.telegram.org/bot"  # the token is appended (python-telegram-bot's base_url)
    telegram_mode: Literal["polling", "webhook"] = "polling"
    telegram_webhook_url: str | None = None  # the public https URL Telegram posts updates to (webhook mode)
    telegram_webhook_secret: SecretStr | None = None  # echoed by Telegram in X-Telegram-Bot-Api-Secret-Token
    telegram_webhook_host: str = "127.0.0.1"
    telegram_webhook_port: int = Field(default=8443, ge=0, le=65535)
    telegram_poll_timeout: float = Field(default=10.0, ge=0)  # getUpdates long-polling wait, seconds
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    api_token: SecretStr | None = None
    api_rate: float = Field(default=10.0, gt=0)  # requests per second per API key (burst: api_burst)
    api_burst: float = Field(default=50.0, ge=1)
    # the distributed change log (Redis stream read by GET /v1/changes and previews) keeps this many seconds
    feed_retention: float = Field(default=30 * 86_400.0, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    log_format: Literal["console", "json"] = "console"
    # Prometheus /metrics and /healthz (runtime/metrics.py): off unless a port is set (0: any free port); roles
    # sharing a machine need a port each
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)

    @field_validator("stale_after", "feed_retention", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value).total_seconds()

    @field_validator("sources", "webhook_allow", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("sources")
    @classmethod
    def _sources(cls, value: list[str]) -> list[str]:
        for url in value:
            check_source(url)  # ValueError says what would be accepted
        return value

    @field_validator("state", mode="before")
    @classmethod
    def _state(cls, value: Any) -> Any:
        value = sqlite_url(value) if isinstance(value, str) else value
        if isinstance(value, str) and not value.startswith(("sqlite:///", "memory://")):
            raise ValueError(f"{mask_url(value)} is not a SQLite state: use a path (vigie.db), sqlite:///PATH "
                             "or memory://")
        return value

    @field_validator("store", mode="before")
    @classmethod
    def _store(cls, value: Any) -> Any:
        value = sqlite_url(value) if isinstance(value, str) else value
        if isinstance(value, str) and not value.startswith(("sqlite:///", "memory://", "redis://", "rediss://")):
            raise ValueError(f"{mask_url(value)} is not a store: use redis://HOST:6379/0, a path or sqlite:///PATH")
        return _with_extra(value)

    @field_validator("bus", mode="before")
    @classmethod
    def _bus(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.startswith(("memory://", "kafka://")):
            raise ValueError(f"{mask_url(value)} is not a bus: use memory:// (embedded) or kafka://HOST:9092")
        return _with_extra(value)

    @field_validator("retry_schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> Any:
        return parse_schedule(value) if isinstance(value, str) else value

    @field_validator("webhook_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad entry
        return value

    @property
    def subscription_store(self) -> str:
        return self.store or self.state

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = config_file()
        extra = (TomlConfigSettingsSource(settings_cls, toml_file=toml),) if toml else ()
        return (init_settings, env_settings, *extra)

    def masked(self) -> dict[str, Any]:
        """The settings as they may be printed: secrets masked (SecretStr prints '**********'), and inside every
        URL the password and the token-like query parameters."""
        return {name: _masked(value) for name, value in self.model_dump().items()}


def _masked(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return str(value)
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _with_extra(value: Any) -> Any:
    advice = needs_extra(value) if isinstance(value, str) else None
    if advice:
        raise ValueError(advice)
    return value
