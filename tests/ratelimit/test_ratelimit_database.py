"""The database limiter, on SQLite and PostgreSQL: the window quota, the per-second cap, the
window reset, concurrent callers, configuration."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from helpers import make_settings
from ratelimit_helpers import db_used, end_window, new_org
from wa_outbound.db.schema import audit_event, rate_limit
from wa_outbound.errors import NotFound
from wa_outbound.metrics import Metrics
from wa_outbound.ratelimit import DatabaseLimiter, create_rate_limiter


@pytest.fixture
async def limiter(db_engine: AsyncEngine, database_url: str) -> AsyncIterator[DatabaseLimiter]:
    made = create_rate_limiter(make_settings(database_url), db_engine, Metrics())
    assert isinstance(made, DatabaseLimiter)
    yield made
    await made.close()  # gives back the connection its single-statement decisions keep


async def test_grants_until_the_quota_is_used_then_waits_for_the_window_reset(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=5, window_s=3600)
    first = await limiter.acquire(org, 3)
    assert (first.granted, first.retry_after_s, first.backend) == (3, 0.0, "database")
    second = await limiter.acquire(org, 3)
    assert second.granted == 2
    assert 3500 < second.retry_after_s <= 3600
    third = await limiter.acquire(org, 1)
    assert third.granted == 0
    assert await db_used(db_engine, org) == 5


async def test_a_new_window_starts_from_zero(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=4)
    assert (await limiter.acquire(org, 10)).granted == 4
    await end_window(db_engine, org)
    assert (await limiter.acquire(org, 10)).granted == 4


async def test_the_per_second_cap_admits_one_second_of_messages_then_holds_back(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=1000, mps=5)
    burst = await limiter.acquire(org, 8)
    assert burst.granted == 5
    assert 0 < burst.retry_after_s <= 0.2 + 1e-6


async def test_a_cap_below_one_per_second_spaces_single_messages(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=1000, mps=0.5)
    assert (await limiter.acquire(org, 1)).granted == 1
    held = await limiter.acquire(org, 1)
    assert held.granted == 0
    assert 1.0 < held.retry_after_s <= 2.0


async def test_concurrent_callers_never_grant_more_than_the_quota(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=37)
    decisions = await asyncio.gather(*(limiter.acquire(org, 3) for _ in range(20)))
    assert sum(d.granted for d in decisions) == 37
    assert await db_used(db_engine, org) == 37


async def test_asking_for_nothing_grants_nothing(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=5)
    assert (await limiter.acquire(org, 0)).granted == 0
    assert await db_used(db_engine, org) == 0


async def test_new_limits_apply_to_the_next_decision_and_are_audited(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=10)
    assert (await limiter.acquire(org, 4)).granted == 4
    body = await limiter.configure(
        org, limit=6, window_seconds=None, messages_per_second=None, actor="admin"
    )
    assert (body["limit"], body["used"], body["remaining"]) == (6, 4, 2)
    assert (await limiter.acquire(org, 5)).granted == 2
    async with db_engine.connect() as conn:
        audit = (
            await conn.execute(
                sa.select(audit_event.c.actor, audit_event.c.details).where(
                    audit_event.c.org_id == org, audit_event.c.action == "rate_limit.updated"
                )
            )
        ).one()
    assert audit.actor == "admin"
    assert audit.details["before"]["limit"] == 10
    assert audit.details["after"]["limit"] == 6


async def test_quota_reports_the_window(db_engine: AsyncEngine, limiter: DatabaseLimiter) -> None:
    org = await new_org(db_engine, quota=10, mps=80, window_s=600)
    await limiter.acquire(org, 10)
    body = await limiter.quota(org)
    assert {k: body[k] for k in ("org_id", "limit", "used", "remaining", "throttled")} == {
        "org_id": org,
        "limit": 10,
        "used": 10,
        "remaining": 0,
        "throttled": True,
    }
    assert (body["window_seconds"], body["messages_per_second"]) == (600, 80.0)
    assert body["backend"] == "database"


async def test_an_org_without_limits_gets_the_defaults(
    db_engine: AsyncEngine, limiter: DatabaseLimiter
) -> None:
    org = await new_org(db_engine, quota=3)
    async with db_engine.begin() as conn:
        await conn.execute(rate_limit.delete().where(rate_limit.c.org_id == org))
    assert (await limiter.acquire(org, 2)).granted == 2
    assert (await limiter.quota(org))["limit"] == 1000


async def test_an_unknown_org_is_not_found(limiter: DatabaseLimiter) -> None:
    with pytest.raises(NotFound):
        await limiter.acquire("no-such-org", 1)
