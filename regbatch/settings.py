"""Settings: one pydantic-settings class read from `REGBATCH_*` environment variables.

`get_settings()` builds it on first use (not at import) and caches it; `reset_settings()` drops the
cache (tests, and the CLI after it changed the environment).
"""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from regbatch.batch_rules import MAX_CONCURRENCY
from regbatch.errors import ConfigurationError

SUPPORTED_DRIVERS = ("postgresql+psycopg", "sqlite")


def default_data_dir() -> Path:
    """The user's data directory for regbatch (XDG_DATA_HOME or ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "regbatch"


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?/?")


IMAGE_POLL_INTERVAL_S = 2.0
"""The image upload's poll interval when nothing sets it (the setting's and the client's)."""


class Settings(BaseSettings):
    """Every knob of the product; each field is `REGBATCH_<FIELD>` in the environment."""

    model_config = SettingsConfigDict(env_prefix="REGBATCH_", extra="ignore")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    """SQLAlchemy URL; empty means the embedded SQLite file `<data_dir>/regbatch.db`."""

    secret_key: SecretStr | None = None
    """Fernet key encrypting owners' platform passwords; empty means `<data_dir>/secret.key`."""

    platform_url: str = "http://127.0.0.1:8765"
    platform_service_key: SecretStr = SecretStr("sandbox-service-key")

    max_batch_size: int = Field(default=1000, ge=1)

    import_max_bytes: int = Field(default=100_000_000, ge=1)
    """The largest restaurants file `restaurants import` reads (imports stream, row by row)."""
    default_concurrency: int = Field(default=5, ge=1, le=MAX_CONCURRENCY)

    lease_seconds: float = Field(default=30.0, gt=0)
    """A running batch's lease; its runner renews it every third of this."""

    account_rate_limit_seconds: float = Field(default=60.0, ge=0)
    """Minimum spacing between account creations, across every process (0 disables the limit)."""

    retry_delay_scale: float = Field(default=1.0, ge=0)
    """Multiplies every step's retry delays (tests use a small value)."""

    step_timeout_scale: float = Field(default=1.0, gt=0)
    """Multiplies every step's timeout (tests use a small value to provoke timeouts)."""

    image_poll_interval_seconds: float = Field(default=IMAGE_POLL_INTERVAL_S, gt=0)
    """How often an accepted menu-image upload is polled until the platform has processed it."""

    embedded_max_concurrency: int = Field(default=3, ge=1)
    """Cap on concurrent restaurant subflows when Prefect runs on its embedded SQLite server."""

    webhook_attempts: int = Field(default=4, ge=1, le=20)
    """Delivery attempts per webhook (exponential backoff between them)."""

    webhook_base_delay_seconds: float = Field(default=1.0, ge=0)

    webhook_allow_private: bool = False
    """Let webhooks reach loopback and private-network addresses (local testing only); the
    link-local, multicast, unspecified and reserved ranges stay refused even then."""

    max_request_body_bytes: int = Field(default=1_000_000, ge=1024)
    """The largest REST request body; a larger one is refused with 413 before it is read."""

    batch_deployment: str = "registration-batch/registration-batch"
    """The deployment `batch start` (CLI, REST, Python) submits batches to."""

    restaurant_deployment: str = "register-restaurant/register-restaurant"
    """The deployment (flow/deployment) distributed batches submit each restaurant to."""

    console_secret: SecretStr | None = None
    """Signs the operations console's session cookies; empty means a random secret made when
    the process starts (sessions then end when it restarts, and processes do not share them)."""

    console_session_minutes: int = Field(default=480, ge=1, le=10080)
    """How long a console sign-in lasts."""

    cors_origins: str = ""
    """Browser origins allowed to call the REST API, comma-separated
    (`https://app.example.com,http://localhost:3000`); empty (the default) allows none."""

    @field_validator("cors_origins")
    @classmethod
    def _check_cors_origins(cls, value: str) -> str:
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"REGBATCH_CORS_ORIGINS holds {origin!r}, which is not an origin; list "
                    "scheme://host[:port] values without a path, comma-separated (no '*')"
                )
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed browser origins, in the order given."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        if not value:
            return value
        try:
            url = make_url(value)
        except ArgumentError as exc:
            raise ValueError(
                f"REGBATCH_DATABASE_URL={value!r} is not a database URL ({exc}); use "
                "postgresql+psycopg://user@host:5432/dbname or sqlite:///path/to/file.db"
            ) from None
        if url.drivername not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"REGBATCH_DATABASE_URL uses driver {url.drivername!r}; use one of "
                f"{', '.join(SUPPORTED_DRIVERS)} (e.g. postgresql+psycopg://user@host:5432/db)"
            )
        return value

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the embedded SQLite file in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'regbatch.db'}"

    @property
    def is_embedded_database(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, validated once; raises ConfigurationError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        message = str(first["msg"]).removeprefix("Value error, ")
        variable = f"REGBATCH_{field.upper()}"
        if variable in message:
            raise ConfigurationError(message) from None
        raise ConfigurationError(f"{variable}: {message}") from None


def reset_settings() -> None:
    """Forget the cached settings so the next get_settings() re-reads the environment."""
    get_settings.cache_clear()
