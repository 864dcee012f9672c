"""The dead-letter queue's size, read from `dlq_count` instead of counted.

The database's triggers on `outbound_message` (migration 0014) keep one row per (org, channel)
exact in the transaction of every change of `dead_lettered`, `org_id` or `channel`, whatever
code writes it: reading a few rows stays as fast at 5 million messages as at 10,000, however
large the DLQ grows. `recount` rebuilds the rows from the outbox, should they ever be wrong (a
restore that skipped triggers, a table rebuilt on SQLite without them).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import dlq_count, outbound_message

__all__ = ["by_channel", "recount", "total"]

c = dlq_count.c
m = outbound_message.c


async def by_channel(conn: AsyncConnection, *, org_id: str | None) -> dict[str, int]:
    """Dead-lettered messages per channel, of one organisation or (None) of all; channels with
    none are absent."""
    messages = sa.func.sum(c.messages)
    query = sa.select(c.channel, messages).group_by(c.channel).having(messages != 0)
    if org_id is not None:
        query = query.where(c.org_id == org_id)
    return {channel: int(n) for channel, n in await conn.execute(query)}


async def total(conn: AsyncConnection) -> int:
    """Dead-lettered messages of every organisation and channel."""
    return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(c.messages), 0))) or 0)


async def recount(conn: AsyncConnection) -> list[dict[str, Any]]:
    """Count the outbox's dead letters again and write them over the counters, in the caller's
    transaction; returns the (org, channel) pairs whose counter was wrong, with both figures.

    On PostgreSQL the outbox is locked in SHARE mode first: writers wait (a count over the
    dead-letter index: milliseconds to a second), and none is half-way through a change the
    count would miss. On SQLite the first write takes the database's write lock."""
    if is_postgres(conn):
        await conn.execute(sa.text("LOCK TABLE outbound_message IN SHARE MODE"))
    deleted = await conn.execute(dlq_count.delete().returning(c.org_id, c.channel, c.messages))
    before = {(org, channel): int(n) for org, channel, n in deleted}
    counted = (
        sa.select(m.org_id, m.channel, sa.func.count())
        .where(m.dead_lettered.is_(True))
        .group_by(m.org_id, m.channel)
        .order_by(m.org_id, m.channel)
    )
    after = {(org, channel): int(n) for org, channel, n in await conn.execute(counted)}
    if after:
        await conn.execute(
            dlq_count.insert(),
            [{"org_id": o, "channel": ch, "messages": n} for (o, ch), n in after.items()],
        )
    wrong = []
    for org, channel in sorted(before.keys() | after.keys()):
        counter, counted_now = before.get((org, channel), 0), after.get((org, channel), 0)
        if counter != counted_now:
            wrong.append(
                {"org_id": org, "channel": channel, "counter": counter, "counted": counted_now}
            )
    return wrong
