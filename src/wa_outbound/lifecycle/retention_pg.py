"""Retention's batches on PostgreSQL: one statement each (`retention` runs them; SQLite takes
the portable path there).

Each statement chooses its rows in a CTE, oldest first through the batches' partial indexes,
`LIMIT` and `FOR UPDATE SKIP LOCKED`, then deletes what hangs off them and the rows themselves
in the same statement: one round trip per batch, no list of ids through the client. The chosen
rows are deleted by `ctid` (a TID scan, no second walk of the primary key): they are locked
from the moment they are chosen, so their `ctid` cannot change before the delete. The rows
hanging off them are deleted by key (the children are not locked: a concurrent update of one
moves it). The foreign keys (`message_wamid` → `outbound_message`, `callback_delivery` →
`callback_event`) are `NO ACTION`: checked at the statement's end, when the children are gone.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db.types import UTCDateTime
from wa_outbound.status import PENDING

# Literal statuses (constants, not input): the partial index's predicate is proved at planning
# whatever plan the prepared statement ends with.
_PENDING = ", ".join(f"'{status.value}'" for status in PENDING)

_MESSAGES = sa.text(
    f"""
    WITH chosen AS MATERIALIZED (
        SELECT id, ctid FROM outbound_message
        WHERE status NOT IN ({_PENDING}) AND updated_at < :before
        ORDER BY updated_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), events AS MATERIALIZED (
        SELECT seq FROM callback_event WHERE message_id = ANY(ARRAY(SELECT id FROM chosen))
    ), deliveries AS (
        DELETE FROM callback_delivery WHERE event_seq = ANY(ARRAY(SELECT seq FROM events))
        RETURNING 1
    ), callback_events AS (
        DELETE FROM callback_event WHERE seq = ANY(ARRAY(SELECT seq FROM events))
        RETURNING 1
    ), message_events AS (
        DELETE FROM message_event WHERE message_id = ANY(ARRAY(SELECT id FROM chosen))
        RETURNING 1
    ), wamids AS (
        DELETE FROM message_wamid WHERE message_id = ANY(ARRAY(SELECT id FROM chosen))
        RETURNING 1
    ), messages AS (
        DELETE FROM outbound_message WHERE ctid = ANY(ARRAY(SELECT ctid FROM chosen))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM deliveries) AS callback_delivery,
           (SELECT count(*) FROM callback_events) AS callback_event,
           (SELECT count(*) FROM message_events) AS message_event,
           (SELECT count(*) FROM wamids) AS message_wamid,
           (SELECT count(*) FROM messages) AS outbound_message
    """
)

_CALLBACK_EVENTS = sa.text(
    """
    WITH chosen AS MATERIALIZED (
        SELECT e.seq, e.ctid FROM callback_event AS e
        WHERE e.occurred_at < :before
          AND NOT EXISTS (
              SELECT 1 FROM callback_delivery AS d
              WHERE d.event_seq = e.seq AND d.status = 'pending'
          )
        ORDER BY e.occurred_at
        LIMIT :limit
        FOR UPDATE OF e SKIP LOCKED
    ), deliveries AS (
        DELETE FROM callback_delivery WHERE event_seq = ANY(ARRAY(SELECT seq FROM chosen))
        RETURNING 1
    ), events AS (
        DELETE FROM callback_event WHERE ctid = ANY(ARRAY(SELECT ctid FROM chosen))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM deliveries) AS callback_delivery,
           (SELECT count(*) FROM events) AS callback_event
    """
)

_WEBHOOK_BODIES = sa.text(
    """
    WITH chosen AS MATERIALIZED (
        SELECT ctid FROM webhook_event
        WHERE processed_at IS NOT NULL AND received_at < :before
        ORDER BY received_at
        LIMIT :limit
        FOR UPDATE SKIP LOCKED
    ), bodies AS (
        DELETE FROM webhook_event WHERE ctid = ANY(ARRAY(SELECT ctid FROM chosen))
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM bodies) AS webhook_event
    """
)


async def delete_messages(conn: AsyncConnection, *, before: datetime, limit: int) -> Counter[str]:
    return await _run(conn, _MESSAGES, before, limit)


async def delete_callback_events(
    conn: AsyncConnection, *, before: datetime, limit: int
) -> Counter[str]:
    return await _run(conn, _CALLBACK_EVENTS, before, limit)


async def delete_webhook_bodies(
    conn: AsyncConnection, *, before: datetime, limit: int
) -> Counter[str]:
    return await _run(conn, _WEBHOOK_BODIES, before, limit)


async def _run(
    conn: AsyncConnection, statement: sa.TextClause, before: datetime, limit: int
) -> Counter[str]:
    bound = statement.bindparams(
        sa.bindparam("before", before, type_=UTCDateTime()),
        sa.bindparam("limit", limit, type_=sa.Integer()),
    )
    row = (await conn.execute(bound)).mappings().one()
    return Counter({table: int(n) for table, n in row.items()})
