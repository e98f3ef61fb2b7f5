"""Read stxbf's settings, each from the first source that gives it.

The sources, first to last: a CLI flag, the environment (STXBF_*), the config file (TOML), and
the setting's default.

The API key is a SecretStr: it is sent as the `x-api-key` header and nowhere else. The data
directory (`STXBF_HOME`) holds the database, the log, the lock and the progress file; library code
receives the resolved paths, never the Settings object. docs/configuration.md lists every setting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from stxbf import defaults
from stxbf.defaults import DEFAULT_API_URL, LOOPBACK_HOSTS
from stxbf.errors import ConfigError
from stxbf.paths import DataPaths

MAX_TARGET_DAYS = 3650  # ten years: older than the Stacks chain itself
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
MAX_SETTLE_HOURS = 720  # 30 days: every run re-fetches this much, so keep it a short tail


def default_home() -> Path:
    """Return the platform's user data directory for stxbf, the data directory by default."""
    from platformdirs import user_data_path

    return user_data_path("stxbf", appauthor=False)


def config_file_path() -> Path:
    """Return the config file's path: `STXBF_CONFIG` when it is set, else `config.toml` in the
    platform's user config directory (`~/.config/stxbf/config.toml` on Linux)."""
    explicit = os.environ.get("STXBF_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    from platformdirs import user_config_path

    return user_config_path("stxbf", appauthor=False) / "config.toml"


# The routes transactions can come from. `auto` reads /extended/v1/tx while it answers and
# /extended/v3/transactions once it is gone (410, 404).
SOURCES = ("auto", "v1", "v3")


class Settings(BaseSettings):
    """Hold every setting of a stxbf command, each validated as it is read.

    The sources are read in the order `settings_customise_sources` gives: the CLI's overrides,
    the environment, then the config file; a field's default applies where none sets it.
    """

    model_config = SettingsConfigDict(
        env_prefix="STXBF_",
        extra="ignore",
        populate_by_name=True,
        validate_default=True,
    )

    api_url: str = DEFAULT_API_URL
    api_key: SecretStr | None = Field(
        # `api_key` still works by name (flag, config file).
        default=None,
        validation_alias=AliasChoices(*defaults.API_KEY_ENV_NAMES),
    )
    home: Path = Field(default_factory=default_home)
    db: Path | None = None

    target_days: int = Field(default=defaults.TARGET_DAYS, ge=1, le=MAX_TARGET_DAYS)
    max_pages: int = Field(default=defaults.MAX_PAGES, ge=1)
    max_iterations: int = Field(default=0, ge=0)
    max_requests: int | None = Field(default=None, ge=1)
    concurrency: int = Field(default=defaults.CONCURRENCY, ge=1, le=defaults.MAX_CONCURRENCY)
    rpm: float | None = Field(default=None, gt=0)
    request_timeout: float = Field(default=defaults.REQUEST_TIMEOUT, gt=0)
    give_up_after: float = Field(default=defaults.GIVE_UP_AFTER, gt=0)
    settle_hours: float = Field(default=defaults.SETTLE_HOURS, ge=0, le=MAX_SETTLE_HOURS)

    tmux_socket: str | None = None
    session_name: str = defaults.SESSION_NAME
    log_level: str = "INFO"
    source: str = "auto"  # auto | v1 | v3: which route the transactions come from

    @field_validator("api_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        """Refuse a URL that is not http(s) with a host, and drop its trailing slash."""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s) URL like {DEFAULT_API_URL}")
        return value.rstrip("/")

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        """Accept one of `SOURCES` in any case, and keep it in lower case."""
        source = value.strip().lower()
        if source not in SOURCES:
            raise ValueError(f"must be one of {', '.join(SOURCES)}")
        return source

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        """Accept one of `LOG_LEVELS` in any case, and keep it in upper case."""
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("home", "db", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        """Expand a leading `~` in a path given as text."""
        if isinstance(value, str):
            return Path(value).expanduser()
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _clean_key(cls, value: Any) -> Any:
        """Treat a blank key as no key, and drop the whitespace around one (such as the newline
        that `$(cat file)` leaves).

        A key that cannot travel in an HTTP header is refused here, without echoing it: httpx
        would otherwise reject it on every request with an error that quotes the header value.
        """
        if not isinstance(value, str):
            return value
        value = value.strip()
        if not value:
            return None
        if not all(" " <= ch <= "~" for ch in value):
            raise ValueError(
                "the API key contains characters an HTTP header cannot carry "
                "(control characters or non-ASCII); check how it was copied (value not shown)"
            )
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Read the CLI's overrides first, then the environment, then the TOML config file.

        A `.env` file and a secrets directory are not read.
        """
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=config_file_path()),
        )

    @property
    def paths(self) -> DataPaths:
        """Return every file of this backfill's data directory; stxbf.paths owns their names."""
        return DataPaths.of(self.home, self.db)

    @property
    def db_path(self) -> Path:
        """Return the database file's path."""
        return self.paths.db

    @property
    def log_path(self) -> Path:
        """Return the log file's path."""
        return self.paths.log_file

    @property
    def api_is_loopback(self) -> bool:
        """Return whether the API URL names this machine, where plain http and no key are fine."""
        return (urlsplit(self.api_url).hostname or "") in LOOPBACK_HOSTS


def load_settings(**overrides: Any) -> Settings:
    """Build the settings with the CLI's overrides on top.

    Raise ConfigError, with a one-line message, when a value is invalid or the config file is
    missing or cannot be read.
    """
    given = {key: value for key, value in overrides.items() if value is not None}
    explicit = os.environ.get("STXBF_CONFIG")
    if explicit and not config_file_path().is_file():
        raise ConfigError(f"config file {explicit} (from STXBF_CONFIG) does not exist")
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, given)) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed config file
        raise ConfigError(f"cannot read config file {config_file_path()}: {exc}") from None


def describe_validation_error(exc: ValidationError, given: Mapping[str, Any] | None = None) -> str:
    """Return one line that names the bad setting the way the user gave it (a flag, a variable
    or a config key), without showing the API key."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    value = first.get("input")
    secret = "api_key" in field.lower()
    shown = "" if secret or isinstance(value, dict) else f" (got {value!r})"
    message = first["msg"].removeprefix("Value error, ")
    return f"invalid {setting_source(field, given or {})}: {message}{shown}"


def setting_source(field: str, given: Mapping[str, Any]) -> str:
    """Return where a setting's value came from, in the words the user used: `--target-days`,
    `STXBF_TARGET_DAYS`, or `target_days in ~/.config/stxbf/config.toml` (flag > env > file)."""
    if field.upper().startswith(("STXBF_", "HIRO_")):  # an alias, as for the API key
        choices = [
            str(choice)
            for info in Settings.model_fields.values()
            if isinstance(info.validation_alias, AliasChoices)
            and field in info.validation_alias.choices
            for choice in info.validation_alias.choices
        ]
        found = (_env_name(name) for name in choices or [field])
        return next((name for name in found if name is not None), field)
    if field in given:
        return "--" + field.replace("_", "-")
    env = _env_name("STXBF_" + field)
    if env is not None:
        return env
    if field in Settings.model_fields:
        return f"{field} in {config_file_path()}"
    return f"setting {field}"


def _env_name(name: str) -> str | None:
    """Return the variable's name as it is set in the environment, since pydantic-settings
    ignores case; return None when it is not set."""
    wanted = name.lower()
    return next((key for key in os.environ if key.lower() == wanted), None)


def check_key_transport(settings: Settings) -> None:
    """Raise ConfigError when the API key would travel in clear text to another machine.

    Plain http is allowed only for a loopback address.
    """
    plain_http = urlsplit(settings.api_url).scheme != "https"
    if settings.api_key is not None and plain_http and not settings.api_is_loopback:
        raise ConfigError(
            f"refusing to send the API key over plain http to {settings.api_url}; "
            "use https (plain http is allowed only for a loopback address)"
        )
