"""The database limiter's single-statement decision on PostgreSQL keeps a connection of its own:
given back on close, replaced when it is lost or a decision on it is cancelled, and never
shared by two decisions at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from conftest import _dsn
from helpers import make_settings
from ratelimit_helpers import db_used, new_org
from wa_outbound.errors import Unavailable
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import DatabaseLimiter, create_rate_limiter


@pytest.fixture
async def limiter(pg_engine: AsyncEngine, postgres_url: str) -> AsyncIterator[DatabaseLimiter]:
    made = create_rate_limiter(make_settings(postgres_url), pg_engine, Metrics())
    assert isinstance(made, DatabaseLimiter)
    yield made
    await made.close()


async def terminate_app_sessions(postgres_url: str) -> int:
    """What a server restart does to the app's connections: each one is closed under it."""
    admin = await asyncpg.connect(_dsn(postgres_url), timeout=5)
    try:
        rows = await admin.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return len(rows)


async def test_one_callers_decisions_keep_one_connection_given_back_on_close(
    pg_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(pg_engine, quota=100)
    await limiter.acquire(org, 1)  # the first decision creates the counter (transaction)
    for _ in range(5):
        assert (await limiter.acquire(org, 1)).granted == 1
    assert pg_engine.pool.checkedout() == 1  # type: ignore[attr-defined]
    await limiter.close()
    assert pg_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert (await limiter.acquire(org, 1)).granted == 1  # after close: on pooled connections
    assert pg_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert await db_used(pg_engine, org) == 7


async def test_concurrent_decisions_use_pooled_connections_beside_the_kept_one(
    pg_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(pg_engine, quota=12)
    await limiter.acquire(org, 1)
    granted = await asyncio.gather(*(limiter.acquire(org, 2) for _ in range(8)))
    assert sum(d.granted for d in granted) == 11  # never more than the quota
    assert await db_used(pg_engine, org) == 12
    assert pg_engine.pool.checkedout() == 1  # type: ignore[attr-defined]


async def test_a_lost_connection_fails_one_decision_then_a_new_one_is_taken(
    pg_engine: AsyncEngine, limiter: DatabaseLimiter, postgres_url: str
) -> None:
    org = await new_org(pg_engine, quota=100)
    await limiter.acquire(org, 1)
    assert (await limiter.acquire(org, 1)).granted == 1
    assert await terminate_app_sessions(postgres_url) >= 1
    with pytest.raises(Unavailable):
        await limiter.acquire(org, 1)
    assert (await limiter.acquire(org, 1)).granted == 1
    assert await db_used(pg_engine, org) == 3


async def test_a_cancelled_decision_gives_its_connection_back(
    pg_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(pg_engine, quota=100)
    await limiter.acquire(org, 1)
    assert (await limiter.acquire(org, 1)).granted == 1
    cancelled = asyncio.create_task(limiter.acquire(org, 1))
    await asyncio.sleep(0)  # the decision is on the kept connection, awaiting its answer
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert pg_engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    assert (await limiter.acquire(org, 1)).granted == 1
    used = await db_used(pg_engine, org)
    assert used in (3, 4)  # the cancelled statement may have committed before it was cancelled
