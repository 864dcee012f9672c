"""The callback outbox's gauge: how many deliveries are pending (read with the queue gauges)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_delivery


async def read_callback_pending(conn: AsyncConnection) -> int:
    """Pending deliveries, due or not, of enabled and disabled endpoints alike (the partial
    index ix_callback_delivery_due holds exactly these rows)."""
    query = (
        sa.select(sa.func.count())
        .select_from(callback_delivery)
        .where(callback_delivery.c.status == "pending")
    )
    return int(await conn.scalar(query) or 0)
