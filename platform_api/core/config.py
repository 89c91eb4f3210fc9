"""Settings of the Computing Platform, read from ``GLA_*`` environment variables by pydantic-settings.

:meth:`Settings.from_env` reads the environment (or a given mapping); ``Settings(...)`` takes its
arguments only (tests, embedding), so a ``GLA_*`` variable of the shell never leaks into them.
Every setting has an embedded default, so ``create_app()`` works with an empty environment. A
boolean is 1/true/yes/on or 0/false/no/off (or empty: off); ``GLA_FORWARD`` is a comma-separated
list. A value a setting cannot take raises :class:`SettingsError`, one line naming the variable.

| variable | setting | default |
|---|---|---|
| GLA_DATABASE_URL | database_url | sqlite:///./gla-platform.db |
| GLA_MODE | mode | substation (or concentrator) |
| GLA_SUBSTATION_ID | substation_id | sub-1 (default substation of imports; the forwarder's identity) |
| GLA_RECEIVERS_FILE | receivers_file | none (JSON list or CSV of receiver_id, substation_id, token[, role]) |
| GLA_ADMIN_TOKEN | admin_token | none: the platform makes one at first start and keeps it in the admin token file |
| GLA_ADMIN_TOKEN_FILE | admin_token_file | `<state dir>/admin-token` (made at first start, mode 0600) |
| GLA_STATE_DIR | state_dir | the SQLite file's dir, else `$STATE_DIRECTORY`, else ~/.local/state/gla-platform |
| GLA_CONCENTRATOR_URL | concentrator_url | none: nothing is forwarded |
| GLA_CONCENTRATOR_TOKEN | concentrator_token | none |
| GLA_FORWARD | forward | events,map (also: readings) |
| GLA_BACKGROUND | background | 1 (webhook delivery, forwarding, missed-report checks in a thread) |
| GLA_KEY_GRACE_S | key_grace_s | 172800 (2 days): a hub's previous key is accepted this long after a rotation |
| GLA_REPORTS_PER_DAY | reports_per_day | 2 |
| GLA_MIN_ACTIVATION_NOTICE_S | min_activation_notice_s | 600 |
| GLA_AUTO_PROVISION | auto_provision | 1 |
| GLA_WEBHOOK_MAX_ATTEMPTS | webhook_max_attempts | 8 |
| GLA_WEBHOOK_BACKOFF_S | webhook_backoff_s | 2.0 (doubles per attempt) |
| GLA_THEFT_INTERVAL_S | theft_interval_s | 0 (off): run the theft analysis in the background this often |
| GLA_MAX_BODY_BYTES | max_body_bytes | 67108864 (64 MiB): larger request bodies are answered 413 before they are read |
| GLA_SQL_ECHO | sql_echo | 0 |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
#: the variables :meth:`Settings.from_env` is reading (None: a plain ``Settings(...)``, no environment)
_ENV: ContextVar[Mapping[str, str] | None] = ContextVar("gla_settings_env", default=None)


Forward = Literal["events", "map", "readings"]


def _default_forward() -> list[Forward]:
    """What a platform forwards to its concentrator unless told otherwise (a new list each time)."""
    return ["events", "map"]


class SettingsError(ValueError):
    """A GLA_* variable the settings cannot take: one line naming the variable and why."""


class _Environment(EnvSettingsSource):
    """The ``GLA_*`` variables of a mapping (``os.environ``, or the one given to ``from_env``)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._env = env
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k if self.case_sensitive else k.lower(): v for k, v in self._env.items()}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", env_prefix="GLA_", case_sensitive=False)

    database_url: str = "sqlite:///./gla-platform.db"
    mode: Literal["substation", "concentrator"] = "substation"
    substation_id: str = "sub-1"
    platform_id: str | None = Field(default=None, description="identity towards the concentrator")
    receivers_file: str | None = None
    admin_token: str | None = Field(default=None, description="operators' bearer token; wins over the token file")
    admin_token_file: str | None = Field(default=None, description="where the admin token is kept (see state_dir)")
    state_dir: str | None = Field(default=None, description="directory of the platform's own files (the admin token)")
    concentrator_url: str | None = None
    concentrator_token: str | None = None
    forward: Annotated[list[Forward], NoDecode] = Field(default_factory=_default_forward)
    background: bool = True
    background_interval_s: float = Field(default=0.5, gt=0)
    missed_check_interval_s: float = Field(default=60.0, gt=0)
    key_grace_s: float = Field(
        default=172_800.0, ge=0, le=366 * 86_400, description="previous key accepted this long after a rotation"
    )
    reports_per_day: float = Field(default=2.0, gt=0, le=21600)
    min_activation_notice_s: float = Field(default=600.0, ge=0)
    auto_provision: bool = True
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_s: float = Field(default=2.0, ge=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    forward_batch: int = Field(default=500, ge=1)
    sse_poll_s: float = Field(default=0.5, gt=0)
    theft_interval_s: float = Field(default=0.0, ge=0, description="background theft analysis period; 0 = off")
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, ge=1024, description="request bodies above this are refused (413) unread"
    )
    sql_echo: bool = False

    @field_validator("background", "auto_provision", "sql_echo", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        if isinstance(v, str):
            w = v.strip().lower()
            if w in _TRUE or w in _FALSE:
                return w in _TRUE
            raise ValueError("expected 1/true/yes/on or 0/false/no/off")
        return v

    @field_validator("forward", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

    @field_validator("database_url")
    @classmethod
    def _url(cls, v: str) -> str:
        # accept the common shorthands and point them at the installed drivers
        if v.startswith("postgres://"):
            v = "postgresql://" + v[len("postgres://") :]
        if v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v[len("postgresql://") :]
        return v

    @property
    def is_concentrator(self) -> bool:
        return self.mode == "concentrator"

    @property
    def identity(self) -> str:
        return self.platform_id or f"platform-{self.substation_id}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        env = _ENV.get()
        return (init_settings,) if env is None else (init_settings, _Environment(settings_cls, env))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings from the ``GLA_*`` variables of ``env`` (default ``os.environ``); keyword
        ``overrides`` win over them."""
        token = _ENV.set(os.environ if env is None else env)
        try:
            return cls(**overrides)
        except ValidationError as e:
            err = e.errors()[0]
            name = str(err["loc"][0]) if err["loc"] else ""
            where = name if name in overrides else "GLA_" + name.upper()
            value = overrides[name] if name in overrides else (os.environ if env is None else env).get(where)
            raise SettingsError(f"{where}={value!r}: {err['msg']}") from None
        finally:
            _ENV.reset(token)
