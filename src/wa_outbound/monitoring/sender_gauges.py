"""The senders' gauge: `outbound_sender_paused{sender}`, 1 while a live sender is paused and 0
while it sends, labelled with its phone_number_id (Meta's id of the number, not a phone number).
Set with the queue gauges (queue_gauges.py), from one small query."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.schema import sender

s = sender.c


async def read_paused(conn: AsyncConnection) -> dict[str, bool]:
    """Whether each live sender is paused, by phone_number_id."""
    rows = await conn.execute(
        sa.select(s.phone_number_id, s.paused_reasons).where(s.deleted_at.is_(None))
    )
    return {number: bool(reasons) for number, reasons in rows}


class SenderGauge:
    """Keeps the gauge's series to the live senders: a deleted sender's series is removed."""

    def __init__(self, gauge: Gauge) -> None:
        self._gauge = gauge
        self._numbers: set[str] = set()

    def set(self, paused: dict[str, bool]) -> None:
        for number, is_paused in paused.items():
            self._gauge.labels(sender=number).set(1 if is_paused else 0)
        for number in self._numbers - paused.keys():
            self._gauge.remove(number)
        self._numbers = set(paused)
