"""Settings from the environment and an optional `.env` file.

Our own variables are prefixed `NUANXIN_`; the ones that operators already know by
name (`DATABASE_URL`, `TELEGRAM_BOT_TOKEN`, `TWILIO_*`) keep their usual names.
A bad value stops start-up with a message that names the variable.
"""

from __future__ import annotations

import os
import secrets
from datetime import time, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent


class SettingsError(RuntimeError):
    """A setting has a value that cannot be used; the message names the variable."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NUANXIN_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    data_dir: Path = Field(default=PROJECT_ROOT / "var")
    database_url: str = Field(default="", validation_alias=_env("DATABASE_URL"))
    office_timezone: str = "Asia/Shanghai"
    # How messages sign off and how people reach a person (outreach/templates.py).
    office_name: str = "暖心服务中心"
    office_name_en: str = ""  # empty: "Nuanxin Service Centre" with the default name, else office_name
    office_phone: str = "12345"
    # How zh-Hant is written (bot/language.py): s2hk (Hong Kong / Macau) or s2twp (Taiwan).
    traditional_variant: str = "s2hk"
    # Optional YAML replacing outreach/occasions.yaml (who is greeted on which festival, when).
    occasions_file: Path | None = None
    # Key for the keyed hash of ID-card numbers. Empty: a key is generated once and kept in data_dir.
    id_hash_key: str = ""
    session_secret: str = ""
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=8080, ge=1, le=65535)
    public_base_url: str = "http://127.0.0.1:8080"
    # The console: a session unused this long ends; the payment-notice ceiling (yuan).
    console_idle_minutes: int = Field(default=60, ge=5, le=24 * 60)
    payment_notice_max_yuan: int = Field(default=200_000, gt=0)

    telegram_bot_token: str = Field(default="", validation_alias=_env("TELEGRAM_BOT_TOKEN"))
    telegram_api_base: str = Field(default="", validation_alias=_env("TELEGRAM_API_BASE"))
    telegram_webhook_secret: str = Field(default="", validation_alias=_env("TELEGRAM_WEBHOOK_SECRET"))
    telegram_mode: str = "polling"  # polling | webhook
    staff_telegram_chat_id: str = ""

    twilio_account_sid: str = Field(default="", validation_alias=_env("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: str = Field(default="", validation_alias=_env("TWILIO_AUTH_TOKEN"))
    twilio_from_number: str = Field(default="", validation_alias=_env("TWILIO_FROM_NUMBER"))
    twilio_api_base: str = Field(default="", validation_alias=_env("TWILIO_API_BASE"))
    twilio_messaging_service_sid: str = Field(default="", validation_alias=_env("TWILIO_MESSAGING_SERVICE_SID"))
    # Several senders, each with its own rate: "+8613900000000=1, +8613900000001=1, MG…=10"
    # (segments a second; a sender without "=" gets twilio_segments_per_s). Empty: the one
    # sender TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER.
    twilio_senders: str = ""
    # Key names the signing keys of webhooks signed with a shared key instead of the auth token
    # ("KEY_ID=SECRET, ..."), named by Twilio's X-Twilio-Webhooks-Signature-Settings header.
    twilio_webhook_keys: str = Field(default="", validation_alias=_env("TWILIO_WEBHOOK_KEYS"))

    # With REDIS_URL set, provider limits are kept in Redis and shared by every process.
    redis_url: str = Field(default="", validation_alias=_env("REDIS_URL"))
    redis_prefix: str = "nuanxin:limits"

    # Inbound abuse limits per address (bot/inbound_limits.py), in the `limits` notation; "" turns one off.
    inbound_limits: str = "20/minute;100/hour;300/day"
    code_limits_per_phone: str = "3/hour;5/day"
    code_limits_total: str = "500/hour"

    # Observability: /metrics answers only `Authorization: Bearer <token>` (no token: /metrics is off);
    # logs as JSON lines ("json"), as text ("text"), or JSON unless standard error is a terminal ("auto").
    metrics_token: str = ""
    log_format: str = "auto"
    log_level: str = "INFO"

    quiet_hours_start: time = time(21, 0)
    quiet_hours_end: time = time(8, 0)
    telegram_rate_per_s: float = Field(default=30.0, gt=0)
    telegram_per_chat_per_s: float = Field(default=1.0, gt=0)
    twilio_segments_per_s: float = Field(default=1.0, gt=0)
    # How long a dispatcher's claim on a row lasts without renewal (renewed every third of it):
    # what a killed dispatcher's claimed, unsent rows wait before another dispatcher takes them.
    dispatch_lease_s: float = Field(default=60.0, ge=5, le=3600)
    # What one SMS segment costs the office, in yuan (the composer shows the cost of a broadcast).
    sms_price_per_segment: Decimal = Field(default=Decimal("0.05"), ge=0, le=100)

    @field_validator("office_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use a name such as Asia/Shanghai)") from exc
        return value

    @field_validator("traditional_variant")
    @classmethod
    def _known_variant(cls, value: str) -> str:
        if value not in ("s2hk", "s2twp"):
            raise ValueError("must be 's2hk' (Hong Kong) or 's2twp' (Taiwan)")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:/// and postgresql:// URLs are supported")
        if value.startswith(("postgres://", "postgresql://")) and "+psycopg" not in value:
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis(cls, value: str) -> str:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("twilio_senders", "twilio_webhook_keys")
    @classmethod
    def _pairs(cls, value: str) -> str:
        _pairs_of(value)
        return value

    @field_validator("twilio_senders")
    @classmethod
    def _rates(cls, value: str) -> str:
        for name, rate in _pairs_of(value):
            if rate:
                try:
                    if float(rate) <= 0:
                        raise ValueError
                except ValueError:
                    raise ValueError(f"{name}={rate}: the rate is a positive number of segments a second") from None
        return value

    @field_validator("inbound_limits", "code_limits_per_phone", "code_limits_total")
    @classmethod
    def _windows(cls, value: str) -> str:
        if value.strip():
            from limits import parse_many

            try:
                parse_many(value)
            except ValueError:
                raise ValueError("write windows as 10/minute;60/hour;200/day") from None
        return value

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        if value not in ("auto", "json", "text"):
            raise ValueError("must be 'auto', 'json' or 'text'")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @field_validator("telegram_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ("polling", "webhook"):
            raise ValueError("must be 'polling' or 'webhook'")
        return value

    # --- derived -----------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.office_timezone)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'nuanxin.db'}"

    @property
    def console_idle_timeout(self) -> timedelta:
        return timedelta(minutes=self.console_idle_minutes)

    @property
    def telegram_enabled(self) -> bool:
        return bool(self.telegram_bot_token)

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token
                    and (self.twilio_senders or self.twilio_messaging_service_sid or self.twilio_from_number))

    @property
    def sms_sender_rates(self) -> tuple[tuple[str, float], ...]:
        """Each SMS sender (a From number or a Messaging Service SID) with its segments a second
        ("sms" when none is configured: the log sink's)."""
        if self.twilio_senders:
            return tuple((name, float(rate) if rate else self.twilio_segments_per_s)
                         for name, rate in _pairs_of(self.twilio_senders))
        return ((self.twilio_messaging_service_sid or self.twilio_from_number or "sms", self.twilio_segments_per_s),)

    @property
    def webhook_keys(self) -> dict[str, str]:
        return dict(_pairs_of(self.twilio_webhook_keys))

    def ensure_data_dir(self) -> Path:
        """The data folder, for this user alone (0700: it holds the database, keys and uploads)."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self.data_dir.stat().st_mode & 0o077:
            self.data_dir.chmod(0o700)
        return self.data_dir

    def secret_from_file(self, name: str) -> str:
        """Return a secret kept in data_dir, creating it on first use (embedded mode)."""
        path = self.data_dir / f"{name}.key"
        if path.exists():
            return path.read_text().strip()
        self.ensure_data_dir()
        value = secrets.token_hex(32)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value)
        return value

    @property
    def id_key(self) -> bytes:
        return (self.id_hash_key or self.secret_from_file("id-hash")).encode()

    @property
    def web_session_secret(self) -> str:
        return self.session_secret or self.secret_from_file("session")


def _pairs_of(text: str) -> list[tuple[str, str]]:
    """"A=1, B, C=x" → [("A", "1"), ("B", ""), ("C", "x")]; ValueError on an empty name."""
    pairs = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            name, _, value = entry.partition("=")
            if not name.strip():
                raise ValueError(f"{entry!r}: the name before '=' is missing")
            pairs.append((name.strip(), value.strip()))
    return pairs


_ALIASED = {"database_url", "telegram_bot_token", "telegram_api_base", "telegram_webhook_secret",
            "twilio_account_sid", "twilio_auth_token", "twilio_from_number", "twilio_api_base",
            "twilio_messaging_service_sid", "twilio_webhook_keys", "redis_url"}


def env_name(field: str) -> str:
    return field.upper() if field in _ALIASED else f"NUANXIN_{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Read settings; raise SettingsError naming the environment variable on a bad value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            lines.append(f"{env_name(field)}: {err['msg']} (got {err.get('input')!r})")
        raise SettingsError("invalid setting: " + "; ".join(lines)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
