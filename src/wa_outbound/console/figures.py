"""The overview's figures for one organisation: per-minute series over the last hours, and
what waits now. The current totals come from monitoring.channel_health, as the API's do.

Queue depth is not recorded over time; its series is rebuilt from the messages' own times:
the depth at the end of a minute is today's depth, less the messages queued since, plus those
that left the queue since (accepted by Meta, failed, or cancelled). Replays and re-sends make
it an approximation, which the page says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import outbound_message
from wa_outbound.monitoring.channel_health import channel_health
from wa_outbound.status import CHANNEL_WHATSAPP, PENDING, Status

m = outbound_message.c
STEP = timedelta(minutes=1)
HOURS_CHOICES = (1, 3, 6, 12, 24)


@dataclass(frozen=True, slots=True)
class Overview:
    start: datetime
    now: datetime
    sent: list[int]  # accepted by Meta, per minute
    failed: list[int]
    queued: list[int]
    depth: list[int]
    totals: dict[str, Any]  # channel_health's figures
    by_status: dict[str, int]
    oldest_waiting: dict[str, Any] | None


def _minute(conn: AsyncConnection, column: Any) -> Any:
    """Whole minutes since the epoch, for grouping."""
    if is_postgres(conn):
        return sa.func.floor(sa.extract("epoch", column) / 60)
    return sa.cast(sa.func.strftime("%s", column), sa.Integer) / 60


async def _per_minute(
    conn: AsyncConnection, column: Any, *where: Any, start: datetime, buckets: int
) -> list[int]:
    minute = _minute(conn, column).label("minute")
    rows = await conn.execute(
        sa.select(minute, sa.func.count()).where(*where, column >= start).group_by(minute)
    )
    first = int(start.timestamp()) // 60
    series = [0] * buckets
    for at, count in rows:
        index = int(at) - first
        if 0 <= index < buckets:
            series[index] += int(count)
    return series


async def read(conn: AsyncConnection, *, org_id: str, now: datetime, hours: int) -> Overview:
    end = now.replace(second=0, microsecond=0) + STEP
    buckets = hours * 60
    start = end - STEP * buckets
    mine = m.org_id == org_id

    def per_minute(column: Any, *where: Any) -> Any:
        return _per_minute(conn, column, mine, *where, start=start, buckets=buckets)

    sent = await per_minute(m.accepted_at)
    failed = await per_minute(m.failed_at, m.status == Status.FAILED)
    queued = await per_minute(m.created_at)
    cancelled = await per_minute(m.updated_at, m.status == Status.CANCELLED)
    totals = (await channel_health(conn, org_id=org_id, now=now))[CHANNEL_WHATSAPP]
    rows = await conn.execute(
        sa.select(m.status, sa.func.count()).where(mine, m.status.in_(PENDING)).group_by(m.status)
    )
    by_status = {str(status): 0 for status in PENDING} | {s: int(n) for s, n in rows}
    oldest = (
        await conn.execute(
            sa.select(m.id, m.created_at, m.status, m.waiting_reason)
            .where(mine, m.status.in_(PENDING))
            .order_by(m.created_at, m.id)
            .limit(1)
        )
    ).first()
    # Walk back from today's depth: before a minute, its arrivals were not there yet and its
    # departures still were.
    depth = [0] * buckets
    current = totals["queue_depth"]
    for i in range(buckets - 1, -1, -1):
        depth[i] = max(current, 0)
        current += sent[i] + failed[i] + cancelled[i] - queued[i]
    return Overview(
        start=start,
        now=now,
        sent=sent,
        failed=failed,
        queued=queued,
        depth=depth,
        totals=totals,
        by_status=by_status,
        oldest_waiting=None if oldest is None else dict(oldest._mapping),
    )
