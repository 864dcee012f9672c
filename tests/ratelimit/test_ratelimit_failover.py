"""The Redis limiter when Redis goes away, hangs, forgets everything or comes back, on a private
`redis-server` that each test stops, pauses and flushes as it needs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import PrivateRedis, make_settings
from ratelimit_helpers import db_used, new_org
from wa_outbound.db.engine import create_engine
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import DatabaseLimiter, RedisLimiter, create_rate_limiter
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.database import default_limits


def build(
    pg_engine: AsyncEngine, url: str, redis_url: str, metrics: Metrics | None = None
) -> RedisLimiter:
    """A Redis limiter that probes a stopped Redis again after 10 ms, then 20 ms, ..."""
    settings = make_settings(url, redis_url=redis_url)
    metrics = metrics or Metrics()
    database = DatabaseLimiter(pg_engine, settings, metrics)
    return RedisLimiter(
        redis_url,
        database,
        Allotter(pg_engine, default_limits(settings)),
        metrics,
        backoff_s=(0.01, 0.05),
    )


@pytest.fixture
async def limiter(
    pg_engine: AsyncEngine, postgres_url: str, private_redis: PrivateRedis
) -> AsyncIterator[RedisLimiter]:
    limiter = build(pg_engine, postgres_url, private_redis.url)
    yield limiter
    await limiter.close()


async def flushall(url: str) -> None:
    client = Redis.from_url(url)
    try:
        await client.flushall()  # the test's private server only
    finally:
        await client.aclose()


async def test_a_redis_flush_resumes_from_the_database_count_never_from_zero(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=10, mps=7)
    assert (await limiter.acquire(org, 7)).granted == 7
    await flushall(private_redis.url)
    resumed = await limiter.acquire(org, 10)
    assert (resumed.granted, resumed.backend) == (3, "redis")
    assert await db_used(pg_engine, org) == 10


async def test_a_busy_org_loses_at_most_its_unused_block_to_a_flush(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=1000, mps=80)
    granted = sum([(await limiter.acquire(org, 1)).granted for _ in range(30)])
    assert granted == 30
    counted = await db_used(pg_engine, org)
    assert 30 <= counted <= 30 + 80
    await flushall(private_redis.url)
    after = sum([(await limiter.acquire(org, 1)).granted for _ in range(5)])
    assert after == 5
    assert granted + after + (1000 - await db_used(pg_engine, org)) <= 1000


async def test_scripts_that_redis_forgot_are_loaded_again(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=10)
    assert (await limiter.acquire(org, 2)).granted == 2
    client = Redis.from_url(private_redis.url)
    try:
        await client.script_flush()
    finally:
        await client.aclose()
    decision = await limiter.acquire(org, 2)
    assert (decision.granted, decision.backend) == (2, "redis")


async def test_a_stopped_redis_hands_decisions_to_the_database_on_the_same_quota(
    pg_engine: AsyncEngine, postgres_url: str, private_redis: PrivateRedis
) -> None:
    metrics = Metrics()
    limiter = build(pg_engine, postgres_url, private_redis.url, metrics)
    try:
        org = await new_org(pg_engine, quota=10, mps=4)
        assert (await limiter.acquire(org, 4)).granted == 4
        private_redis.stop()
        during = await limiter.acquire(org, 3)
        assert (during.granted, during.backend) == (3, "database")
        assert limiter.backend == "database"
        health = limiter.health()
        assert health["backend"] == "database"
        assert health["redis"]["status"] == "down"
        assert (
            metrics.registry.get_sample_value("outbound_ratelimit_backend", {"backend": "database"})
            == 1
        )
        assert (await limiter.quota(org))["backend"] == "database"

        private_redis.start()
        assert await limiter.probe() is True
        after = await limiter.acquire(org, 10)
        assert after.backend == "redis"
        assert 1 <= after.granted <= 3  # as many as the per-second cap lets through by now
        assert (await limiter.quota(org))["used"] == 7 + after.granted
        assert (
            metrics.registry.get_sample_value("outbound_ratelimit_backend", {"backend": "redis"})
            == 1
        )
    finally:
        await limiter.close()


async def test_a_redis_that_stops_answering_is_left_after_its_timeout(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=10, mps=2)
    assert (await limiter.acquire(org, 1)).granted == 1
    private_redis.pause()
    try:
        decision = await limiter.acquire(org, 2)
    finally:
        private_redis.resume()
    assert (decision.granted, decision.backend) == (2, "database")


async def test_redis_is_probed_in_the_background_and_decides_again_once_it_answers(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=1000)
    private_redis.stop()
    assert (await limiter.acquire(org, 1)).backend == "database"
    assert (await limiter.acquire(org, 1)).backend == "database"
    private_redis.start()
    backends = set()
    for _ in range(500):
        decision = await limiter.acquire(org, 1)
        backends.add(decision.backend)
        if decision.backend == "redis":
            break
        await asyncio.sleep(0.01)
    assert "redis" in backends
    assert limiter.health() == {"backend": "redis", "redis": {"status": "up"}}


async def test_limits_changed_while_redis_was_unreachable_apply_when_it_returns(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=100)
    for _ in range(5):
        await limiter.acquire(org, 1)
    # Paused, Redis keeps its state (allotments included) while it answers nothing.
    private_redis.pause()
    try:
        await limiter.configure(
            org, limit=6, window_seconds=None, messages_per_second=None, actor="admin"
        )
        assert limiter.backend == "database"
    finally:
        private_redis.resume()
    assert await limiter.probe() is True
    decision = await limiter.acquire(org, 10)
    assert (decision.granted, decision.backend) == (1, "redis")
    assert (await limiter.quota(org))["used"] == 6


async def test_a_replica_cut_off_from_redis_and_one_using_it_share_the_quota(
    pg_engine: AsyncEngine, postgres_url: str, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=60)
    other_engine = create_engine(make_settings(postgres_url))
    using_redis = build(pg_engine, postgres_url, private_redis.url)
    # Nothing listens on this port: the replica falls back to the database on its first call.
    cut_off = build(other_engine, postgres_url, "redis://127.0.0.1:1/0")
    try:
        decisions = await asyncio.gather(
            *(replica.acquire(org, 5) for _ in range(10) for replica in (using_redis, cut_off))
        )
        assert {d.backend for d in decisions} == {"redis", "database"}
        granted = sum(d.granted for d in decisions)
        assert granted <= 60
        rest = (await using_redis.acquire(org, 100)).granted
        rest += (await cut_off.acquire(org, 100)).granted
        assert granted + rest == 60
    finally:
        await using_redis.close()
        await cut_off.close()
        await other_engine.dispose()


async def test_without_a_redis_url_the_database_decides(
    pg_engine: AsyncEngine, postgres_url: str
) -> None:
    limiter = create_rate_limiter(make_settings(postgres_url), pg_engine, Metrics())
    assert limiter.backend == "database"
    assert limiter.health() == {"backend": "database", "redis": {"status": "disabled"}}
    await limiter.close()
