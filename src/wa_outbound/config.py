"""Settings: every `WA_*` variable of the contract, read from the environment and `.env`."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PositiveSeconds = Annotated[float, Field(gt=0)]
OPT_OUT_KEYWORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "ARRET", "BAJA", "PARAR")
OPT_IN_KEYWORDS = ("START", "UNSTOP")


class Settings(BaseSettings):
    """One object that `create_app` and the CLI are built from; never read at import time."""

    model_config = SettingsConfigDict(
        env_prefix="WA_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # A validation error's text would otherwise repeat the input: tokens and keys included.
        hide_input_in_errors=True,
    )

    database_url: str = "sqlite+aiosqlite:///./wa_outbound.db"
    # PostgreSQL: the server cancels a statement of the pool running this long, and the client
    # gives up one second later on one that gets no answer (the request answers 503).
    # Migrations run without it.
    database_statement_timeout_seconds: float = Field(30.0, ge=1, le=3600)
    # Empty: WA_DATABASE_URL. Set to another URL: WA_DATABASE_URL goes through a transaction
    # pooler (PgBouncer), and what needs a session of its own (LISTEN, session advisory locks,
    # migrations) connects here, straight to PostgreSQL (db.engine).
    database_session_url: str = ""
    redis_url: str = ""
    # How the rate limiter reaches Redis (docs/operations.md, "Scaling out"): one server, a
    # Redis Cluster (WA_REDIS_URL is a startup node) or a master found through Sentinel.
    redis_mode: Literal["standalone", "cluster", "sentinel"] = "standalone"
    redis_sentinels: Annotated[list[str], NoDecode] = Field(default_factory=list)
    redis_sentinel_master: str = ""
    # Grants are acted on once this many replicas hold them (WAIT), so a promoted replica
    # never forgets one. Empty: 1 in cluster and sentinel modes, 0 standalone.
    redis_wait_replicas: int | None = Field(None, ge=0, le=16)

    # The default suits `make run` (SQLite); on PostgreSQL it must be said (see the validator).
    provider: Literal["sandbox", "cloud"] = "sandbox"
    graph_api_base_url: str = "https://graph.facebook.com"
    graph_api_version: str = "v21.0"
    # The shared sender (both or neither): orgs without a sender of their own send from it.
    phone_number_id: str = ""
    access_token: SecretStr = SecretStr("")
    shared_waba_id: str = ""
    app_secret: SecretStr = SecretStr("")
    webhook_verify_token: SecretStr = SecretStr("")
    # PostgreSQL: Meta's webhook is answered 200 once its body is committed ("stored", applied
    # tens of milliseconds behind), or once its statuses are applied too ("applied").
    webhook_answer_after: Literal["stored", "applied"] = "stored"
    admin_token: SecretStr = SecretStr("")
    # Encryption at rest of stored secrets (wa_outbound.crypto): the first key encrypts, every
    # key decrypts. Each is the URL-safe base64 of 32 random bytes (a Fernet key).
    secret_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    # Statuses whose wamid is still unknown after this long are dropped. Seven days is how long
    # Meta keeps retrying a webhook; a wamid unknown for that long will not become ours.
    pending_status_max_age_seconds: PositiveSeconds = 7 * 86_400.0

    max_attempts: int = Field(5, ge=1, le=100)
    retry_base_seconds: PositiveSeconds = 2.0
    retry_max_seconds: PositiveSeconds = 900.0

    dispatch_enabled: bool = True
    dispatch_poll_seconds: PositiveSeconds = 1.0
    dispatch_batch_size: int = Field(100, ge=1, le=10_000)
    dispatch_concurrency: int = Field(64, ge=1, le=10_000)
    lease_seconds: PositiveSeconds = 60.0
    send_timeout_seconds: PositiveSeconds = 10.0
    shutdown_grace_seconds: PositiveSeconds = 10.0
    # A send whose outcome is unknown (timeout, dropped connection) waits this long for a status
    # webhook naming it before it is sent again (docs/reconciliation.md).
    reconcile_seconds: float = Field(60.0, ge=0, le=86_400)

    default_daily_quota: int = Field(1000, ge=0)
    # Empty (None): an org has no per-second cap of its own; its senders' throughput paces it.
    default_messages_per_second: float | None = Field(None, gt=0)
    # At most one message per this many seconds from a sender to one recipient (0: off).
    pair_interval_seconds: float = Field(6.0, ge=0, le=86_400)

    # Callbacks to the organisations' webhook endpoints (wa_outbound.callbacks).
    callback_enabled: bool = True
    callback_timeout_seconds: PositiveSeconds = 10.0
    callback_disable_after_seconds: PositiveSeconds = 432_000.0
    # Development and tests only: also http:// and loopback or private addresses.
    callback_allow_insecure: bool = False
    # Development and tests only: the console's session cookie over plain http:// (without
    # Secure, so not `__Host-`). Over https the cookie is always `__Host-wa_console`, Secure.
    console_allow_insecure: bool = False
    # Seconds before each retry (each ±20 %); its length is the number of retries.
    callback_retry_schedule: Annotated[list[PositiveSeconds], NoDecode] = Field(
        default_factory=lambda: [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0]
    )
    callback_poll_seconds: PositiveSeconds = 1.0
    callback_batch_size: int = Field(400, ge=1, le=10_000)
    callback_concurrency: int = Field(64, ge=1, le=10_000)
    # At most this many connections to one endpoint's host at a time, so one slow endpoint
    # cannot take every connection of the worker.
    callback_per_host_connections: int = Field(8, ge=1, le=1_000)

    # The template registry (wa_outbound.templates): each WABA read from Meta this often.
    template_sync_seconds: PositiveSeconds = 3600.0
    # Inbound texts that, trimmed and case-folded, revoke or grant the sender's consent.
    opt_out_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(OPT_OUT_KEYWORDS)
    )
    opt_in_keywords: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(OPT_IN_KEYWORDS)
    )

    alert_enabled: bool = True
    alert_interval_seconds: PositiveSeconds = 60.0
    alert_cooldown_seconds: float = Field(1800.0, ge=0)
    alert_dlq_threshold: int = Field(100, ge=1)
    alert_queue_depth_threshold: int = Field(1000, ge=1)
    alert_failure_rate_threshold: float = Field(0.3, gt=0, le=1)
    alert_stuck_attempts: int = Field(3, ge=1)
    alert_stuck_age_seconds: PositiveSeconds = 7200.0
    alert_escalation_attempts: int = Field(5, ge=1)

    smtp_host: str = ""
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str = ""
    smtp_password: SecretStr = SecretStr("")
    smtp_starttls: bool = True
    alert_email_from: str = "wa-outbound@localhost"
    alert_email_recipients: Annotated[list[str], NoDecode] = Field(default_factory=list)
    alert_slack_webhook_url: str = ""

    # Data lifecycle (wa_outbound.lifecycle). Finished messages, their events and deliveries,
    # and processed webhook bodies older than this are deleted (0: kept for ever), in batches of
    # `retention_batch_size` rows, one short transaction each, each followed by a pause of
    # `retention_pause_ratio` times its own time (at least `retention_pause_seconds`).
    retention_days: int = Field(90, ge=0, le=36_500)
    retention_interval_seconds: PositiveSeconds = 3600.0
    retention_batch_size: int = Field(1000, ge=1, le=100_000)
    retention_pause_seconds: float = Field(0.05, ge=0, le=60)
    retention_pause_ratio: float = Field(3.0, ge=0, le=100)
    # The key of the HMAC that replaces an erased contact's data. Empty: derived from the first
    # of WA_SECRET_KEYS; without those either (the sandbox only), a fixed key.
    erasure_key: SecretStr = SecretStr("")

    # How often the queue gauges of /metrics are read from the database (never per scrape).
    metrics_refresh_seconds: PositiveSeconds = 5.0

    # How long a replica remembers an API key that authenticated (0: look up every request).
    # Revocations reach every replica at once through PostgreSQL; this bounds a missed one.
    api_key_cache_seconds: float = Field(1.0, ge=0, le=60)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    @field_validator("alert_email_recipients", mode="before")
    @classmethod
    def _split_recipients(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("opt_out_keywords", "opt_in_keywords", mode="before")
    @classmethod
    def _split_keywords(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("callback_retry_schedule", mode="before")
    @classmethod
    def _split_schedule(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("default_messages_per_second", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("redis_sentinels", mode="before")
    @classmethod
    def _split_sentinels(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("redis_sentinels")
    @classmethod
    def _host_and_port(cls, sentinels: list[str]) -> list[str]:
        for sentinel in sentinels:
            host, _, port = sentinel.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{sentinel!r} is not host:port")
        return sentinels

    @field_validator("redis_wait_replicas", mode="before")
    @classmethod
    def _empty_wait_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("secret_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("secret_keys")
    @classmethod
    def _keys_are_32_bytes(cls, keys: list[SecretStr]) -> list[SecretStr]:
        for position, key in enumerate(keys, start=1):
            try:
                raw = base64.b64decode(key.get_secret_value(), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raw = b""
            if len(raw) != 32:
                # Never the key itself: the message goes to logs and terminals.
                raise ValueError(
                    f"key {position} of {len(keys)} is not the URL-safe base64 of 32 bytes"
                )
        return keys

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @field_validator("database_session_url")
    @classmethod
    def _session_driver(cls, value: str) -> str:
        if value and not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be empty or start with postgresql+asyncpg://")
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_combinations(self) -> Settings:
        if self.is_postgres and "provider" not in self.model_fields_set:
            # A production database with the default provider would "send" nothing and report
            # every message delivered: the sandbox on PostgreSQL is a choice, never an accident.
            raise ValueError(
                "WA_PROVIDER is not set and WA_DATABASE_URL is PostgreSQL: set WA_PROVIDER=cloud "
                "to send through Meta, or WA_PROVIDER=sandbox to simulate sending on purpose"
            )
        if self.provider == "cloud" and not self.app_secret.get_secret_value():
            raise ValueError("WA_PROVIDER=cloud needs WA_APP_SECRET to be set")
        if bool(self.phone_number_id) != bool(self.access_token.get_secret_value()):
            raise ValueError(
                "WA_PHONE_NUMBER_ID and WA_ACCESS_TOKEN make the shared sender together: "
                "set both, or neither"
            )
        if self.lease_seconds < 2 * self.send_timeout_seconds:
            # A send may take the whole timeout; the lease must outlast it by a margin, or a
            # live send's row could be reclaimed and sent again by another replica.
            raise ValueError(
                f"WA_LEASE_SECONDS ({self.lease_seconds:g}) must be at least twice "
                f"WA_SEND_TIMEOUT_SECONDS ({self.send_timeout_seconds:g})"
            )
        if self.provider == "cloud" and not self.secret_keys:
            # Senders' tokens would be stored in clear: only the sandbox may do that.
            raise ValueError(
                "WA_PROVIDER=cloud needs WA_SECRET_KEYS: stored tokens are encrypted with it"
            )
        if 0 < len(self.erasure_key.get_secret_value()) < 32:
            raise ValueError("WA_ERASURE_KEY must be at least 32 characters long")
        if self.database_session_url and not self.is_postgres:
            raise ValueError("WA_DATABASE_SESSION_URL needs WA_DATABASE_URL to be PostgreSQL")
        if self.redis_mode == "sentinel" and not (
            self.redis_sentinels and self.redis_sentinel_master
        ):
            raise ValueError(
                "WA_REDIS_MODE=sentinel needs WA_REDIS_SENTINELS (host:port, comma-separated) "
                "and WA_REDIS_SENTINEL_MASTER (the master's name)"
            )
        if self.redis_mode == "cluster" and not self.redis_url:
            raise ValueError("WA_REDIS_MODE=cluster needs WA_REDIS_URL (a startup node)")
        if self.retry_max_seconds < self.retry_base_seconds:
            raise ValueError("WA_RETRY_MAX_SECONDS must be at least WA_RETRY_BASE_SECONDS")
        return self

    @property
    def has_shared_sender(self) -> bool:
        """Whether orgs without a sender of their own can send: the sandbox always can."""
        return self.provider == "sandbox" or bool(self.phone_number_id)

    @property
    def shared_waba(self) -> str:
        """The shared sender's WABA; the sandbox's is `sandbox` (its template registry)."""
        return self.shared_waba_id or ("sandbox" if self.provider == "sandbox" else "")

    @property
    def shared_phone_number_id(self) -> str:
        return self.phone_number_id or "sandbox"

    @property
    def redis_enabled(self) -> bool:
        """Whether the Redis limiter decides (with the database as fallback)."""
        return bool(self.redis_url) or self.redis_mode == "sentinel"

    @property
    def redis_replicas_to_wait(self) -> int:
        if self.redis_wait_replicas is not None:
            return self.redis_wait_replicas
        return 0 if self.redis_mode == "standalone" else 1

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @property
    def session_database_url(self) -> str:
        """Where sessions are held: WA_DATABASE_SESSION_URL, or WA_DATABASE_URL when unset."""
        return self.database_session_url or self.database_url

    @property
    def database_pooled(self) -> bool:
        """Whether WA_DATABASE_URL goes through a transaction pooler: a session URL of its own
        says so (API.md: set only then)."""
        return self.session_database_url != self.database_url


def describe_error(error: ValidationError) -> str:
    """Turn a settings validation error into lines that name the environment variables."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        name = f"WA_{field.upper()}" if field else "configuration"
        lines.append(f"{name}: {item['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
