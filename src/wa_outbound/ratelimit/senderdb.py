"""The database side of the per-sender limits: the state `plan.decide` reads and writes, under
the caller's transaction.

The sender's `sender_throughput` row is locked first and serialises every database decision
for that sender across replicas; the WABA's row is locked next when its messaging limit is
asked, since the WABA's senders share it. `waba_reach` is the authoritative record of the
recipients each WABA reached (the Redis limiter writes its grants here too)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import dialect
from wa_outbound.db.schema import pair_slot, sender_throughput, waba, waba_reach
from wa_outbound.ratelimit.plan import Plan, SenderState
from wa_outbound.ratelimit.senders import DAY_S, SenderGroup

t = sender_throughput.c
p = pair_slot.c
r = waba_reach.c


async def read_state(conn: AsyncConnection, group: SenderGroup, now: datetime) -> SenderState:
    """Lock the sender (and, when its messaging limit is asked, its WABA) and read its state."""
    await conn.execute(
        dialect.insert(conn, sender_throughput)
        .values(sender_id=group.sender_id, buckets={}, updated_at=now)
        .on_conflict_do_nothing()
    )
    buckets = await conn.scalar(
        sa.select(t.buckets).where(t.sender_id == group.sender_id).with_for_update()
    )
    state = SenderState(buckets={int(k): int(v) for k, v in (buckets or {}).items()})
    phones = list({row.to for row in group.rows})
    for phone, next_at in await conn.execute(
        sa.select(p.phone, p.next_at).where(p.sender_id == group.sender_id, p.phone.in_(phones))
    ):
        state.pair_next[phone] = next_at.timestamp()
    reaching = [row.to for row in group.rows if row.reaches]
    if group.cap is not None and group.waba_id and reaching:
        await conn.execute(
            sa.select(waba.c.waba_id).where(waba.c.waba_id == group.waba_id).with_for_update()
        )
        since = now - timedelta(seconds=DAY_S)
        in_day = sa.and_(r.waba_id == group.waba_id, r.reached_at > since)
        count, oldest = (
            await conn.execute(sa.select(sa.func.count(), sa.func.min(r.reached_at)).where(in_day))
        ).one()
        state.reached_count = int(count)
        state.oldest_reach = _seconds(oldest)
        state.reached = set(
            await conn.scalars(sa.select(r.phone).where(in_day, r.phone.in_(set(reaching))))
        )
    return state


async def write_plan(conn: AsyncConnection, group: SenderGroup, plan: Plan, now: datetime) -> None:
    """Store what the decision consumed (the throughput row even when nothing was granted:
    its old buckets are dropped)."""
    await conn.execute(
        sender_throughput.update()
        .where(t.sender_id == group.sender_id)
        .values(buckets={str(k): v for k, v in plan.buckets.items()}, updated_at=now)
    )
    if plan.pair_next:
        await upsert_pairs(conn, group.sender_id, plan.pair_next)
    if plan.reached and group.waba_id:
        await record_reached(conn, group.waba_id, plan.reached, now)


async def upsert_pairs(
    conn: AsyncConnection, sender_id: uuid.UUID, pair_next: dict[str, float]
) -> None:
    stmt = dialect.insert(conn, pair_slot)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[p.sender_id, p.phone], set_={"next_at": stmt.excluded.next_at}
        ),
        [
            {"sender_id": sender_id, "phone": phone, "next_at": datetime.fromtimestamp(at, UTC)}
            for phone, at in pair_next.items()
        ],
    )


async def record_reached(
    conn: AsyncConnection, waba_id: str, phones: Iterable[str], now: datetime
) -> None:
    """These recipients were reached now (again: their 24 hours start over)."""
    values = [{"waba_id": waba_id, "phone": phone, "reached_at": now} for phone in phones]
    if not values:
        return
    stmt = dialect.insert(conn, waba_reach)
    await conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[r.waba_id, r.phone], set_={"reached_at": stmt.excluded.reached_at}
        ),
        values,
    )


async def reached_since(
    conn: AsyncConnection, waba_id: str, now: datetime
) -> list[tuple[str, float]]:
    """(recipient, when reached) of the WABA's last 24 hours: what Redis's cache is seeded from."""
    since = now - timedelta(seconds=DAY_S)
    rows = await conn.execute(
        sa.select(r.phone, r.reached_at).where(r.waba_id == waba_id, r.reached_at > since)
    )
    return [(phone, at.timestamp()) for phone, at in rows]


async def prune(conn: AsyncConnection, now: datetime) -> None:
    """Drop pair slots long past and reaches older than 24 hours."""
    await conn.execute(pair_slot.delete().where(p.next_at < now - timedelta(minutes=10)))
    await conn.execute(waba_reach.delete().where(r.reached_at < now - timedelta(seconds=DAY_S)))


def _seconds(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None
