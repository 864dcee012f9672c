"""The Redis limiter on the machine's Redis and PostgreSQL: the Lua script's semantics, the
write-ahead to the database, changes of limits, and two replicas sharing one quota."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import make_settings
from ratelimit_helpers import db_used, end_window, forget, new_org
from wa_outbound.db.engine import create_engine
from wa_outbound.db.schema import rate_limit, rate_limit_counter
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import RedisLimiter, create_rate_limiter
from wa_outbound.ratelimit.scripts import keys

MakeOrg = Callable[..., Awaitable[str]]


@pytest.fixture
async def make_org(pg_engine: AsyncEngine, redis_url: str) -> AsyncIterator[MakeOrg]:
    made: list[str] = []

    async def make(**limits: float) -> str:
        org_id = await new_org(pg_engine, **limits)  # type: ignore[arg-type]
        made.append(org_id)
        return org_id

    yield make
    await forget(redis_url, *made)


def redis_limiter(pg_engine: AsyncEngine, database_url: str, redis_url: str) -> RedisLimiter:
    settings = make_settings(database_url, redis_url=redis_url)
    limiter = create_rate_limiter(settings, pg_engine, Metrics())
    assert isinstance(limiter, RedisLimiter)
    return limiter


@pytest.fixture
async def limiter(
    pg_engine: AsyncEngine, postgres_url: str, redis_url: str
) -> AsyncIterator[RedisLimiter]:
    limiter = redis_limiter(pg_engine, postgres_url, redis_url)
    yield limiter
    await limiter.close()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def drain(limiter: RedisLimiter, org: str) -> int:
    """Everything still grantable in the window (the quota's remainder)."""
    total = 0
    while (decision := await limiter.acquire(org, 1000)).granted:
        total += decision.granted
    return total


async def test_grants_until_the_quota_is_used_then_waits_for_the_window_reset(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=5, window_s=3600)
    first = await limiter.acquire(org, 3)
    assert (first.granted, first.retry_after_s, first.backend) == (3, 0.0, "redis")
    second = await limiter.acquire(org, 3)
    assert second.granted == 2
    assert 3500 < second.retry_after_s <= 3600
    third = await limiter.acquire(org, 1)
    assert (third.granted, third.backend) == (0, "redis")
    assert 3500 < third.retry_after_s <= 3600


async def test_a_new_window_starts_from_zero(
    limiter: RedisLimiter, make_org: MakeOrg, pg_engine: AsyncEngine, redis: Redis
) -> None:
    org = await make_org(quota=4)
    assert (await limiter.acquire(org, 10)).granted == 4
    await end_window(pg_engine, org, redis)
    assert (await limiter.acquire(org, 10)).granted == 4


async def test_the_per_second_cap_admits_one_second_of_messages_then_holds_back(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=1000, mps=5)
    burst = await limiter.acquire(org, 8)
    assert burst.granted == 5
    assert 0 < burst.retry_after_s <= 0.2 + 1e-6


async def test_a_cap_below_one_per_second_spaces_single_messages(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=1000, mps=0.5)
    assert (await limiter.acquire(org, 1)).granted == 1
    held = await limiter.acquire(org, 1)
    assert held.granted == 0
    assert 1.0 < held.retry_after_s <= 2.0 + 1e-6


async def test_concurrent_callers_from_many_tasks_never_grant_more_than_the_quota(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=37)
    decisions = await asyncio.gather(*(limiter.acquire(org, 3) for _ in range(20)))
    granted = sum(d.granted for d in decisions)
    assert granted <= 37
    assert granted + await drain(limiter, org) == 37


async def test_every_grant_is_counted_in_the_database_before_it_is_made(
    limiter: RedisLimiter, make_org: MakeOrg, pg_engine: AsyncEngine, redis: Redis
) -> None:
    org = await make_org(quota=100, mps=10)
    assert (await limiter.acquire(org, 10)).granted == 10
    assert await db_used(pg_engine, org) == 10
    await end_window(pg_engine, org, redis)
    for _ in range(5):
        assert (await limiter.acquire(org, 1)).granted == 1
    # Redis gets a second of the cap at a time: the database may count more, never fewer.
    assert await db_used(pg_engine, org) == 10
    assert (await limiter.quota(org))["used"] == 5


async def test_a_lower_quota_applies_to_the_next_decision(
    limiter: RedisLimiter, make_org: MakeOrg, pg_engine: AsyncEngine
) -> None:
    org = await make_org(quota=100)
    for _ in range(10):
        await limiter.acquire(org, 1)
    body = await limiter.configure(
        org, limit=12, window_seconds=None, messages_per_second=None, actor="admin"
    )
    assert (body["used"], body["remaining"], body["backend"]) == (10, 2, "redis")
    assert await db_used(pg_engine, org) == 10
    assert (await limiter.acquire(org, 10)).granted == 2


async def test_a_raised_quota_lifts_the_throttle_at_once(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=3)
    assert (await limiter.acquire(org, 5)).granted == 3
    assert (await limiter.quota(org))["throttled"] is True
    await limiter.configure(
        org, limit=6, window_seconds=None, messages_per_second=None, actor="admin"
    )
    assert (await limiter.acquire(org, 5)).granted == 3


async def test_a_new_per_second_cap_applies_to_the_next_decision(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=1000)
    assert (await limiter.acquire(org, 50)).granted == 50
    await limiter.configure(
        org, limit=None, window_seconds=None, messages_per_second=2, actor="admin"
    )
    assert (await limiter.acquire(org, 50)).granted == 2


async def test_quota_reports_what_was_granted_through_redis(
    limiter: RedisLimiter, make_org: MakeOrg
) -> None:
    org = await make_org(quota=10, mps=80, window_s=600)
    await limiter.acquire(org, 4)
    body = await limiter.quota(org)
    assert {k: body[k] for k in ("limit", "used", "remaining", "throttled", "backend")} == {
        "limit": 10,
        "used": 4,
        "remaining": 6,
        "throttled": False,
        "backend": "redis",
    }


async def test_two_replicas_on_one_database_and_one_redis_never_grant_more_than_the_quota(
    pg_engine: AsyncEngine, postgres_url: str, redis_url: str, make_org: MakeOrg
) -> None:
    org = await make_org(quota=50)
    other_engine = create_engine(make_settings(postgres_url))
    first = redis_limiter(pg_engine, postgres_url, redis_url)
    second = redis_limiter(other_engine, postgres_url, redis_url)
    try:
        decisions = await asyncio.gather(
            *(replica.acquire(org, 4) for replica in (first, second) for _ in range(10))
        )
        granted = sum(d.granted for d in decisions)
        assert granted <= 50
        assert granted + await drain(first, org) + await drain(second, org) == 50
    finally:
        await first.close()
        await second.close()
        await other_engine.dispose()


async def test_decisions_are_counted_in_the_metrics(
    pg_engine: AsyncEngine, postgres_url: str, redis_url: str, make_org: MakeOrg
) -> None:
    metrics = Metrics()
    limiter = create_rate_limiter(
        make_settings(postgres_url, redis_url=redis_url), pg_engine, metrics
    )
    try:
        org = await make_org(quota=3)
        await limiter.acquire(org, 2)
        await limiter.acquire(org, 2)
        await limiter.acquire(org, 2)
    finally:
        await limiter.close()

    def sample(name: str, **labels: str) -> float | None:
        return metrics.registry.get_sample_value(name, labels)

    decisions = "outbound_ratelimit_decisions_total"
    assert sample(decisions, backend="redis", result="granted") == 1
    assert sample(decisions, backend="redis", result="partial") == 1
    assert sample(decisions, backend="redis", result="denied") == 1
    assert sample("outbound_ratelimit_backend", backend="redis") == 1
    assert sample("outbound_ratelimit_backend", backend="database") == 0


async def test_health_says_redis_decides(limiter: RedisLimiter) -> None:
    assert limiter.health() == {"backend": "redis", "redis": {"status": "up"}}


async def test_limits_changed_behind_redis_are_read_again_within_a_minute(
    limiter: RedisLimiter, make_org: MakeOrg, pg_engine: AsyncEngine, redis: Redis
) -> None:
    org = await make_org(quota=1000)
    assert (await limiter.acquire(org, 50)).granted == 50
    # As a replica that could not reach Redis would have left it: new limits in the database only.
    async with pg_engine.begin() as conn:
        await conn.execute(
            rate_limit.update().where(rate_limit.c.org_id == org).values(messages_per_second=3)
        )
    assert (await limiter.acquire(org, 50)).granted == 50
    await redis.hset(keys(org)[0], "checked", 0)  # a minute later
    assert (await limiter.acquire(org, 50)).granted == 3


async def test_a_shorter_window_that_has_already_ended_starts_a_new_one(
    limiter: RedisLimiter, make_org: MakeOrg, pg_engine: AsyncEngine
) -> None:
    org = await make_org(quota=5, window_s=3600)
    assert (await limiter.acquire(org, 5)).granted == 5
    async with pg_engine.begin() as conn:  # the window opened two minutes ago
        await conn.execute(
            rate_limit_counter.update()
            .where(rate_limit_counter.c.org_id == org)
            .values(window_started_at=utcnow() - timedelta(seconds=120))
        )
    body = await limiter.configure(
        org, limit=None, window_seconds=60, messages_per_second=None, actor="admin"
    )
    assert (body["used"], body["window_seconds"]) == (0, 60)
    assert (await limiter.acquire(org, 5)).granted == 5
    assert (await limiter.acquire(org, 1)).granted == 0
