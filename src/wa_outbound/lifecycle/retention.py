"""Retention: deleting what is older than `WA_RETENTION_DAYS`, one short batch at a time.

Each batch is one transaction that chooses at most `limit` rows with `FOR UPDATE SKIP LOCKED`
(PostgreSQL) and deletes them with what hangs off them, so it holds its locks for a few
milliseconds and never waits on a row another transaction holds: a message a webhook is
updating right now is simply left for the next round. What each batch deletes:

- finished messages (not QUEUED, SENDING or RETRYING) last changed before the cutoff, with their
  timeline (`message_event`), their extra wamids (`message_wamid`), their callback events and
  those events' deliveries, whatever their state;
- callback events that happened before the cutoff and have no delivery left pending (a
  disabled endpoint's deliveries wait for it), with their finished deliveries;
- webhook bodies received before the cutoff and processed (an unprocessed body is still the
  sweep's to retry).

A deleted message's `Idempotency-Key` is free again: its row, and so its unique key, is gone.

On PostgreSQL each batch is one statement (`retention_pg`); the code here is SQLite's, and the
reference for what a batch does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.callback_schema import callback_delivery, callback_event
from wa_outbound.db.dialect import is_postgres
from wa_outbound.db.schema import message_event, message_wamid, outbound_message, webhook_event
from wa_outbound.lifecycle import retention_pg
from wa_outbound.status import PENDING

m = outbound_message.c
e = callback_event.c
d = callback_delivery.c
w = webhook_event.c


async def delete_messages(conn: AsyncConnection, *, before: datetime, limit: int) -> Counter[str]:
    """One batch of finished messages last changed before `before`, with their rows elsewhere;
    how many rows of each table went."""
    if is_postgres(conn):
        return await retention_pg.delete_messages(conn, before=before, limit=limit)
    chosen = (
        sa.select(m.id)
        .where(m.status.not_in(PENDING), m.updated_at < before)
        .order_by(m.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids = list((await conn.execute(chosen)).scalars())
    deleted: Counter[str] = Counter()
    if not ids:
        return deleted
    events = sa.select(e.seq).where(_among(conn, e.message_id, ids)).scalar_subquery()
    deleted["callback_delivery"] = await _count(
        conn, callback_delivery.delete().where(d.event_seq.in_(events))
    )
    deleted["callback_event"] = await _count(
        conn, callback_event.delete().where(_among(conn, e.message_id, ids))
    )
    deleted["message_event"] = await _count(
        conn, message_event.delete().where(_among(conn, message_event.c.message_id, ids))
    )
    deleted["message_wamid"] = await _count(
        conn, message_wamid.delete().where(_among(conn, message_wamid.c.message_id, ids))
    )
    deleted["outbound_message"] = await _count(
        conn, outbound_message.delete().where(_among(conn, m.id, ids))
    )
    return deleted


async def delete_callback_events(
    conn: AsyncConnection, *, before: datetime, limit: int
) -> Counter[str]:
    """One batch of callback events from before `before` with no delivery pending (those of
    messages still kept too: nothing reads an event once its deliveries are done)."""
    if is_postgres(conn):
        return await retention_pg.delete_callback_events(conn, before=before, limit=limit)
    pending = sa.exists().where(d.event_seq == e.seq, d.status == "pending")
    chosen = (
        sa.select(e.seq)
        .where(e.occurred_at < before, ~pending)
        .order_by(e.occurred_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    seqs = list((await conn.execute(chosen)).scalars())
    deleted: Counter[str] = Counter()
    if not seqs:
        return deleted
    deleted["callback_delivery"] = await _count(
        conn, callback_delivery.delete().where(_among(conn, d.event_seq, seqs))
    )
    deleted["callback_event"] = await _count(
        conn, callback_event.delete().where(_among(conn, e.seq, seqs))
    )
    return deleted


async def delete_webhook_bodies(
    conn: AsyncConnection, *, before: datetime, limit: int
) -> Counter[str]:
    """One batch of processed webhook bodies received before `before`."""
    if is_postgres(conn):
        return await retention_pg.delete_webhook_bodies(conn, before=before, limit=limit)
    chosen = (
        sa.select(w.id)
        .where(w.processed_at.is_not(None), w.received_at < before)
        .order_by(w.received_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    ids: Sequence[int] = list((await conn.execute(chosen)).scalars())
    deleted: Counter[str] = Counter()
    if ids:
        deleted["webhook_event"] = await _count(
            conn, webhook_event.delete().where(_among(conn, w.id, ids))
        )
    return deleted


def _among(conn: AsyncConnection, column: Any, values: Sequence[Any]) -> Any:
    """`column IN values`; on PostgreSQL one array parameter (`= ANY`), which costs a batch of
    a thousand ids one bind instead of a thousand."""
    if is_postgres(conn):
        array = ARRAY(column.type)
        return column == sa.any_(sa.bindparam(None, list(values), type_=array))
    return column.in_(values)


async def _count(conn: AsyncConnection, statement: Any) -> int:
    result = await conn.execute(statement)
    return max(result.rowcount, 0)


# The batches, in the order a round runs them (messages first, so their events go with them),
# each with the table whose rows it chooses: fewer of those than the limit, and it is done.
BATCHES = (
    ("outbound_message", delete_messages),
    ("callback_event", delete_callback_events),
    ("webhook_event", delete_webhook_bodies),
)
