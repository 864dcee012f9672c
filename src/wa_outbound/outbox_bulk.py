"""Inserting many new outbox rows and their `queued` events on PostgreSQL in one statement.

The rows travel as one array per column (asyncpg encodes them in C) and PostgreSQL unnests them:
no per-row statement compilation or bind processing in Python, which made up most of a batch
enqueue's CPU through SQLAlchemy (see docs/performance.md).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from wa_outbound.db import raw

# ON CONFLICT skips a row whose idempotency key is taken (the caller resolves it as a replay);
# only the rows really inserted get their event, through the join on `inserted`.
_INSERT = """
WITH inserted AS (
    INSERT INTO outbound_message (
        id, org_id, channel, to_phone, kind, payload, message_metadata, idempotency_key,
        request_hash, status, attempts, max_attempts, next_attempt_at, dead_lettered,
        created_at, updated_at)
    SELECT t.id, $2, $3, t.to_phone, t.kind, t.payload::jsonb, t.meta::jsonb, t.ikey, t.rhash,
           'QUEUED', 0, $4, t.next_at, false, $5, $5
    FROM unnest($1::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::text[], $12::timestamptz[])
         AS t(id, to_phone, kind, payload, meta, ikey, rhash, next_at)
    ON CONFLICT (org_id, idempotency_key) DO NOTHING
    RETURNING id
), event AS (
    INSERT INTO message_event (message_id, org_id, at, type, to_status, actor, details)
    SELECT i.id, $2, $5, 'queued', 'QUEUED', $13, d.details::jsonb
    FROM inserted i JOIN unnest($1::uuid[], $14::text[]) AS d(id, details) ON d.id = i.id
)
SELECT id FROM inserted
"""


async def insert_queued(
    conn: AsyncConnection,
    rows: list[dict[str, Any]],
    *,
    details: list[dict[str, Any]],
    now: datetime,
    actor: str,
) -> set[uuid.UUID]:
    """Insert `rows` (from `outbox.new_row`, one org, all created `now`) with their events;
    return the ids inserted. Runs in the caller's transaction, which must have begun (the
    caller has already read through `conn`)."""
    if not rows:
        return set()
    first = rows[0]
    try:
        records = await (await raw.driver(conn)).fetch(
            _INSERT,
            [r["id"] for r in rows],
            first["org_id"],
            first["channel"],
            first["max_attempts"],
            now,
            [r["to_phone"] for r in rows],
            [r["kind"] for r in rows],
            [orjson.dumps(r["payload"]).decode() for r in rows],
            [orjson.dumps(r["message_metadata"]).decode() for r in rows],
            [r["idempotency_key"] for r in rows],
            [r["request_hash"] for r in rows],
            [r["next_attempt_at"] for r in rows],
            actor,
            [orjson.dumps(d).decode() for d in details],
        )
    except raw.CONNECTION_LOST as exc:
        raise await raw.connection_lost(conn, exc) from exc
    return {record["id"] for record in records}
