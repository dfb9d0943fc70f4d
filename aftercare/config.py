"""All settings, read once from AFTERCARE_* environment variables (pydantic-settings)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_home() -> Path:
    """The per-user data folder, the same whatever the current directory: `$XDG_DATA_HOME/aftercare`, else
    `~/.local/share/aftercare` on Linux (platformdirs; the platform's own place on macOS and Windows)."""
    return Path(user_data_dir("aftercare", appauthor=False))


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AFTERCARE_", extra="ignore")

    home: Path = Field(default_factory=default_home, description="Folder for the embedded SQLite file, broker, "
                                                                   "outbox and photos (AFTERCARE_HOME)")
    database_url: str = ""
    broker_url: str = ""
    public_url: str = "http://127.0.0.1:8000"

    sms_channel: Literal["console", "twilio"] = "console"
    email_channel: Literal["console", "smtp"] = "console"

    twilio_account_sid: str = ""
    twilio_auth_token: str = ""
    twilio_from: str = ""
    twilio_messaging_service_sid: str = ""
    twilio_api_base_url: str = "https://api.twilio.com"
    twilio_webhook_key: str = Field("", description="SharedKey secret of a Twilio Webhook Setting (HMAC-SHA256)")

    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_starttls: bool = False
    smtp_timeout: float = 10.0
    email_from: str = "aftercare@localhost"

    # Delivery tuning.
    dispatch_interval: float = Field(2.0, gt=0)
    dispatch_batch_size: int = Field(100, ge=1)
    dispatch_claim_limit: int = Field(2000, ge=1)
    claim_lease_seconds: int = Field(300, ge=10)
    # A page held by a worker that died is claimed again after this: the on-call person hears within a minute.
    page_lease_seconds: int = Field(30, ge=5, le=60)
    max_attempts: int = Field(6, ge=1)
    retry_base_seconds: float = Field(5.0, gt=0)
    sms_rate_per_second: float = Field(50.0, gt=0, description="Per sender number, shared by all workers")
    send_threads: int = Field(8, ge=1, description="Concurrent sends inside one delivery batch")

    # Escalation re-page intervals.
    emergency_repage_minutes: float = Field(5.0, gt=0)
    urgent_repage_minutes: float = Field(30.0, gt=0)

    # The web side for staff and booking systems (issue 9).
    secret_key: str = Field("", description="Signs escalation links and staff sessions; embedded mode keeps one "
                                            "in the data folder when unset")
    page_link_hours: float = Field(24.0, gt=0, description="How long the link in a page stays valid")
    media_dir: Path | None = Field(None, description="Where patients' photos are stored; default HOME/media")
    media_max_bytes: int = Field(5_000_000, ge=1, description="Largest photo accepted")

    web_host: str = "127.0.0.1"
    web_port: int = Field(8000, ge=1, le=65535)
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per log line")

    # What /healthz calls unhealthy (issue 10).
    health_tick_seconds: float = Field(120.0, gt=0, description="Longest time without a dispatcher tick")
    health_max_lag_seconds: float = Field(300.0, gt=0, description="Longest a due message may wait")

    @model_validator(mode="after")
    def _provider_settings_present(self) -> Settings:
        if self.sms_channel == "twilio":
            for name in ("twilio_account_sid", "twilio_auth_token"):
                if not getattr(self, name):
                    raise ValueError(f"AFTERCARE_{name.upper()} is required when AFTERCARE_SMS_CHANNEL=twilio")
            if not (self.twilio_from or self.twilio_messaging_service_sid):
                raise ValueError(
                    "AFTERCARE_TWILIO_FROM or AFTERCARE_TWILIO_MESSAGING_SERVICE_SID is required "
                    "when AFTERCARE_SMS_CHANNEL=twilio"
                )
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.home / 'aftercare.db').resolve()}"

    @property
    def effective_media_dir(self) -> Path:
        return self.media_dir or self.home / "media"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def embedded_broker(self) -> bool:
        return not self.broker_url

    @property
    def uses_redis(self) -> bool:
        return self.effective_broker_url.startswith(("redis://", "rediss://"))


def _explain(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        loc = [str(p) for p in item.get("loc", ()) if p]
        name = f"AFTERCARE_{loc[0].upper()}" if loc else "configuration"
        parts.append(f"{name}: {item['msg']}" if loc else item["msg"].removeprefix("Value error, "))
    return "; ".join(parts)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(f"invalid configuration: {_explain(exc)}") from None


def reset_settings() -> None:
    """Forget the cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
