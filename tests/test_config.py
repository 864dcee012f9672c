"""Settings: defaults, parsing, and refusal of unsafe or invalid values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from wa_outbound.config import Settings, describe_error


def test_defaults_match_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./wa_outbound.db"
    assert settings.provider == "sandbox"
    assert settings.graph_api_version == "v21.0"
    assert (settings.max_attempts, settings.retry_base_seconds, settings.retry_max_seconds) == (
        5,
        2,
        900,
    )
    assert (
        settings.dispatch_batch_size,
        settings.dispatch_concurrency,
        settings.lease_seconds,
    ) == (100, 64, 60)
    assert (settings.default_daily_quota, settings.default_messages_per_second) == (1000, None)
    assert settings.pair_interval_seconds == 6
    assert settings.alert_email_recipients == []
    assert settings.log_format == "json"


def test_environment_is_read_with_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_DISPATCH_POLL_SECONDS", "0.2")
    monkeypatch.setenv("WA_ALERT_EMAIL_RECIPIENTS", "a@example.com, b@example.com")
    monkeypatch.setenv("WA_LOG_LEVEL", "debug")
    settings = Settings(_env_file=None)
    assert settings.dispatch_poll_seconds == 0.2
    assert settings.alert_email_recipients == ["a@example.com", "b@example.com"]
    assert settings.log_level == "DEBUG"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("WA_MAX_ATTEMPTS", "zero"),
        ("WA_LEASE_SECONDS", "-1"),
        ("WA_PROVIDER", "twilio"),
        ("WA_DATABASE_URL", "mysql://x"),
        ("WA_ALERT_FAILURE_RATE_THRESHOLD", "2"),
        ("WA_REDIS_MODE", "replicated"),
        ("WA_REDIS_SENTINELS", "10.0.0.1:26379,10.0.0.2"),
        ("WA_REDIS_WAIT_REPLICAS", "-1"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert variable in describe_error(info.value)


def test_cloud_without_credentials_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_PROVIDER", "cloud")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert "WA_APP_SECRET" in str(info.value)


def test_env_file_is_read(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = tmp_path / ".env"  # type: ignore[operator]
    env.write_text("WA_MAX_ATTEMPTS=7\n")
    assert Settings(_env_file=env).max_attempts == 7


def test_postgresql_needs_the_provider_said(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_DATABASE_URL", "postgresql+asyncpg://db.example/wa")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    message = describe_error(info.value)
    assert "WA_PROVIDER is not set" in message
    assert "WA_PROVIDER=sandbox" in message

    monkeypatch.setenv("WA_PROVIDER", "sandbox")
    assert Settings(_env_file=None).provider == "sandbox"


def test_the_sandbox_stays_the_default_on_sqlite() -> None:
    settings = Settings(_env_file=None, database_url="sqlite+aiosqlite:///./x.db")
    assert settings.provider == "sandbox"


def test_redis_modes_say_what_they_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WA_REDIS_MODE", "sentinel")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert "WA_REDIS_SENTINELS" in str(info.value)
    assert "WA_REDIS_SENTINEL_MASTER" in str(info.value)
    monkeypatch.setenv("WA_REDIS_SENTINELS", "10.0.0.1:26379")
    with pytest.raises(ValidationError):
        Settings(_env_file=None)  # still no master name
    monkeypatch.setenv("WA_REDIS_MODE", "cluster")
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    assert "WA_REDIS_URL" in str(info.value)


def test_redis_modes_and_the_replicas_grants_wait_for(monkeypatch: pytest.MonkeyPatch) -> None:
    standalone = Settings(_env_file=None, redis_url="redis://r:6379/0")
    assert (standalone.redis_mode, standalone.redis_replicas_to_wait) == ("standalone", 0)
    assert not Settings(_env_file=None).redis_enabled
    monkeypatch.setenv("WA_REDIS_MODE", "sentinel")
    monkeypatch.setenv("WA_REDIS_SENTINELS", " 10.0.0.1:26379, [::1]:26380 ")
    monkeypatch.setenv("WA_REDIS_SENTINEL_MASTER", "main")
    sentinel = Settings(_env_file=None)
    assert sentinel.redis_sentinels == ["10.0.0.1:26379", "[::1]:26380"]
    assert (sentinel.redis_enabled, sentinel.redis_replicas_to_wait) == (True, 1)
    monkeypatch.setenv("WA_REDIS_WAIT_REPLICAS", "0")
    assert Settings(_env_file=None).redis_replicas_to_wait == 0
