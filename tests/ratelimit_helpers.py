"""Builders for the rate-limiter tests: orgs with given limits, the end of a window, counters."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from wa_outbound.db.schema import rate_limit, rate_limit_counter
from wa_outbound.orgs import organizations
from wa_outbound.ratelimit.scripts import keys


async def new_org(
    engine: AsyncEngine, *, quota: int, mps: float = 1_000_000.0, window_s: int = 86_400
) -> str:
    """A fresh org (unique id, so tests sharing the machine's Redis never meet)."""
    org_id = f"rl_{uuid.uuid4().hex[:16]}"
    async with engine.begin() as conn:
        await organizations.create_org(
            conn,
            name="Limited",
            org_id=org_id,
            daily_quota=quota,
            messages_per_second=mps,
            actor="test",
        )
        await conn.execute(
            rate_limit.update().where(rate_limit.c.org_id == org_id).values(window_seconds=window_s)
        )
    return org_id


async def end_window(engine: AsyncEngine, org_id: str, redis: Redis | None = None) -> None:
    """Make the org's current window end now: its start moves back by the window's length in
    the database, and its Redis keys with a TTL of the window expire."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(
                sa.select(rate_limit.c.window_seconds, rate_limit_counter.c.window_started_at)
                .select_from(
                    rate_limit.join(
                        rate_limit_counter, rate_limit_counter.c.org_id == rate_limit.c.org_id
                    )
                )
                .where(rate_limit.c.org_id == org_id)
            )
        ).one()
        await conn.execute(
            rate_limit_counter.update()
            .where(rate_limit_counter.c.org_id == org_id)
            .values(window_started_at=row[1] - timedelta(seconds=row[0] + 1))
        )
    if redis is not None:
        counter, _, throttle = keys(org_id)
        await redis.delete(counter, throttle)


async def db_used(engine: AsyncEngine, org_id: str) -> int:
    async with engine.connect() as conn:
        used = await conn.scalar(
            sa.select(rate_limit_counter.c.used).where(rate_limit_counter.c.org_id == org_id)
        )
    return int(used or 0)


async def forget(redis_url: str, *org_ids: str) -> None:
    """Delete the orgs' keys from a shared Redis (never FLUSHDB: others use it too)."""
    client = Redis.from_url(redis_url)
    try:
        for org_id in org_ids:
            await client.delete(*keys(org_id))
    finally:
        await client.aclose()
