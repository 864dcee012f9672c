"""Sender limits when Redis stops: the database decides the same limits at once, from the same
quota and the same reached recipients (both authoritative in the database)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import PrivateRedis, make_settings
from ratelimit_helpers import new_org
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import DatabaseLimiter, RedisLimiter
from wa_outbound.ratelimit.allotment import Allotter
from wa_outbound.ratelimit.database import default_limits
from wa_outbound.ratelimit.senders import Candidate, SenderGroup, Verdict


@pytest.fixture
async def limiter(
    pg_engine: AsyncEngine, postgres_url: str, private_redis: PrivateRedis
) -> AsyncIterator[RedisLimiter]:
    settings = make_settings(postgres_url, redis_url=private_redis.url, pair_interval_seconds=60)
    metrics = Metrics()
    database = DatabaseLimiter(pg_engine, settings, metrics)
    limiter = RedisLimiter(
        private_redis.url,
        database,
        Allotter(pg_engine, default_limits(settings)),
        metrics,
        backoff_s=(0.01, 0.05),
    )
    yield limiter
    await limiter.close()


def ask(
    sender: uuid.UUID, org: str, phones: list[str], *, waba: str, mps: float = 1000
) -> SenderGroup:
    now = utcnow()
    rows = [
        Candidate(uuid.uuid4(), org, phone, now + timedelta(microseconds=i), True)
        for i, phone in enumerate(phones)
    ]
    return SenderGroup(sender, org, mps, waba_id=waba, cap=3, rows=rows)


def backend(limiter: RedisLimiter) -> str:
    """Which backend decides now (read afresh: it changes under the test)."""
    return limiter.backend


def reasons(group: SenderGroup, verdicts: Mapping[uuid.UUID, Verdict]) -> list[str | None]:
    return [verdicts[row.id].reason for row in group.rows]


async def test_a_stopped_redis_hands_every_sender_limit_to_the_database(
    limiter: RedisLimiter, pg_engine: AsyncEngine, private_redis: PrivateRedis
) -> None:
    org = await new_org(pg_engine, quota=1000, mps=100)
    sender, waba = uuid.uuid4(), f"waba-{uuid.uuid4().hex[:8]}"
    before = ask(sender, org, ["+33600000001", "+33600000002"], waba=waba)
    assert reasons(before, await limiter.admit(before)) == [None, None]
    assert backend(limiter) == "redis"

    private_redis.stop()
    # The two recipients Redis granted are the database's too.
    phones = ["+33600000001", "+33600000003", "+33600000004", "+33600000005", "+33600000003"]
    during = ask(sender, org, phones, waba=waba)
    verdicts = await limiter.admit(during)
    assert backend(limiter) == "database"
    assert reasons(during, verdicts) == [
        None,  # reached already: costs nothing more
        None,  # the third recipient of a cap of 3
        "messaging_limit",
        "messaging_limit",
        "pair_interval",
    ]

    now = utcnow()
    rows = [
        Candidate(uuid.uuid4(), org, f"+3360100{i:04d}", now + timedelta(microseconds=i))
        for i in range(8)
    ]
    paced = SenderGroup(uuid.uuid4(), org, 2, rows=rows)
    assert reasons(paced, await limiter.admit(paced)) == [None, None] + ["throughput"] * 6

    private_redis.start()
    assert await limiter.probe() is True
    back = ask(sender, org, ["+33600000006", "+33600000002"], waba=waba)
    # Redis reloads the reached recipients the database granted meanwhile.
    assert reasons(back, await limiter.admit(back)) == ["messaging_limit", None]
    assert backend(limiter) == "redis"
