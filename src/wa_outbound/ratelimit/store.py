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

from wa_outbound.db import dialect
from wa_outbound.db.schema import organization, rate_limit, rate_limit_counter
from wa_outbound.errors import NotFound


@dataclass(frozen=True, slots=True)
class Limits:
    quota_limit: int
    window_seconds: int
    messages_per_second: float | None
    """None: no per-second cap of the org's own."""
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


def optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def to_ms(at: datetime) -> int:
    return round(at.timestamp() * 1000)


_COLUMNS = (
    rate_limit.c.quota_limit,
    rate_limit.c.window_seconds,
    rate_limit.c.messages_per_second,
    rate_limit.c.updated_at,
    rate_limit_counter.c.window_started_at,
    rate_limit_counter.c.used,
    rate_limit_counter.c.tat,
)
_ON_ORG = rate_limit_counter.c.org_id == rate_limit.c.org_id

# PostgreSQL: this transaction's commit returns before its WAL reaches the disk. Waiting for the
# flush would cost a decision more than all its work, and the count cannot be lost while it
# matters: the dispatcher sends what was granted and then records the outcome in a synchronous
# commit, which flushes the WAL up to and including this one. A crash in between loses the
# count together with the outcome; those messages are sent and counted again, as any send whose
# outcome was not recorded is (delivery is at-least-once).
RELAXED_COMMIT = sa.func.set_config("synchronous_commit", "off", True)


async def read_counter(
    conn: AsyncConnection,
    org_id: str,
    *,
    now: datetime,
    defaults: Limits,
    lock: bool,
    relaxed: bool = False,
) -> Counter:
    """The org's counter as of `now`. With `lock`, both of the org's rows stay locked until the
    caller's transaction ends, which serialises every decision and change for the org across
    replicas (PostgreSQL row locks; SQLite's single writer does the same). With `relaxed`, the
    transaction's commit does not wait for the disk (see `RELAXED_COMMIT`)."""
    if not lock:
        query = (
            sa.select(*_COLUMNS)
            .select_from(rate_limit.outerjoin(rate_limit_counter, _ON_ORG))
            .where(rate_limit.c.org_id == org_id)
        )
        row = (await conn.execute(query)).first()
        if row is None:
            await _require_org(conn, org_id)
            return Counter(defaults, now, 0, 0.0, stored=False)
    else:
        # An inner join locks both rows; a waiter then re-reads both at their latest versions.
        columns: tuple[sa.ColumnElement[Any], ...] = _COLUMNS
        if relaxed and dialect.is_postgres(conn):
            columns = (*columns, RELAXED_COMMIT)  # saves a round trip of its own
        query = (
            sa.select(*columns)
            .select_from(rate_limit_counter.join(rate_limit, _ON_ORG))
            .where(rate_limit_counter.c.org_id == org_id)
            .with_for_update()
        )
        row = (await conn.execute(query)).first()
        if row is None:
            await _create_rows(conn, org_id, defaults, now)
            row = (await conn.execute(query)).one()
    limits = Limits(int(row[0]), int(row[1]), optional_float(row[2]), to_ms(row[3]))
    if row[4] is None:
        return Counter(limits, now, 0, 0.0, stored=False)
    counter = Counter(limits, row[4], int(row[5]), float(row[6]), stored=True)
    if now >= counter.resets_at:
        counter = replace(counter, window_started_at=now, used=0)
    return counter


async def _require_org(conn: AsyncConnection, org_id: str) -> None:
    exists = await conn.scalar(sa.select(organization.c.id).where(organization.c.id == org_id))
    if exists is None:
        raise NotFound(f"organisation {org_id!r} not found")


async def _create_rows(conn: AsyncConnection, org_id: str, defaults: Limits, now: datetime) -> None:
    """The org's first decision: its counter row, and its limits if it somehow has none."""
    has_limits = await conn.scalar(
        sa.select(rate_limit.c.org_id).where(rate_limit.c.org_id == org_id)
    )
    if has_limits is None:
        await _require_org(conn, org_id)
        await conn.execute(
            dialect.insert(conn, rate_limit)
            .values(
                org_id=org_id,
                quota_limit=defaults.quota_limit,
                window_seconds=defaults.window_seconds,
                messages_per_second=defaults.messages_per_second,
                updated_at=now,
            )
            .on_conflict_do_nothing()
        )
    await conn.execute(
        dialect.insert(conn, rate_limit_counter)
        .values(org_id=org_id, window_started_at=now, used=0, tat=0.0, updated_at=now)
        .on_conflict_do_nothing()
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
    await conn.execute(
        rate_limit_counter.update().where(rate_limit_counter.c.org_id == org_id).values(**values)
    )


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
