"""The one place the environment is read: every OUTBOUNDCALLS_* setting, validated at start-up."""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from outboundcalls.client import DEFAULT_BASE_URL
from outboundcalls_mcp.server.calling_hours import DEFAULT_CALLING_HOURS
from outboundcalls_mcp.server.policy import (
    DEFAULT_ALLOWED_NUMBER_TYPES,
    DEFAULT_CONFIRM_MODE,
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_CALLS_PER_DAY,
    DEFAULT_MAX_CREDITS_PER_DAY,
    DEFAULT_MAX_CREDITS_PER_MINUTE,
    DEFAULT_REDIAL_COOLDOWN_MINUTES,
    DEFAULT_REGION,
    ConfirmMode,
    bad_country_codes,
    bad_number_types,
)

__all__ = ["ENV_PREFIX", "ConfirmMode", "Settings", "SettingsError", "load_settings", "request_state_keys"]

ENV_PREFIX = "OUTBOUNDCALLS_"
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{24,128}")
# Variables with the prefix that are not settings: the test suite's PostgreSQL (CI exports it, and
# the server under test inherits the environment).
_NOT_SETTINGS = frozenset({"OUTBOUNDCALLS_TEST_DATABASE_URL"})
# A value that says "not set": empty, or a bundle host's placeholder left unresolved (see load_settings).
_UNRESOLVED = re.compile(r"(\$\{user_config\.[A-Za-z0-9_]+\})?")


class SettingsError(ValueError):
    """A setting is unknown, malformed or contradictory; the message names each one."""


def _csv(value: Any) -> Any:
    if isinstance(value, str):
        return frozenset(part.strip().upper() for part in value.split(",") if part.strip())
    return value


# A plain model, not pydantic-settings' BaseSettings: load_settings is the one reader of the
# environment, so BaseSettings would add nothing but a dependency.
class Settings(BaseModel):
    """Every setting of the server; each field is the env var OUTBOUNDCALLS_<FIELD>."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    api_key: SecretStr | None = Field(default=None, description="OutboundCalls API key (oc_live_...).")
    base_url: str = Field(default=DEFAULT_BASE_URL, description="API base URL.")
    default_region: str = Field(default=DEFAULT_REGION, description="Region for numbers written without +country code.")
    sandbox: bool = Field(default=False, description="Serve the built-in sandbox instead of the real API.")
    read_only: bool = Field(default=False, description="Register no tool that dials or writes.")
    timeout_seconds: float = Field(default=15.0, gt=0, le=120, description="Upstream request timeout.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="WARNING", description="stderr log level.")
    # Transports.
    http_token: SecretStr | None = Field(default=None, description="Bearer token required on the HTTP transport.")
    http_allowed_hosts: frozenset[str] = Field(
        default=frozenset(), description="Extra Host header values the HTTP transport accepts (e.g. mcp.example.com)."
    )
    http_rate_limit: int = Field(
        default=600,
        ge=0,
        description="MCP requests per minute per client address over HTTP (429 beyond); 0 = no limit.",
    )
    http_trusted_proxies: frozenset[str] = Field(
        default=frozenset(),
        description="Proxy addresses (IPs or networks) whose X-Forwarded-For is believed; empty = none.",
    )
    webhook_secret: SecretStr | None = Field(default=None, description="Secret path part of the webhook route.")
    # Safe dispatch: consent and policy.
    confirm: ConfirmMode = Field(default=DEFAULT_CONFIRM_MODE, description="auto, elicit, token or none.")
    allowed_countries: frozenset[str] = Field(
        default=frozenset(), description="ISO country codes that may be called, comma-separated; empty = all."
    )
    allowed_number_types: frozenset[str] = Field(
        default=DEFAULT_ALLOWED_NUMBER_TYPES, description="phonenumbers type names that may be called."
    )
    max_credits_per_minute: float = Field(
        default=DEFAULT_MAX_CREDITS_PER_MINUTE, gt=0, description="Refuse destinations with a higher estimated rate."
    )
    calling_hours: str = Field(
        default=str(DEFAULT_CALLING_HOURS), description="Local hours at the destination, HH:MM-HH:MM."
    )
    do_not_call_file: Path | None = Field(default=None, description="File of numbers never to call.")
    max_calls_per_day: int = Field(default=DEFAULT_MAX_CALLS_PER_DAY, ge=1, description="Dials per rolling 24 hours.")
    max_credits_per_day: float = Field(
        default=DEFAULT_MAX_CREDITS_PER_DAY, gt=0, description="Estimated credits per rolling 24 hours."
    )
    redial_cooldown_minutes: int = Field(
        default=DEFAULT_REDIAL_COOLDOWN_MINUTES, ge=0, description="Minutes before the same number is dialed again."
    )
    max_batch: int = Field(
        default=DEFAULT_MAX_BATCH, ge=1, le=200, description="Destinations per dispatch_calls batch."
    )
    state_dir: Path | None = Field(default=None, description="Ledger directory; default the user data dir.")
    # Several replicas: one shared database.
    database_url: SecretStr | None = Field(
        default=None,
        description="postgresql://user:password@host:port/db: keep the ledger, consents, audit and call ends in "
        "PostgreSQL, shared by every replica (needs outboundcalls-mcp[postgres]); unset = SQLite in the state dir.",
    )
    database_schema: str = Field(
        default="outboundcalls",
        # 55 leaves room for the sandbox's own schema (<name>_sandbox) within PostgreSQL's 63.
        pattern=r"^[a-z_][a-z0-9_]{0,54}$",
        description="PostgreSQL schema holding this account's ledger; replicas of one account share it.",
    )
    request_state_key: SecretStr | None = Field(
        default=None,
        description="Key(s) sealing 2026-07-28 requestState, 32+ characters each, comma-separated (the first seals): "
        "the same on every replica, so a question asked by one can be answered through another.",
    )

    @field_validator("allowed_countries", "allowed_number_types", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        return _csv(value)

    @field_validator("http_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("http_trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("http_trusted_proxies")
    @classmethod
    def _proxy_addresses(cls, value: frozenset[str]) -> frozenset[str]:
        bad = []
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                bad.append(entry)
        if bad:
            raise ValueError(f"not IP addresses or networks: {', '.join(sorted(bad))} (e.g. 10.0.0.5 or 10.0.0.0/24)")
        return value

    @field_validator("allowed_countries", "allowed_number_types")
    @classmethod
    def _policy_names(cls, value: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        # The policy's own checks (server/policy.py), so a setting is refused here as it would be there.
        check = bad_country_codes if info.field_name == "allowed_countries" else bad_number_types
        if bad := check(value):
            raise ValueError(bad)
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str) -> str:
        value = value.strip().upper()
        if len(value) != 2 or not value.isalpha() or not value.isascii():
            raise ValueError("must be an ISO 3166 alpha-2 region such as US or GB")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")):
            raise ValueError("must be https:// (plain http only to loopback)")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # It is the webhook's only credential and sits in a URL path: long, and URL-safe as is.
        if value is not None and not _WEBHOOK_SECRET.fullmatch(value.get_secret_value()):
            raise ValueError("must be 24 to 128 characters of A-Z, a-z, 0-9, - and _ (e.g. `openssl rand -hex 24`)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        # The message never quotes the value: it carries the database password.
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("must be a postgresql:// URL (postgresql://user:password@host:5432/database)")
        return value

    @field_validator("request_state_key")
    @classmethod
    def _request_state_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        keys = request_state_keys(value)
        if not keys or any(len(key) < 32 for key in keys):
            raise ValueError("each key must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return value

    @model_validator(mode="after")
    def _unattended_needs_caps(self) -> Settings:
        if self.confirm == "none":
            missing = [
                f"{ENV_PREFIX}{n.upper()}"
                for n in ("max_calls_per_day", "max_credits_per_day")
                if n not in self.model_fields_set
            ]
            if missing:
                raise ValueError(
                    "OUTBOUNDCALLS_CONFIRM=none dials without asking anyone, so it needs explicit daily caps: "
                    f"set {' and '.join(missing)}"
                )
        return self

    @property
    def mode_label(self) -> str:
        """Which upstream this server talks to, for logs and the instructions."""
        return "sandbox" if self.sandbox else "live"


def request_state_keys(value: SecretStr) -> list[str]:
    """The ring of requestState keys in a setting: the first seals, every one unseals (rotation)."""
    return [part.strip() for part in value.get_secret_value().split(",") if part.strip()]


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "settings"
        name = f"{ENV_PREFIX}{field.upper()}" if err["loc"] else "settings"
        # Never echo the value of a secret back into a log or terminal.
        msg = err["msg"]
        lines.append(f"{name}: {msg}")
    return "; ".join(lines)


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Build Settings from the environment plus CLI overrides; unknown OUTBOUNDCALLS_* names are an error."""
    env = dict(os.environ if environ is None else environ)
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    unknown = sorted(
        name for name in env if name.upper().startswith(ENV_PREFIX) and name not in known and name not in _NOT_SETTINGS
    )
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)}: a misspelt policy is silently ignored otherwise; "
            f"run `outboundcalls-mcp --help` for the list"
        )
    # An empty value means "not set": bundle hosts substitute "" for optional fields left blank, and
    # pass an optional field with no value and no default on as its literal `${user_config.<key>}`.
    values: dict[str, Any] = {
        name: env[f"{ENV_PREFIX}{name.upper()}"]
        for name in Settings.model_fields
        if not _UNRESOLVED.fullmatch(env.get(f"{ENV_PREFIX}{name.upper()}", "").strip())
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        # _env_prefix=None-like behaviour: pass values explicitly so tests and CLI share one path.
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
