"""The database side of the limiter: each org's limits (`rate_limit`) and its counter row
(`rate_limit_counter`), read and written under the caller's transaction.

`used` in the counter row counts every message granted by the database limiter plus every block
allotted to Redis (see redis_limiter.py): it is the authoritative ceiling of what may have been
sent in the window, so a Redis flush can never make the total exceed the quota."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import organization, rate_limit, rate_limit_counter
from wa_outbound.errors import NotFound


@dataclass(frozen=True, slots=True)
class Limits:
    quota_limit: int
    window_seconds: int
    messages_per_second: float
    version_ms: int = 0
    """`rate_limit.updated_at` in ms: Redis drops allotments made under older limits."""


@dataclass(frozen=True, slots=True)
class Counter:
    """An org's limits and its counter for the current window (rolled over if it ended)."""

    limits: Limits
    window_started_at: datetime
    used: int
    tat: float
    stored: bool

    @property
    def resets_at(self) -> datetime:
        return self.window_started_at + timedelta(seconds=self.limits.window_seconds)

    @property
    def remaining(self) -> int:
        return max(0, self.limits.quota_limit - self.used)


def to_ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


def _select(org_id: str) -> sa.Select[Any]:
    return (
        sa.select(
            rate_limit.c.quota_limit,
            rate_limit.c.window_seconds,
            rate_limit.c.messages_per_second,
            rate_limit.c.updated_at,
            rate_limit_counter.c.window_started_at,
            rate_limit_counter.c.used,
            rate_limit_counter.c.tat,
        )
        .select_from(rate_limit.outerjoin(rate_limit_counter))
        .where(rate_limit.c.org_id == org_id)
    )


async def read_counter(
    conn: AsyncConnection, org_id: str, *, now: datetime, defaults: Limits, lock: bool
) -> Counter:
    """The org's counter as of `now`. With `lock`, the org's `rate_limit` row stays locked until
    the caller's transaction ends, which serialises every decision for the org across replicas
    (PostgreSQL row lock; SQLite's single writer does the same)."""
    query = _select(org_id)
    if lock:
        query = query.with_for_update(of=rate_limit)
    row = (await conn.execute(query)).first()
    if row is None:
        # Every org gets a rate_limit row at creation; be defensive about older data.
        await _create_default_limits(conn, org_id, defaults, now)
        row = (await conn.execute(query)).first()
        assert row is not None
    limits = Limits(int(row[0]), int(row[1]), float(row[2]), to_ms(row[3]))
    if row[4] is None:
        return Counter(limits, now, 0, 0.0, stored=False)
    counter = Counter(limits, row[4], int(row[5]), float(row[6]), stored=True)
    if now >= counter.resets_at:
        counter = replace(counter, window_started_at=now, used=0)
    return counter


async def _create_default_limits(
    conn: AsyncConnection, org_id: str, defaults: Limits, now: datetime
) -> None:
    exists = await conn.scalar(sa.select(organization.c.id).where(organization.c.id == org_id))
    if exists is None:
        raise NotFound(f"organisation {org_id!r} not found")
    await conn.execute(
        rate_limit.insert().values(
            org_id=org_id,
            quota_limit=defaults.quota_limit,
            window_seconds=defaults.window_seconds,
            messages_per_second=defaults.messages_per_second,
            updated_at=now,
        )
    )


async def save_counter(
    conn: AsyncConnection, org_id: str, counter: Counter, *, now: datetime
) -> None:
    values = {
        "window_started_at": counter.window_started_at,
        "used": counter.used,
        "tat": counter.tat,
        "updated_at": now,
    }
    if counter.stored:
        await conn.execute(
            rate_limit_counter.update()
            .where(rate_limit_counter.c.org_id == org_id)
            .values(**values)
        )
    else:
        # No race: the caller holds the org's rate_limit row lock (or SQLite's write lock).
        await conn.execute(rate_limit_counter.insert().values(org_id=org_id, **values))


async def update_limits(
    conn: AsyncConnection, org_id: str, limits: Limits, *, now: datetime
) -> Limits:
    await conn.execute(
        rate_limit.update()
        .where(rate_limit.c.org_id == org_id)
        .values(
            quota_limit=limits.quota_limit,
            window_seconds=limits.window_seconds,
            messages_per_second=limits.messages_per_second,
            updated_at=now,
        )
    )
    return replace(limits, version_ms=to_ms(now))


def quota_body(
    org_id: str, counter: Counter, *, used: int, now: datetime, backend: str
) -> dict[str, object]:
    """The quota API's body. With no message granted yet in a window, `resets_at` is where a
    window opened now would end."""
    limits = counter.limits
    resets_at = (
        counter.resets_at if counter.stored else now + timedelta(seconds=limits.window_seconds)
    )
    remaining = max(0, limits.quota_limit - used)
    return {
        "org_id": org_id,
        "limit": limits.quota_limit,
        "used": used,
        "remaining": remaining,
        "window_seconds": limits.window_seconds,
        "resets_at": resets_at.astimezone(UTC),
        "throttled": remaining == 0,
        "messages_per_second": limits.messages_per_second,
        "backend": backend,
    }
