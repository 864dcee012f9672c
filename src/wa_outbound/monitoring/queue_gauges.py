"""The database-backed gauges: queue depth per organisation, DLQ size, oldest due message,
which senders are paused (sender_gauges.py), and the pending callback deliveries
(callback_gauges.py).

They are read by a small worker every few seconds and cached in the gauges, so a scrape of
`/metrics` never touches the database. Every replica reads the same figures: aggregate them
across replicas with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from wa_outbound.db import dlq_counts
from wa_outbound.db.schema import outbound_message
from wa_outbound.db.types import utcnow
from wa_outbound.metrics import Metrics
from wa_outbound.monitoring.callback_gauges import read_callback_pending
from wa_outbound.monitoring.sender_gauges import SenderGauge, read_paused
from wa_outbound.status import CLAIMABLE, PENDING
from wa_outbound.workers import repeat

m = outbound_message.c


@dataclass(frozen=True)
class QueueSnapshot:
    depth_by_org: dict[str, int]  # organisations with nothing waiting are absent
    dlq_size: int
    oldest_due_wait_s: float  # 0 when nothing is due


async def read_queue(conn: AsyncConnection, *, now: datetime) -> QueueSnapshot:
    """Two index-backed aggregates, (org_id, status) and the claimable index, and the DLQ's
    counters (dlq_count: a few rows, however large the DLQ)."""
    depth = await conn.execute(
        sa.select(m.org_id, sa.func.count()).where(m.status.in_(PENDING)).group_by(m.org_id)
    )
    dlq_size = await dlq_counts.total(conn)
    oldest_due = await conn.scalar(
        sa.select(sa.func.min(m.next_attempt_at)).where(
            m.status.in_(CLAIMABLE),
            m.next_attempt_at <= now,
            # A paused sender's messages wait for it, not for the dispatcher.
            sa.or_(m.waiting_reason.is_(None), m.waiting_reason != "sender_paused"),
        )
    )
    return QueueSnapshot(
        depth_by_org={org_id: int(n) for org_id, n in depth},
        dlq_size=dlq_size,
        oldest_due_wait_s=max(0.0, (now - oldest_due).total_seconds()) if oldest_due else 0.0,
    )


class QueueGauges:
    """Sets the queue gauges from the database every `interval_s` until stopped."""

    def __init__(
        self,
        engine: AsyncEngine,
        metrics: Metrics,
        *,
        interval_s: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._interval_s = interval_s
        self._clock = clock
        self._orgs: set[str] = set()
        self._senders = SenderGauge(metrics.sender_paused)
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        await repeat(
            self.run_once, every_s=self._interval_s, until=self._stopping, what="queue gauges"
        )

    async def stop(self) -> None:
        self._stopping.set()

    async def run_once(self) -> QueueSnapshot:
        async with self._engine.connect() as conn:
            snapshot = await read_queue(conn, now=self._clock())
            paused = await read_paused(conn)
            callback_pending = await read_callback_pending(conn)
        self._senders.set(paused)
        depth = self._metrics.queue_depth
        for org_id, n in snapshot.depth_by_org.items():
            depth.labels(org_id=org_id).set(n)
        # An organisation whose queue emptied loses its series rather than keep a stale value;
        # this also keeps the label set to the organisations that have something waiting.
        for org_id in self._orgs - snapshot.depth_by_org.keys():
            depth.remove(org_id)
        self._orgs = set(snapshot.depth_by_org)
        self._metrics.dlq_size.set(snapshot.dlq_size)
        self._metrics.oldest_queued_age.set(snapshot.oldest_due_wait_s)
        self._metrics.callback_pending.set(callback_pending)
        return snapshot
